//! Voice bots on a stream: one that hears the caller and talks back with marks, clear and digits,
//! and one built as Twilio's Node sample is.

use super::*;

#[test]
fn a_voice_bot_hears_the_caller_and_talks_back_with_marks_clear_and_digits() {
    let net = Arc::new(Net::new(70));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let ws_url = ws.url("/media");
    let voice = format!(
        r#"<Response><Play>/tone.wav</Play><Connect action="/next"><Stream url="{ws_url}" statusCallback="/stream-status"><Parameter name="FirstName" value="Jane"/></Stream></Connect></Response>"#
    );
    let app = rt.block_on(App::serve(
        &net.ip(9),
        routes(
            voice,
            "<Response><Play>/tone.wav</Play><Hangup/></Response>".into(),
        ),
    ));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(NUMBER, "voice_url = \"{base}/voice\"")],
    ));
    let server = Server::start(&net, &config);
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);

    // The greeting tells the phone where Switchboard's RTP is.
    let (greeting, endpoint) = listen(&phone, Duration::from_millis(300), WAIT);
    let endpoint = endpoint.expect("the greeting");
    assert!(tone::share_at(&greeting[800..4000], 1000.0) > 0.9);
    let ear = Ear::listen(&phone);

    let mut conn = rt.block_on(ws.accept(WAIT));
    // The upgrade carries Twilio's signature over the stream URL (no parameters).
    assert_eq!(conn.path, "/media");
    assert_eq!(
        conn.headers.get("x-twilio-signature").map(String::as_str),
        Some(sign(TOKEN, &ws_url, &[], Algorithm::HmacSha1).as_str())
    );
    // Twilio's stream client names itself as a real handshake does: apps test the prefix.
    assert_eq!(
        conn.headers.get("user-agent").map(String::as_str),
        Some("Twilio.TmeWs/1.0")
    );
    let mut seen = Vec::new();
    let (_, connected) = rt.block_on(conn.json(WAIT)).unwrap();
    assert_eq!(
        connected,
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    );
    let (_, start) = rt.block_on(conn.json(WAIT)).unwrap();
    let stream = start["streamSid"].as_str().unwrap().to_owned();
    let call = start["start"]["callSid"].as_str().unwrap().to_owned();
    assert!(stream.starts_with("MZ") && stream.len() == 34, "{stream}");
    assert!(call.starts_with("CA") && call.len() == 34);
    assert_eq!(
        start,
        json!({"event": "start", "sequenceNumber": "1", "streamSid": stream,
            "start": {"accountSid": ACCOUNT, "streamSid": stream, "callSid": call,
                "tracks": ["inbound"], "customParameters": {"FirstName": "Jane"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
    );
    seen.push(start);

    // The caller speaks (700 Hz for a second): it arrives as inbound media, 20 ms a message,
    // after the silence since the stream started (every slot has its message).
    let talking = talk(&phone, endpoint, 700.0, 1000);
    let mut heard: Vec<Vec<i16>> = Vec::new();
    let loud = |f: &Vec<i16>| f.iter().any(|s| s.abs() > 1000);
    // Until the second of speech and the silence after it have come.
    while heard.iter().filter(|f| loud(f)).count() < 45 || heard.last().is_some_and(loud) {
        let (_, m) = rt.block_on(conn.json(WAIT)).unwrap();
        assert_eq!(m["event"], "media", "{m}");
        let media = &m["media"];
        assert_eq!(media["track"], "inbound");
        assert_eq!(m["streamSid"], stream.as_str());
        for key in ["chunk", "timestamp"] {
            assert!(media[key].is_string(), "{key} is a string: {m}");
        }
        let pcm = decode_ulaw(media["payload"].as_str().unwrap());
        assert_eq!(pcm.len(), FRAME);
        heard.push(pcm);
        seen.push(m);
        assert!(heard.len() < 500, "the caller's second of audio never came");
    }
    talking.join().unwrap();
    let voiced: Vec<i16> = heard
        .iter()
        .filter(|f| loud(f))
        .flatten()
        .copied()
        .collect();
    assert!(voiced.len() <= 52 * FRAME, "one second, once");
    assert!(tone::share_at(&voiced, 700.0) > 0.9);
    let chunks: Vec<u64> = seen[1..]
        .iter()
        .map(|m| m["media"]["chunk"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(chunks, (1..=chunks.len() as u64).collect::<Vec<_>>());
    let stamps: Vec<u64> = seen[1..]
        .iter()
        .map(|m| m["media"]["timestamp"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[1] > w[0]),
        "timestamps grow: {stamps:?}"
    );
    // N frames span (N - 1) × 20 ms of the stream's clock.
    let span = stamps[stamps.len() - 1] - stamps[0];
    let expected = (stamps.len() as u64 - 1) * 20;
    assert!(
        span.abs_diff(expected) < 100,
        "{span} ms for {} frames",
        stamps.len()
    );

    // A whole utterance in one message (a second of 1500 Hz), then a mark: the caller hears
    // it, and the mark comes back once it has played.
    let sent = Instant::now();
    conn.send_json(media(&ulaw_tone(1500.0, 1000)));
    conn.send_json(json!({"event": "mark", "streamSid": stream, "mark": {"name": "utterance"}}));
    let frames = ear.since(sent, Duration::from_millis(1300));
    assert!(
        frames_of(&frames, 1500.0) >= 45,
        "{} frames of the utterance",
        frames_of(&frames, 1500.0)
    );
    let (before, (at, mark)) = rt.block_on(conn.until("mark", WAIT));
    seen.extend(before);
    assert_eq!(mark["mark"]["name"], "utterance");
    let after = at - sent;
    assert!(
        after >= Duration::from_millis(900),
        "the mark came {after:?} after its second of audio was sent"
    );
    seen.push(mark);

    // 50 ms chunks, each followed by a mark (as voice bots send them): the marks come back in
    // order and the audio is heard without gaps.
    let chunks_sent = Instant::now();
    for i in 0..6 {
        conn.send_json(media(&ulaw_tone(900.0, 300)[i * 400..(i + 1) * 400]));
        conn.send_json(json!({"event": "mark", "mark": {"name": format!("chunk {i}")}}));
    }
    let frames = ear.since(chunks_sent, Duration::from_millis(600));
    let chunked: Vec<i16> = frames
        .iter()
        .filter(|f| f.iter().any(|s| s.abs() > 1000))
        .flatten()
        .copied()
        .collect();
    assert_eq!(chunked.len(), 15 * FRAME, "300 ms of audio, not padded");
    assert!(tone::share_at(&chunked, 900.0) > 0.95);
    let mut names = Vec::new();
    while names.len() < 6 {
        let (before, (_, m)) = rt.block_on(conn.until("mark", WAIT));
        seen.extend(before);
        names.push(m["mark"]["name"].as_str().unwrap().to_owned());
        seen.push(m);
    }
    assert_eq!(
        names,
        (0..6).map(|i| format!("chunk {i}")).collect::<Vec<_>>()
    );

    // Barge-in: three seconds queued, then `clear` half a second in. The audio stops and the
    // pending mark comes back at once.
    conn.send_json(media(&ulaw_tone(1100.0, 3000)));
    conn.send_json(json!({"event": "mark", "mark": {"name": "long"}}));
    std::thread::sleep(Duration::from_millis(500));
    let cleared = Instant::now();
    conn.send_json(json!({"event": "clear", "streamSid": stream}));
    let (before, (at, m)) = rt.block_on(conn.until("mark", WAIT));
    seen.extend(before);
    assert_eq!(m["mark"]["name"], "long");
    assert!(
        at - cleared < Duration::from_millis(400),
        "the cleared mark came {:?} after the clear",
        at - cleared
    );
    seen.push(m);
    let before_clear = ear.since(cleared - Duration::from_millis(400), Duration::ZERO);
    assert!(
        frames_of(&before_clear, 1100.0) >= 15,
        "it played until the clear"
    );
    // What was in flight may still arrive; nothing like the 2.5 s that remained.
    let frames = ear.since(
        cleared + Duration::from_millis(100),
        Duration::from_millis(2500),
    );
    assert!(
        frames_of(&frames, 1100.0) < 3,
        "{} frames after the clear",
        frames_of(&frames, 1100.0)
    );

    // The caller presses 5: a `dtmf` message.
    let mut seq = 1000;
    send_rfc4733(&phone, endpoint, 5, &mut seq, 200_000);
    let (before, (_, m)) = rt.block_on(conn.until("dtmf", WAIT));
    seen.extend(before);
    assert_eq!(m["dtmf"], json!({"track": "inbound_track", "digit": "5"}));
    assert_eq!(m["streamSid"], stream.as_str());
    seen.push(m);

    // Every message after `connected` counts in one sequence.
    let seqs: Vec<u64> = seen
        .iter()
        .map(|m| m["sequenceNumber"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // The application hangs up the socket: the document goes on with the <Connect action>.
    conn.close();
    let next = app.hits_to("/next", 1, WAIT);
    assert_eq!(next[0].param("CallSid"), Some(call.as_str()));
    let run = caller.join().unwrap();
    drop(ear);
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());

    // stream-started, then stream-stopped, as the TwiML asked.
    let status = app.hits_to("/stream-status", 2, WAIT);
    stream_status(&status[0], "stream-started", &stream, &call);
    stream_status(&status[1], "stream-stopped", &stream, &call);
    assert_eq!(status[1].param("StreamError"), None);
}

/// tests/compat/media_streams_echo.js: a Node bot built as Twilio's `connect-basic` sample
/// is (Twilio's Node SDK for the TwiML, the `websocket` package for the socket) echoes the
/// caller back in one-second pieces with a mark each, then closes; the call goes on.
#[test]
fn a_node_bot_built_like_twilios_sample_echoes_the_caller() {
    let Some(modules) = compat_env("SWITCHBOARD_TWILIO_NODE_PATH") else {
        return;
    };
    use std::io::BufRead;
    let net = Arc::new(Net::new(75));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/media_streams_echo.js"
    );
    struct Bot(std::process::Child);
    impl Drop for Bot {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut bot = Bot(std::process::Command::new("node")
        .args([script, &net.ip(9), "3"])
        .env("NODE_PATH", modules)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map(owned)
        .expect("node"));
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = bot.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let first = lines.recv_timeout(WAIT).expect("the bot listens");
    let port = first.strip_prefix("listening ").unwrap();
    let base = format!("http://{}:{port}", net.ip(9));
    let config = net.two_trunks(&numbers_config(
        &base,
        &[(NUMBER, "voice_url = \"{base}/voice\"")],
    ));
    let server = Server::start(&net, &config);
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);
    // "Echo test." tells the phone where to talk; then it talks for three seconds.
    let (_, endpoint) = listen(&phone, Duration::from_millis(300), WAIT);
    let ear = Ear::listen(&phone);
    let talking = talk(&phone, endpoint.unwrap(), 700.0, 4000);
    let talked = Instant::now();
    let mut seen: Vec<Value> = Vec::new();
    while !seen.iter().any(|v| v["closed"] == true) {
        let line = lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("the bot saw {seen:?}\n{}", server.log()));
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            seen.push(v);
        }
    }
    talking.join().unwrap();
    // Its own voice, a second late (the bot's first second also holds the silence before the
    // caller spoke): heard while it still talks.
    let heard = ear.since(talked, Duration::ZERO);
    assert!(
        frames_of(&heard, 700.0) >= 20,
        "{} frames of the echo",
        frames_of(&heard, 700.0)
    );
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
    drop(bot);

    let start = seen.iter().find(|v| v["event"] == "start").unwrap();
    assert_eq!(start["start"]["customParameters"], json!({"bot": "echo"}));
    assert_eq!(start["start"]["tracks"], json!(["inbound"]));
    let stream = start["streamSid"].as_str().unwrap();
    // The echoes' marks came back in order, for this stream, each after its second of audio
    // (the last echo is cut short by the bot's close, and the one before may be too).
    let marks: Vec<&Value> = seen.iter().filter(|v| v["mark"].is_string()).collect();
    assert!((1..=2).contains(&marks.len()), "{seen:?}\n{}", server.log());
    for (i, m) in marks.iter().enumerate() {
        assert_eq!(m["mark"], format!("Repeat message {i}"));
        assert_eq!(m["streamSid"], stream);
    }
    let echoes: Vec<&Value> = seen.iter().filter(|v| v["echoed"].is_number()).collect();
    assert_eq!(echoes.len(), 3);
    assert!(echoes.iter().all(|v| v["bytes"] == 8000));
}
