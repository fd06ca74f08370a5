//! A stream that cannot connect or breaks leaves the call to its TwiML.

use super::*;

#[test]
fn a_stream_that_cannot_connect_or_breaks_leaves_the_call_to_its_twiml() {
    let net = Arc::new(Net::new(72));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind(format!("{}:0", net.ip(9))).unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let cases = [
        Case {
            name: "refused",
            number: "+17775550711",
            url: format!("ws://{}:{dead_port}/media", net.ip(9)),
            notified: vec![("31902", "0")],
            statuses: vec!["stream-error"],
        },
        Case {
            name: "not-websocket",
            number: "+17775550712",
            url: "/not-ws".into(),
            notified: vec![("31920", "0")],
            statuses: vec!["stream-error"],
        },
        Case {
            name: "not-tls",
            number: "+17775550713",
            url: format!("wss://{}/media", ws.addr),
            notified: vec![("31910", "0")],
            statuses: vec!["stream-error"],
        },
        Case {
            name: "https",
            number: "+17775550714",
            url: format!("https://{}/media", net.ip(9)),
            notified: vec![("31922", "0")],
            statuses: vec!["stream-error"],
        },
        Case {
            name: "closes-at-once",
            number: "+17775550715",
            url: ws.url("/media"),
            notified: vec![],
            statuses: vec!["stream-started", "stream-stopped"],
        },
        Case {
            name: "overflowing",
            number: "+17775550717",
            url: ws.url("/media"),
            notified: vec![("31931", "1")],
            statuses: vec!["stream-started", "stream-stopped"],
        },
        Case {
            name: "garbage-then-oversized",
            number: "+17775550716",
            url: ws.url("/media"),
            notified: vec![("31924", "0"), ("31950", "1"), ("31951", "1")],
            statuses: vec!["stream-started", "stream-error", "stream-stopped"],
        },
    ];
    let mut routes = routes(String::new(), String::new());
    for c in &cases {
        routes = routes
            .route(
                &format!("/voice-{}", c.name),
                answers(format!(
                    r#"<Response><Connect><Stream url="{}" statusCallback="/status-{}"/></Connect><Redirect>/after-{}</Redirect></Response>"#,
                    c.url, c.name, c.name
                )),
            )
            .route(&format!("/after-{}", c.name), answers("<Response><Hangup/></Response>"))
            .route(&format!("/status-{}", c.name), records());
    }
    let app = rt.block_on(App::serve(&net.ip(9), routes));
    let numbers: Vec<(&str, String)> = cases
        .iter()
        .map(|c| {
            (
                c.number,
                format!("voice_url = \"{{base}}/voice-{}\"", c.name),
            )
        })
        .collect();
    let numbers: Vec<(&str, &str)> = numbers.iter().map(|(n, k)| (*n, k.as_str())).collect();
    let config = net.two_trunks(&numbers_config(&app.base, &numbers));
    let server = Server::start_with(
        &net,
        &config,
        &[
            ("SWITCHBOARD_STREAMS__MAX_MESSAGE_BYTES", "65536"),
            ("SWITCHBOARD_STREAMS__MAX_BUFFER_SECS", "1"),
        ],
    );

    for c in &cases {
        let caller = {
            let (net, number) = (net.clone(), c.number);
            let sip = server.sip;
            std::thread::spawn(move || {
                let uac = scenario(&net, "uac_wait_bye.xml", &[]);
                run_sipp(
                    &net,
                    &uac,
                    &net.ip(2),
                    5060,
                    sip,
                    &["-s", number, "-m", "1"],
                    Duration::from_secs(20),
                )
            })
        };
        match c.name {
            "closes-at-once" => {
                let conn = rt.block_on(ws.accept(WAIT));
                conn.close();
            }
            "overflowing" => {
                // Three seconds at once, twice, where one second is held: the rest is
                // discarded, reported once; the mark after it still comes back.
                let mut conn = rt.block_on(ws.accept(WAIT));
                rt.block_on(conn.until("start", WAIT));
                conn.send_json(media(&ulaw_tone(800.0, 3000)));
                conn.send_json(media(&ulaw_tone(800.0, 3000)));
                conn.send_json(json!({"event": "mark", "mark": {"name": "after"}}));
                let sent = Instant::now();
                let (_, (at, mark)) = rt.block_on(conn.until("mark", WAIT));
                assert_eq!(mark["mark"]["name"], "after");
                let played = at - sent;
                assert!(
                    played < Duration::from_millis(1800),
                    "one second played, not six: {played:?}"
                );
                conn.close();
            }
            "garbage-then-oversized" => {
                let mut conn = rt.block_on(ws.accept(WAIT));
                rt.block_on(conn.until("start", WAIT));
                conn.send(tokio_tungstenite::tungstenite::Message::text("not json"));
                conn.send(tokio_tungstenite::tungstenite::Message::binary(vec![
                    1, 2, 3,
                ]));
                conn.send_json(json!({"event": "mark", "mark": {"name": "still here"}}));
                let (_, (_, mark)) = rt.block_on(conn.until("mark", WAIT));
                assert_eq!(mark["mark"]["name"], "still here", "the stream went on");
                conn.send_json(media(&vec![0xff; 60_000]));
                // Switchboard ends the stream: `stop` (a broken stream gets one if it can).
                let (_, (_, stop)) = rt.block_on(conn.until("stop", WAIT));
                assert!(stop["stop"]["callSid"].is_string());
            }
            _ => {}
        }
        let run = caller.join().unwrap();
        assert_eq!(
            (run.successful, run.failed),
            (1, 0),
            "{}: {}\n{}",
            c.name,
            run.errors,
            server.log()
        );
        // The document went on after <Connect>.
        let after = app.hits_to(&format!("/after-{}", c.name), 1, WAIT);
        let call = after[0].param("CallSid").unwrap().to_owned();
        let statuses = app.hits_to(&format!("/status-{}", c.name), c.statuses.len(), WAIT);
        let events: Vec<&str> = statuses
            .iter()
            .map(|h| h.param("StreamEvent").unwrap())
            .collect();
        assert_eq!(events, c.statuses, "{}", c.name);
        assert!(statuses.iter().all(|h| h.signed_with(TOKEN)));
        if let Some(error) = statuses
            .iter()
            .find(|h| h.param("StreamEvent") == Some("stream-error"))
        {
            let code = c.notified[0].0;
            let text = error.param("StreamError").unwrap();
            assert!(text.starts_with(code), "{}: StreamError {text:?}", c.name);
        }
        let expected: Vec<(String, String)> = c
            .notified
            .iter()
            .map(|(code, log)| (code.to_string(), log.to_string()))
            .collect();
        assert_eq!(notifications(&server, &call), expected, "{}", c.name);
    }
    assert_eq!(
        server.metric("switchboard_stream_errors_total{reason=\"connect\"}"),
        Some(1.0)
    );
    assert_eq!(server.metric("switchboard_streams_active"), Some(0.0));
    let discarded = server
        .metric("switchboard_stream_frames_discarded_total")
        .unwrap();
    // Six seconds sent, one held (less what played between the two messages).
    assert!(
        (240.0..=250.0).contains(&discarded),
        "{discarded} frames discarded"
    );
}
