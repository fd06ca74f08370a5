//! `<Refer>` against the real binary: an application hands its caller to an agent of the
//! caller's own SIP infrastructure (a cold transfer). The caller is SIPp playing a
//! REFER-capable phone or PBX (tests/sipp/uac_referred.xml): it checks the REFER's Refer-To,
//! accepts it, and NOTIFYs how its call to the agent went; the application's `action` hears
//! that as Twilio reports it. The same REFER through Telnyx's `refer` action, driven by
//! Telnyx's official Python SDK (tests/compat/telnyx_refer.py), reports `call.refer.*`.

use crate::common;

use axum::Router;
use common::sdk_app::telnyx::{self, KEY, PUBLIC_KEY};
use common::sdk_app::{all_verified, expect_step, spawn_script, summary_of};
use common::voice_app::*;
use common::*;
use serde_json::Value;
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
            "/dial-agent",
            answers(r#"<Response><Dial referUrl="/transferred" action="/dialed"><Number>+15551234</Number></Dial><Say>Not reached.</Say></Response>"#),
        )
        .route(
            "/transferred",
            answers("<Response><Play>/tone.wav</Play><Hangup/></Response>"),
        )
        .route("/dialed", answers("<Response><Hangup/></Response>"))
        .route(
            "/tone.wav",
            axum::routing::get(|| async { ([("content-type", "audio/wav")], wav_1khz()) }),
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

/// Telnyx's `refer` on the same neutral REFER: the SDK refers two answered calls with a
/// custom header (carried in the Refer-To URI, which SIPp checks); one caller takes the
/// transfer (`call.refer.started`, `call.refer.completed` with `sip_notify_response` 200), the
/// other's agent is busy (`call.refer.failed` with 486, and the app hangs up). SIP credentials
/// for the REFER are refused, not ignored.
#[test]
fn telnyx_refer_hands_calls_over_and_reports_call_refer_events() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    const TAKEN: &str = "+15557770501";
    const BUSY: &str = "+15557770502";
    let net = Arc::new(Net::new(222));
    let hooks = format!("{}:18080", net.ip(6));
    let config = telnyx::config(&hooks, "", &[TAKEN, BUSY]);
    let server = Server::start(&net, &net.two_trunks(&config));
    let args = [KEY, PUBLIC_KEY, hooks.as_str(), TAKEN, BUSY];
    let (mut app, mut lines) = spawn_script(&python, "telnyx_refer.py", &server, &args);
    expect_step(&mut app, &mut lines, "READY", &server);
    call_and_take_refer(&net, &server, TAKEN, "200 OK", HANG_UP);
    call_and_take_refer(&net, &server, BUSY, "486 Busy Here", WAIT_BYE);
    let s = summary_of(app, lines, &server);
    assert!(all_verified(&s), "{s}");
    assert!(s["errors"]["acting"].is_null(), "{s}");
    assert_eq!(s["errors"]["credentials"], "10032", "{s}");
    let refers = |number: &str| -> Vec<(String, Value, Value)> {
        (s["events"].as_array().unwrap().iter())
            .filter(|e| e[1]["to"] == number && e[0].as_str().unwrap().starts_with("call.refer."))
            .map(|e| {
                let p = &e[1];
                assert_eq!(p["client_state"], "cmVmZXJyaW5n", "{p}");
                (
                    e[0].as_str().unwrap().to_owned(),
                    p["sip_notify_response"].clone(),
                    p["from"].clone(),
                )
            })
            .collect()
    };
    let e = |kind: &str, code: Option<u16>| {
        (
            kind.to_owned(),
            code.map_or(Value::Null, Value::from),
            Value::from("+15550001"),
        )
    };
    assert_eq!(
        refers(TAKEN),
        [
            e("call.refer.started", None),
            e("call.refer.completed", Some(200))
        ],
        "{s}"
    );
    assert_eq!(
        refers(BUSY),
        [
            e("call.refer.started", None),
            e("call.refer.failed", Some(486))
        ],
        "{s}"
    );
}

/// `<Dial referUrl>`: the dialed agent's phone (SIPp, tests/sipp/uas_refer.xml) transfers the
/// caller with a REFER: it gets 202, NOTIFYs 100 and 200 and a BYE, and the caller goes on
/// with the `referUrl`'s document (asked with `ReferTransferTarget` and the caller's
/// CallSid), whose tone it hears; the `<Dial>`'s action is not requested.
#[test]
fn a_refer_from_the_dialed_party_asks_the_refer_url_what_the_caller_does() {
    const DIALS: &str = "+17775550242";
    let net = Arc::new(Net::new(225));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(DIALS, "voice_url = \"{base}/dial-agent\"")],
    ));
    let server = Server::start(&net, &config);
    let agent = SippServer::start(
        &net,
        &scenario(&net, "uas_refer.xml", &[("TARGET", "+15559999")]),
        &net.ip(3),
        5060,
        &["-m", "1"],
    );
    let (phone, caller) = call_with_phone(&net, &server, DIALS);
    assert!(
        agent.finished_ok(Duration::from_secs(15)),
        "the agent's REFER was not taken as it expects\n{}",
        server.log()
    );
    let asked = app.hits_to("/transferred", 1, Duration::from_secs(10));
    let target = asked[0].param("ReferTransferTarget").unwrap();
    assert!(target.starts_with("sip:+15559999@"), "{target}");
    let parent = app.hits_to("/dial-agent", 1, Duration::ZERO)[0]
        .param("CallSid")
        .unwrap()
        .to_owned();
    assert_eq!(asked[0].param("CallSid"), Some(parent.as_str()));
    assert!(asked[0].signed_with(TOKEN));
    let (heard, _) = listen(&phone, Duration::from_millis(600), Duration::from_secs(10));
    assert!(
        common::sdk_app::windows_of(&heard, 1000.0) >= 4,
        "the caller did not hear the referUrl's tone"
    );
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    assert!(app.hits_to("/dialed", 0, Duration::ZERO).is_empty());
}
