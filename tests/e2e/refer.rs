//! `<Refer>` against the real binary: an application hands its caller to an agent of the
//! caller's own SIP infrastructure (a cold transfer). The caller is SIPp playing a
//! REFER-capable phone or PBX (tests/sipp/uac_referred.xml): it checks the REFER's Refer-To,
//! accepts it, and NOTIFYs how its call to the agent went; the application's `action` hears
//! that as Twilio reports it.

use crate::common;

use axum::Router;
use common::voice_app::*;
use common::*;
use std::sync::Arc;
use std::time::Duration;

const TAKEN: &str = "+17775550240";
const BUSY: &str = "+17775550241";

async fn start_app(ip: &str) -> App {
    let refer = |after: &str| {
        answers(format!(
            r#"<Response><Refer action="{after}"><Sip>sip:agent@pbx.example.com?X-Queue=sales</Sip></Refer><Say>Not reached.</Say></Response>"#
        ))
    };
    let router = Router::new()
        .route("/taken", refer("/referred"))
        .route("/busy", refer("/not-referred"))
        // The caller hangs up once transferred; a document it would get is not run.
        .route(
            "/referred",
            answers("<Response><Pause length=\"10\"/></Response>"),
        )
        .route(
            "/not-referred",
            answers("<Response><Say>The agent is busy.</Say><Hangup/></Response>"),
        );
    App::serve(ip, router).await
}

/// SIPp calls `number` as a referee whose last NOTIFY says `last`, then does `after`.
fn call_and_take_refer(net: &Net, server: &Server, number: &str, last: &str, after: &str) {
    let uac = scenario(
        net,
        "uac_referred.xml",
        &[
            (
                "TARGET",
                "^ *&lt;sip:agent@pbx\\.example\\.com\\?X-Queue=sales&gt;",
            ),
            ("FINAL", last),
            ("AFTER", after),
        ],
    );
    let run = run_sipp(
        net,
        &uac,
        &net.ip(2),
        5060,
        server.sip,
        &["-s", number, "-m", "1"],
        Duration::from_secs(30),
    );
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
}

const HANG_UP: &str = r#"<send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:+15550001@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: [$switchboard]
      Call-ID: [call_id]
      CSeq: 4 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>"#;

const WAIT_BYE: &str = r#"<recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>"#;

/// The caller takes the transfer (202, NOTIFYs 100 then 200) and hangs up: the action hears
/// `ReferCallStatus` `in-progress` with the REFER's 202 and the NOTIFY's 200, the call is
/// over (its document not run), and the CDR says the caller ended it.
#[test]
fn a_refer_hands_the_caller_to_an_agent_and_the_action_hears_it_worked() {
    let net = Arc::new(Net::new(220));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(TAKEN, "voice_url = \"{base}/taken\"")],
    ));
    let server = Server::start(&net, &config);
    call_and_take_refer(&net, &server, TAKEN, "200 OK", HANG_UP);
    let action = app.hits_to("/referred", 1, Duration::from_secs(10));
    let got = |k: &str| action[0].param(k).map(str::to_owned);
    assert_eq!(got("ReferSipResponseCode").as_deref(), Some("202"));
    assert_eq!(got("NotifySipResponseCode").as_deref(), Some("200"));
    assert_eq!(got("ReferCallStatus").as_deref(), Some("in-progress"));
    assert!(action[0].signed_with(TOKEN));
    let calls = server.ended_calls(1);
    assert_eq!(calls[0]["status"], "completed", "{}", calls[0]);
}

/// The agent is busy (the last NOTIFY says 486): the caller stays, the action hears
/// `ReferCallStatus` `busy`, and its document runs on the call (it says so and hangs up).
#[test]
fn a_refer_the_agent_refuses_leaves_the_caller_with_the_application() {
    let net = Arc::new(Net::new(221));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(BUSY, "voice_url = \"{base}/busy\"")],
    ));
    let server = Server::start(&net, &config);
    call_and_take_refer(&net, &server, BUSY, "486 Busy Here", WAIT_BYE);
    let action = app.hits_to("/not-referred", 1, Duration::from_secs(10));
    assert_eq!(action[0].param("ReferSipResponseCode"), Some("202"));
    assert_eq!(action[0].param("NotifySipResponseCode"), Some("486"));
    assert_eq!(action[0].param("ReferCallStatus"), Some("busy"));
    assert_eq!(action[0].param("CallStatus"), Some("in-progress"));
}
