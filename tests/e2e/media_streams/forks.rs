//! A forked stream beside a recording, both tracks, stopped by name.

use super::*;

#[test]
fn a_forked_stream_carries_both_tracks_beside_a_recording_and_stops_by_name() {
    let net = Arc::new(Net::new(71));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let voice = format!(
        r#"<Response><Start><Stream name="fork" track="both_tracks" url="{}" statusCallback="/stream-status"/></Start><Play>/tone.wav</Play><Record maxLength="2" timeout="5" playBeep="false" action="/next"/></Response>"#,
        ws.url("/fork")
    );
    let next =
        r#"<Response><Stop><Stream name="fork"/></Stop><Play>/tone.wav</Play><Hangup/></Response>"#;
    let app = rt.block_on(App::serve(&net.ip(9), routes(voice, next.into())));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(NUMBER, "voice_url = \"{base}/voice\"")],
    ));
    let server = Server::start(&net, &config);
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);

    let mut conn = rt.block_on(ws.accept(WAIT));
    rt.block_on(conn.json(WAIT)).unwrap();
    let (_, start) = rt.block_on(conn.json(WAIT)).unwrap();
    assert_eq!(start["start"]["tracks"], json!(["inbound", "outbound"]));
    let stream = start["streamSid"].as_str().unwrap().to_owned();
    let call = start["start"]["callSid"].as_str().unwrap().to_owned();
    // A one-way stream takes nothing back: this is refused (a warning), the stream goes on.
    conn.send_json(media(&ulaw_tone(500.0, 100)));

    // The greeting plays (the outbound track); then the caller speaks into <Record>.
    let (_, endpoint) = listen(&phone, Duration::from_millis(300), WAIT);
    let talking = talk(&phone, endpoint.unwrap(), 700.0, 1500);

    // The stream runs until <Stop> (after the recording's two seconds): `stop`, then close.
    let mut messages = Vec::new();
    while let Some((_, m)) = rt.block_on(conn.json(WAIT)) {
        let stop = m["event"] == "stop";
        messages.push(m);
        if stop {
            break;
        }
    }
    talking.join().unwrap();
    let stop = messages.pop().unwrap();
    assert_eq!(
        stop,
        json!({"event": "stop", "sequenceNumber": (messages.len() + 2).to_string(),
            "streamSid": stream, "stop": {"accountSid": ACCOUNT, "callSid": call}})
    );
    assert!(rt.block_on(conn.json(WAIT)).is_none(), "closed after stop");
    let track = |name: &str| -> (Vec<u64>, Vec<i16>) {
        let ms: Vec<&Value> = messages
            .iter()
            .filter(|m| m["media"]["track"] == name)
            .collect();
        let chunks = ms
            .iter()
            .map(|m| m["media"]["chunk"].as_str().unwrap().parse().unwrap())
            .collect();
        let audio = ms
            .iter()
            .flat_map(|m| decode_ulaw(m["media"]["payload"].as_str().unwrap()))
            .collect();
        (chunks, audio)
    };
    let (in_chunks, inbound) = track("inbound");
    let (out_chunks, outbound) = track("outbound");
    assert_eq!(messages.len(), in_chunks.len() + out_chunks.len());
    for chunks in [&in_chunks, &out_chunks] {
        assert_eq!(*chunks, (1..=chunks.len() as u64).collect::<Vec<_>>());
    }
    // Both tracks run the whole time, 20 ms a message: at least the greeting and the
    // recording's two seconds (about 2.6 s) each. How much longer is the application's: the
    // stream runs until its answer to the recording's action (`<Stop>`) comes and is read.
    assert!(
        in_chunks.len() >= 110 && in_chunks.len().abs_diff(out_chunks.len()) <= 5,
        "{} inbound, {} outbound",
        in_chunks.len(),
        out_chunks.len()
    );
    let loud = |audio: &[i16], freq: f32| {
        audio
            .chunks(FRAME)
            .filter(|f| tone::share_at(f, freq) > 0.8 && f.iter().any(|s| s.abs() > 1000))
            .count()
    };
    assert!(
        loud(&inbound, 700.0) >= 60,
        "the caller on the inbound track"
    );
    assert_eq!(loud(&inbound, 1000.0), 0);
    assert!(
        loud(&outbound, 1000.0) >= 25,
        "the greeting on the outbound track"
    );
    assert_eq!(loud(&outbound, 700.0), 0);

    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
    let sent = server
        .metric("switchboard_stream_frames_sent_total")
        .unwrap();
    assert!(
        sent >= messages.len() as f64,
        "{sent} frames counted, {} received",
        messages.len()
    );

    // The recording made beside the stream has the caller's tone.
    let recorded = app.hits_to("/next", 1, WAIT);
    let url = recorded[0].param("RecordingUrl").unwrap();
    let path = &url[url.find("/2010-04-01").unwrap()..];
    let (status, wav) = server.http_bytes("GET", path, None, "");
    assert_eq!(status, 200);
    let (samples, channels) = switchboard_media::record::read_wav(&wav).expect("a WAV");
    assert_eq!(channels, 1);
    assert!(
        samples
            .chunks(FRAME)
            .filter(|f| tone::share_at(f, 700.0) > 0.8)
            .count()
            >= 50,
        "the caller's second and a half in the recording"
    );
    let status = app.hits_to("/stream-status", 2, WAIT);
    stream_status(&status[0], "stream-started", &stream, &call);
    assert_eq!(status[0].param("StreamName"), Some("fork"));
    assert_eq!(status[1].param("StreamEvent"), Some("stream-stopped"));
    // The media message on the one-way stream: warning 31951, once.
    assert_eq!(
        notifications(&server, &call),
        [("31951".to_owned(), "1".to_owned())]
    );
}
