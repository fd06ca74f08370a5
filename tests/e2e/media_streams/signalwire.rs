//! SignalWire's streams: its signature, L16, its LaML API.

use super::*;

#[test]
fn signalwire_streams_sign_with_its_key_speak_l16_and_take_the_laml_api() {
    use tokio_tungstenite::tungstenite::Message;
    const SIGNING_KEY: &str = "PSK_switchboard_test";
    const PROJECT: &str = "11111111-2222-3333-4444-555555555555";
    const OTHER: &str = "ACfedcba9876543210fedcba9876543210";
    let net = Arc::new(Net::new(74));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    // As SignalWire's Go package answers: a bare <Stream> (it talks back on it), `both`, a
    // query string; with SignalWire's codec and bearer token.
    let ws_url = ws.url("/api/telephony/calls/stream/s1?call_sid=x");
    let voice = format!(
        r#"<Response><Play>/tone.wav</Play><Stream url="{}" track="both" codec="L16@16000h" authBearerToken="bearer-1"></Stream></Response>"#,
        ws_url.replace('&', "&amp;")
    );
    let app = rt.block_on(App::serve(&net.ip(9), routes(voice, String::new())));
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         signing_key = \"{SIGNING_KEY}\"\nproject_id = \"{PROJECT}\"\n\
         [[numbers]]\nphone_number = \"{NUMBER}\"\naccount_sid = \"{ACCOUNT}\"\n\
         voice_url = \"{}/voice\"\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"other-token\"\ncaller_ids = [\"+1555*\"]\n",
        app.base
    ));
    let server = Server::start_with(
        &net,
        &config,
        &[("SWITCHBOARD_STREAMS__PING_INTERVAL_SECS", "1")],
    );
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);
    let (_, endpoint) = listen(&phone, Duration::from_millis(300), WAIT);
    let endpoint = endpoint.unwrap();

    let mut conn = rt.block_on(ws.accept(WAIT));
    let signature = sign(SIGNING_KEY, &ws_url, &[], Algorithm::HmacSha1);
    for h in ["x-signalwire-signature", "x-twilio-signature"] {
        assert_eq!(conn.headers.get(h), Some(&signature), "{h}");
    }
    // Not Twilio's client: SignalWire's streams do not claim its User-Agent.
    assert_eq!(conn.headers.get("user-agent"), None);
    assert_eq!(
        conn.headers.get("authorization").map(String::as_str),
        Some("Bearer bearer-1")
    );
    let (_, connected) = rt.block_on(conn.json(WAIT)).unwrap();
    assert_eq!(connected["version"], "0.2.0");
    let (_, start) = rt.block_on(conn.json(WAIT)).unwrap();
    assert_eq!(start["start"]["accountSid"], PROJECT);
    assert_eq!(start["start"]["tracks"], json!(["inbound", "outbound"]));
    assert_eq!(
        start["start"]["mediaFormat"],
        json!({"encoding": "audio/x-L16", "sampleRate": 16000, "channels": 1})
    );
    let call = start["start"]["callSid"].as_str().unwrap().to_owned();

    // The caller's audio arrives as 16-bit little-endian at 16 kHz.
    let talking = talk(&phone, endpoint, 700.0, 600);
    let mut inbound = Vec::new();
    let mut pinged = false;
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2500) {
        let r = rt.block_on(conn.recv(WAIT)).unwrap();
        match r.message {
            Message::Ping(_) => pinged = true,
            Message::Text(text) => {
                let m: Value = serde_json::from_str(&text).unwrap();
                if m["media"]["track"] == "inbound" {
                    let bytes = B64.decode(m["media"]["payload"].as_str().unwrap()).unwrap();
                    assert_eq!(bytes.len(), 640);
                    inbound.extend(
                        bytes
                            .chunks_exact(2)
                            .map(|b| i16::from_le_bytes([b[0], b[1]])),
                    );
                }
            }
            _ => {}
        }
    }
    talking.join().unwrap();
    assert!(pinged, "Switchboard pings every second as configured");
    let voiced = inbound
        .chunks(320)
        .filter(|f| {
            tone::share_at_rate(f, 700.0, 16000.0) > 0.8 && f.iter().any(|s| s.abs() > 1000)
        })
        .count();
    assert!(voiced >= 25, "{voiced} frames of the caller at 16 kHz");

    // The application answers pings, and talks back as the Go package does: no streamSid,
    // a `track` field, 16-bit little-endian audio at 16 kHz.
    conn.send(Message::Ping(b"are you there".to_vec().into()));
    let reply: Vec<u8> = (0..8000)
        .map(|i| ((std::f32::consts::TAU * 1200.0 * i as f32 / 16000.0).sin() * 6000.0) as i16)
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let ear = Ear::listen(&phone);
    let sent = Instant::now();
    conn.send_json(
        json!({"event": "media", "media": {"track": "outbound", "payload": B64.encode(&reply)}}),
    );
    let mut ponged = false;
    while !ponged {
        let r = rt.block_on(conn.recv(WAIT)).unwrap();
        ponged = matches!(&r.message, Message::Pong(p) if &p[..] == b"are you there");
    }
    let heard = ear.since(sent, Duration::from_millis(800));
    assert!(
        frames_of(&heard, 1200.0) >= 20,
        "{} frames of the reply",
        frames_of(&heard, 1200.0)
    );

    // A second, one-way stream through the LaML API (SignalWire's documented prefix), with
    // the project id and token; then stopped by name.
    let mut rest_ws = rt.block_on(WsServer::start(&net.ip(9)));
    let base = format!("/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{call}/Streams");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Url", &rest_ws.url("/rest"))
        .append_pair("Name", "rest1")
        .append_pair("Track", "both_tracks")
        .append_pair("Parameter1.Name", "agent")
        .append_pair("Parameter1.Value", "a1")
        .finish();
    let (status, created) = server.http(
        "POST",
        &format!("{base}.json"),
        Some((PROJECT, TOKEN)),
        &body,
    );
    assert_eq!(status, 200, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["name"], "rest1");
    assert_eq!(created["status"], "in-progress");
    assert_eq!(created["account_sid"], PROJECT);
    assert_eq!(created["call_sid"], call.as_str());
    let sid = created["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("MZ"));
    let mut rest = rt.block_on(rest_ws.accept(WAIT));
    let (_, (_, start)) = rt.block_on(rest.until("start", WAIT));
    assert_eq!(start["streamSid"], sid.as_str());
    assert_eq!(start["start"]["customParameters"], json!({"agent": "a1"}));
    assert_eq!(start["start"]["tracks"], json!(["inbound", "outbound"]));
    let (status, stopped) = server.http(
        "POST",
        &format!("{base}/rest1.json"),
        Some((PROJECT, TOKEN)),
        "Status=stopped",
    );
    assert_eq!(status, 200, "{stopped}");
    let stopped: Value = serde_json::from_str(&stopped).unwrap();
    assert_eq!(
        (&stopped["sid"], &stopped["status"]),
        (&json!(sid), &json!("stopped"))
    );
    rt.block_on(rest.until("stop", WAIT));
    // Stopped streams are gone: a second stop finds nothing; another account sees nothing.
    let (status, _) = server.http(
        "POST",
        &format!("{base}/rest1.json"),
        Some((PROJECT, TOKEN)),
        "Status=stopped",
    );
    assert_eq!(status, 404);

    // The application closes its socket: the document has nothing after the stream.
    conn.close();
    drop(ear);
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
}
