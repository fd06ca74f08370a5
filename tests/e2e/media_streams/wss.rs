//! Streams over wss: the configured CA trusted, the name checked.

use super::*;

/// `wss://` streams are verified against the system's roots and the configured CA file: a
/// server with a certificate from that CA is streamed to; one whose certificate names another
/// host is refused as a TLS failure.
#[test]
fn wss_streams_trust_the_configured_ca_and_check_the_name() {
    let net = Arc::new(Net::new(76));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ca, good) = tls_server(&[&net.ip(9)]);
    let (_, wrong_name) = tls_server(&["127.0.76.8"]);
    let ca_file = net.path("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let mut secure = rt.block_on(WsServer::start_tls(&net.ip(9), good));
    let mut impostor = rt.block_on(WsServer::start_tls(&net.ip(9), wrong_name));
    let secure_url = format!("wss://{}/secure", secure.addr);
    let impostor_url = format!("wss://{}/secure", impostor.addr);
    let doc = |url: &str, status: &str| {
        format!(
            r#"<Response><Connect><Stream url="{url}" statusCallback="/{status}"/></Connect><Hangup/></Response>"#
        )
    };
    let routes = routes(
        doc(&secure_url, "good-status"),
        doc(&impostor_url, "bad-status"),
    )
    .route("/good-status", records())
    .route("/bad-status", records());
    let app = rt.block_on(App::serve(&net.ip(9), routes));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[
            ("+17775550761", "voice_url = \"{base}/voice\""),
            ("+17775550762", "voice_url = \"{base}/next\""),
        ],
    ));
    let server = Server::start_with(
        &net,
        &config,
        &[("SWITCHBOARD_STREAMS__CA_FILE", ca_file.to_str().unwrap())],
    );

    let caller = {
        let (net, sip) = (net.clone(), server.sip);
        std::thread::spawn(move || {
            let uac = scenario(&net, "uac_wait_bye.xml", &[]);
            run_sipp(
                &net,
                &uac,
                &net.ip(2),
                5060,
                sip,
                &["-s", "+17775550761", "-m", "1"],
                WAIT,
            )
        })
    };
    let mut conn = rt.block_on(secure.accept(WAIT));
    let (_, (_, start)) = rt.block_on(conn.until("start", WAIT));
    let call = start["start"]["callSid"].as_str().unwrap().to_owned();
    assert_eq!(
        conn.headers.get("x-twilio-signature").map(String::as_str),
        Some(sign(TOKEN, &secure_url, &[], Algorithm::HmacSha1).as_str())
    );
    conn.close();
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
    let events: Vec<String> = app
        .hits_to("/good-status", 2, WAIT)
        .iter()
        .map(|h| h.param("StreamEvent").unwrap().to_owned())
        .collect();
    assert_eq!(events, ["stream-started", "stream-stopped"]);
    assert!(notifications(&server, &call).is_empty());

    call_until_bye(&net, &server, "+17775550762", 20);
    assert!(
        rt.block_on(impostor.try_accept(Duration::from_millis(500)))
            .is_none()
    );
    let error = &app.hits_to("/bad-status", 1, WAIT)[0];
    assert_eq!(error.param("StreamEvent"), Some("stream-error"));
    let text = error.param("StreamError").unwrap();
    assert!(
        text.starts_with("31910") && text.contains("certificate"),
        "{text}"
    );
}
