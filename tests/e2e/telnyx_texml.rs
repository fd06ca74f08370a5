//! TeXML, driven by Telnyx's official Python SDK (tests/compat/telnyx_texml.py): a TeXML
//! application made and given a number through the SDK; a call to it runs the application's
//! TeXML (a WAV the caller hears, a `<Gather>` of the digit it presses); a call placed with
//! `texml.calls.create` runs inline TeXML (the callee hears it), is read back, and is
//! redirected by `texml.accounts.calls.update` to a document that hangs up. Every request the
//! app gets is checked as the SDK checks a webhook (Ed25519 with the account's public key),
//! and shows the call Telnyx's way. A TeXML `<Connect><Stream>` speaks Telnyx's stream protocol
//! both ways.

use crate::common;

use common::sdk_app::telnyx::{self, KEY, PUBLIC_KEY};
use common::sdk_app::{
    callee_checking, expect_step, hear, spawn_script, summary_of, tell, windows_of,
};
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The test account as Telnyx shows it (its SID's hex digits as a UUID).
const ACCOUNT_ID: &str = "01234567-89ab-cdef-0123-456789abcdef";

/// The requests the app got at `path`.
fn at<'a>(s: &'a Value, path: &str) -> Vec<&'a Value> {
    (s["requests"].as_array().unwrap().iter())
        .filter(|r| r["path"] == path)
        .map(|r| &r["params"])
        .collect()
}

#[test]
fn the_official_telnyx_sdk_runs_texml_applications() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    const NUMBER: &str = "+15557770401";
    const CALLEE: &str = "+15551234";
    let net = Arc::new(Net::new(107));
    let hooks = format!("{}:18080", net.ip(6));
    let server = Server::start(
        &net,
        &net.two_trunks(&telnyx::config(&hooks, "", &[NUMBER])),
    );
    let (mut app, mut lines) = spawn_script(
        &python,
        "telnyx_texml.py",
        &server,
        &[KEY, PUBLIC_KEY, ACCOUNT_ID, &hooks, NUMBER, CALLEE],
    );
    expect_step(&mut app, &mut lines, "READY", &server);

    // The incoming call: the application's WAV (600 Hz), then its <Gather> takes a 7.
    let (phone, caller) = common::voice_app::call_with_phone(&net, &server, NUMBER);
    let (heard, endpoint) = hear(&phone, Duration::from_secs(10), Duration::from_millis(700));
    let endpoint = endpoint.expect("the application's WAV");
    assert!(windows_of(&heard, 600.0) >= 15, "{} samples", heard.len());
    let mut seq = 1;
    send_rfc4733(&phone, endpoint, 7, &mut seq, 8000);
    expect_step(&mut app, &mut lines, "GATHERED 7", &server);
    expect_step(&mut app, &mut lines, "COMPLETED", &server);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );

    // The call placed with inline TeXML: the callee hears the WAV, then the redirect's
    // document hangs up.
    // `CallerId` is the From display name the callee sees.
    let (callee_phone, callee) = callee_checking(
        &net,
        7,
        &[("From:", r#"^ *"Texml Bot" <sip:\+15557770401@"#)],
    );
    tell(&mut app, "DIAL");
    let (heard, _) = hear(
        &callee_phone,
        Duration::from_secs(15),
        Duration::from_millis(700),
    );
    assert!(windows_of(&heard, 600.0) >= 15, "{} samples", heard.len());
    expect_step(&mut app, &mut lines, "CALLED", &server);
    tell(&mut app, "REDIRECT");
    assert!(callee.finished_ok(Duration::from_secs(15)), "the callee");
    // A call into a TeXML conference, managed through TeXML's REST API (see the script).
    let (_room_phone, room_callee) = callee_checking(&net, 7, &[]);
    tell(&mut app, "ROOM");
    expect_step(&mut app, &mut lines, "ROOMED", &server);
    assert!(
        room_callee.finished_ok(Duration::from_secs(15)),
        "the room's callee"
    );

    let s = summary_of(app, lines, &server);
    let requests = s["requests"].as_array().unwrap();
    assert!(
        requests.iter().all(|r| r["verified"] == true),
        "every request signed with the account's key: {s}"
    );
    assert_eq!(s["state"]["tampered"], true, "{s}");
    assert!(
        requests
            .iter()
            .all(|r| { r["content_type"] == "application/x-www-form-urlencoded" })
    );
    assert_eq!(s["errors"]["unknown_application"], "10015", "{s}");
    assert_eq!(s["errors"]["preferred_codecs"], "10032", "{s}");
    let application = &s["state"]["application"];
    let app_id = application["id"].as_str().unwrap();
    assert_eq!(application["record_type"], "texml_application");
    assert_eq!(application["voice_method"], "post");
    assert_eq!(s["state"]["listed"], serde_json::json!([app_id]), "{s}");

    // The incoming call's requests: Telnyx's ids, the application, the digit.
    let fetched = at(&s, "/texml/inbound");
    assert_eq!(fetched.len(), 1, "{s}");
    let first = fetched[0];
    let call_sid = first["CallSid"].as_str().unwrap();
    assert!(call_sid.starts_with("v3:"), "{first}");
    assert_eq!(first["CallSidLegacy"], call_sid);
    assert_eq!(first["AccountSid"], ACCOUNT_ID);
    assert_eq!(first["ConnectionId"], app_id);
    assert_eq!(first["From"], "+15550001", "{first}");
    assert_eq!(first["To"], NUMBER);
    assert_eq!(first["Direction"], "inbound");
    assert_eq!(first["CallStatus"], "ringing");
    let gathered = at(&s, "/texml/gathered");
    assert_eq!(gathered.len(), 1, "{s}");
    assert_eq!(gathered[0]["Digits"], "7");
    assert_eq!(gathered[0]["CallSid"], call_sid);
    assert_eq!(gathered[0]["CallStatus"], "in-progress");
    let statuses = at(&s, "/status");
    let completed = statuses
        .iter()
        .find(|p| p["To"] == NUMBER)
        .expect("the incoming call's status callback");
    assert_eq!(completed["CallSid"], call_sid);
    assert_eq!(completed["CallStatus"], "completed");
    assert_eq!(completed["CallbackSource"], "call-progress-events");
    assert_eq!(completed["ConnectionId"], app_id);
    assert_eq!(completed["SequenceNumber"], "0");
    let stamp = completed["Timestamp"].as_str().unwrap();
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "RFC 3339: {stamp}"
    );
    let talked: u64 = completed["CallDuration"].as_str().unwrap().parse().unwrap();
    assert!((2..=30).contains(&talked), "{completed}");

    // The placed call: created queued, read back in progress, redirected.
    let created = &s["state"]["created"];
    assert_eq!(created["status"], "queued", "{s}");
    assert_eq!(
        (&created["from"], &created["to"]),
        (&Value::from(NUMBER), &Value::from(CALLEE))
    );
    let placed = created["call_sid"].as_str().unwrap();
    assert!(placed.starts_with("v3:"));
    let retrieved = &s["state"]["retrieved"];
    assert_eq!(retrieved["sid"], placed, "{s}");
    assert_eq!(retrieved["status"], "in-progress");
    assert_eq!(retrieved["account_sid"], ACCOUNT_ID);
    assert_eq!(retrieved["direction"], "outbound");
    assert_eq!(
        retrieved["uri"],
        format!("/v2/texml/Accounts/{ACCOUNT_ID}/Calls/{placed}.json")
    );
    assert_eq!(s["state"]["updated"]["sid"], placed);
    let redirected = at(&s, "/texml/redirected");
    assert_eq!(redirected.len(), 1, "{s}");
    assert_eq!(redirected[0]["CallSid"], placed);
    assert_eq!(redirected[0]["ConnectionId"], app_id);
    let done = statuses
        .iter()
        .find(|p| p["To"] == CALLEE)
        .expect("the placed call's status callback (the application's)");
    assert_eq!(done["CallSid"], placed);
    assert_eq!(done["CallStatus"], "completed");

    // The Calls list: To filters (the room's call and the placed one, newest first), pages
    // are one call each with a next page.
    assert_eq!(
        s["state"]["listed_to_callee"],
        serde_json::json!([s["state"]["room_call"], placed]),
        "{s}"
    );
    let page = &s["state"]["first_page"];
    assert_eq!(page["calls"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(
        (&page["page"], &page["page_size"]),
        (&Value::from(0), &Value::from(1))
    );
    assert!(
        page["next_page_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("/v2/texml/Accounts/{ACCOUNT_ID}/Calls.json?"))),
        "{page}"
    );
    assert_eq!(page["calls"][0]["account_sid"], ACCOUNT_ID);
    assert_eq!(s["errors"]["bad_start_time"], "10015", "{s}");

    // The room: found by name, its one participant (by its call control id), muted, the
    // announcement fetched signed in the TeXML dialect, an unserved parameter refused, the
    // participant taken out and the room over.
    let state = &s["state"];
    let room_call = state["room_call"].as_str().unwrap();
    let room = &state["room"];
    assert!(room["sid"].as_str().unwrap().starts_with("CF"), "{room}");
    assert_eq!(
        (&room["friendly_name"], &room["account_sid"]),
        (&Value::from("room1"), &Value::from(ACCOUNT_ID))
    );
    assert_eq!(state["room_people"][0]["call_sid"], room_call, "{s}");
    assert_eq!(state["room_one"]["call_sid_legacy"], room_call, "{s}");
    assert_eq!(state["room_one"]["muted"], false, "{s}");
    assert_eq!(state["room_muted"]["muted"], true, "{s}");
    let announced = at(&s, "/announce");
    assert_eq!(announced.len(), 1, "{s}");
    assert_eq!(announced[0]["ConferenceSid"], room["sid"], "{s}");
    assert_eq!(announced[0]["AccountSid"], ACCOUNT_ID, "{s}");
    assert_eq!(s["errors"]["room_coaching"], "10032", "{s}");
    assert_eq!(state["room_over"]["status"], "completed", "{s}");
    // The placed call streamed through TeXML's REST API in Telnyx's protocol: its `start`
    // frame names the call by its call control id; stopped by its name, the socket closed and
    // the status callbacks said so.
    let stream = &state["stream"];
    let stream_sid = stream["sid"].as_str().unwrap();
    assert_eq!(
        (&stream["status"], &stream["name"]),
        (&Value::from("in-progress"), &Value::from("bot")),
        "{s}"
    );
    assert_eq!(stream["call_sid"], placed, "{s}");
    let start = &state["stream_start"];
    assert_eq!(start["start"]["call_control_id"], placed, "{s}");
    assert_eq!(start["stream_id"], stream_sid, "{s}");
    assert_eq!(state["stream_stopped"]["status"], "stopped", "{s}");
    assert_eq!(state["stream_stopped"]["sid"], stream_sid, "{s}");
    assert_eq!(state["stream_closed"], true, "{s}");
    let events: Vec<&str> = (at(&s, "/stream-status").iter())
        .filter_map(|p| p["StreamEvent"].as_str())
        .collect();
    assert_eq!(events, ["stream-started", "stream-stopped"], "{s}");
    // Queues: made (max 10), listed, read, resized to 20; the same name again refused; gone
    // once deleted.
    let queue = &state["queue"];
    let queue_sid = queue["sid"].as_str().unwrap();
    assert!(queue_sid.starts_with("QU"), "{s}");
    assert_eq!(
        (&queue["max_size"], &queue["current_size"]),
        (&Value::from(10), &Value::from(0))
    );
    assert_eq!(queue["account_sid"], ACCOUNT_ID, "{s}");
    assert_eq!(state["queues"], serde_json::json!([queue_sid]), "{s}");
    assert_eq!(state["queue_read"]["sid"], queue_sid, "{s}");
    assert_eq!(state["queue_resized"]["max_size"], 20, "{s}");
    assert_eq!(s["errors"]["queue_name_taken"], "10032", "{s}");
    assert_eq!(s["errors"]["queue_deleted"], "10005", "{s}");
    // The placed call recorded through TeXML's REST API: started (dual), paused, resumed,
    // listed; its statuses reported, signed; read back from the account's once it ended with
    // the call, then deleted.
    let rec = &state["recording"];
    // Its UUID, as TeXML's recording callbacks name it.
    let rec_sid = rec["sid"].as_str().unwrap();
    assert_eq!(rec_sid.len(), 36, "{s}");
    assert_eq!(
        (&rec["call_sid"], &rec["account_sid"], &rec["channels"]),
        (
            &Value::from(placed),
            &Value::from(ACCOUNT_ID),
            &Value::from(2)
        ),
        "{s}"
    );
    assert_eq!(rec["source"], "StartCallRecordingAPI", "{s}");
    assert_eq!(state["paused"]["status"], "paused", "{s}");
    assert_eq!(state["resumed"]["status"], "in-progress", "{s}");
    assert_eq!(
        state["call_recordings"],
        serde_json::json!([rec_sid]),
        "{s}"
    );
    assert_eq!(s["errors"]["play_beep"], "10032", "{s}");
    let reported = at(&s, "/recording");
    let statuses: Vec<&str> = (reported.iter())
        .filter_map(|p| p["RecordingStatus"].as_str())
        .collect();
    assert_eq!(statuses, ["in-progress", "completed"], "{s}");
    assert!(
        reported
            .iter()
            .all(|p| p["RecordingSid"] == rec_sid && p["CallSid"] == placed),
        "{reported:?}"
    );
    let after = &state["recording_after"];
    assert_eq!(
        (&after["sid"], &after["status"]),
        (&Value::from(rec_sid), &Value::from("completed")),
        "{s}"
    );
    let seconds: u64 = after["duration"].as_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&seconds), "{after}");
    assert!(
        after["media_url"]
            .as_str()
            .unwrap()
            .contains("/v2/recording_files/"),
        "{after}"
    );
    assert_eq!(s["errors"]["deleted"], "10005", "{s}");
    // The account's recordings in pages: the one made, a page of one.
    let listed = &state["account_recordings"];
    assert_eq!(listed["recordings"][0]["sid"], rec_sid, "{listed}");
    assert_eq!(listed["page_size"], 1, "{listed}");
    assert_eq!(
        listed["uri"],
        format!("/v2/texml/Accounts/{ACCOUNT_ID}/Recordings.json?PageSize=1&Page=0")
    );
    // No recording was transcribed: an empty list, and a transcription that is not, 10005.
    assert_eq!(
        state["transcriptions"]["transcriptions"],
        serde_json::json!([]),
        "{s}"
    );
    assert_eq!(s["errors"]["no_transcription"], "10005", "{s}");
}

/// A voice bot on TeXML: a number's TeXML application answers with `<Connect><Stream>` in
/// `rtp` mode. The stream speaks Telnyx's protocol (not Twilio's): the `start` frame names the
/// call by its call control id, with the account's UUID, the parties, the `<Parameter>`s and
/// the PCMU format; the caller's voice arrives on the inbound track; the bot's PCMU reply is
/// heard by the caller; a digit comes as Telnyx's `dtmf` frame. The stream's status callbacks
/// come signed with the account's Ed25519 key and name the call as TeXML does; when the bot
/// closes its socket the document goes on with the `<Connect action>`.
#[test]
fn a_texml_stream_speaks_telnyxs_protocol_both_ways() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use common::voice_app::{App, answers, call_with_phone, records};
    use common::ws_app::WsServer;
    use serde_json::json;
    use switchboard_media::{Law, tone};
    const NUMBER: &str = "+15557770402";
    const TEXML_APP: &str = "1494404757140276799";
    const WAIT: Duration = Duration::from_secs(10);
    let net = Arc::new(Net::new(109));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let ws_url = ws.url("/media");
    let voice = format!(
        r#"<Response><Connect action="/next"><Stream url="{ws_url}" track="both_tracks" bidirectionalMode="rtp" bidirectionalCodec="PCMU" statusCallback="/stream-status"><Parameter name="agent" value="a1"/></Stream></Connect></Response>"#
    );
    let routes = axum::Router::new()
        .route("/texml", answers(voice))
        .route("/next", answers("<Response><Hangup/></Response>"))
        .route("/stream-status", records());
    let app = rt.block_on(App::serve(&net.ip(9), routes));
    let config = format!(
        "{}[[texml_applications]]\nid = \"{TEXML_APP}\"\naccount_sid = \"{}\"\n\
         voice_url = \"{}/texml\"\n\
         [[numbers]]\nphone_number = \"{NUMBER}\"\naccount_sid = \"{}\"\n\
         connection_id = \"{TEXML_APP}\"\n",
        telnyx::config("127.0.0.1:9", "", &[]),
        telnyx::ACCOUNT,
        app.base,
        telnyx::ACCOUNT,
    );
    let server = Server::start(&net, &net.two_trunks(&config));
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);

    let mut conn = rt.block_on(ws.accept(WAIT));
    let fetched = app.hits_to("/texml", 1, WAIT);
    let call = fetched[0].param("CallSid").unwrap().to_owned();
    assert!(call.starts_with("v3:"), "{call}");
    assert!(fetched[0].telnyx_signed);
    // Telnyx's client names Telnyx (apps admit their audio socket by it).
    assert_eq!(
        conn.headers.get("user-agent").map(String::as_str),
        Some("telnyx-webhooks")
    );
    let (_, connected) = rt.block_on(conn.json(WAIT)).unwrap();
    assert_eq!(connected, json!({"event": "connected", "version": "1.0.0"}));
    // Some Telnyx apps greet the stream with a `connected` of their own: no error comes back.
    conn.send_json(json!({"event": "connected", "version": "1.0.0"}));
    let (_, start) = rt.block_on(conn.json(WAIT)).unwrap();
    let stream = start["stream_id"].as_str().unwrap().to_owned();
    assert_eq!(stream.len(), 36, "a UUID: {stream}");
    assert_eq!(start["event"], "start");
    assert_eq!(start["sequence_number"], "1");
    let s = &start["start"];
    assert_eq!(s["call_control_id"], call.as_str(), "{start}");
    assert_eq!(s["user_id"], ACCOUNT_ID);
    assert_eq!(
        (s["from"].as_str(), s["to"].as_str()),
        (Some("+15550001"), Some(NUMBER))
    );
    assert_eq!(s["custom_parameters"], json!({"agent": "a1"}));
    assert_eq!(
        s["media_format"],
        json!({"encoding": "PCMU", "sample_rate": 8000, "channels": 1})
    );

    // The bot talks first (600 Hz for a second, PCMU as `rtp` mode takes it): the caller
    // hears it, and learns where to send its own voice.
    let pcm = tone::sines(&[600.0], 6000.0, 1000);
    let mut ulaw = vec![0u8; pcm.len()];
    Law::Ulaw.encode(&pcm, &mut ulaw);
    conn.send_json(json!({"event": "media", "media": {"payload": B64.encode(&ulaw)}}));
    let (heard, endpoint) = hear(&phone, WAIT, Duration::from_millis(500));
    assert!(windows_of(&heard, 600.0) >= 8, "{} samples", heard.len());
    let endpoint = endpoint.unwrap();

    // The caller talks (700 Hz for a second): it reaches the bot on the inbound track, PCMU.
    let talker = phone.try_clone().unwrap();
    let talking = std::thread::spawn(move || {
        send_audio(&talker, endpoint, &tone::sines(&[700.0], 6000.0, 1000), 100)
    });
    let mut inbound = Vec::new();
    let mut tracks = std::collections::BTreeSet::new();
    // Each track's (chunk, timestamp) pairs: Telnyx counts timestamps in the 8 kHz clock.
    let mut stamps: std::collections::BTreeMap<String, Vec<(u64, u64)>> = Default::default();
    let started = std::time::Instant::now();
    while windows_of(&inbound, 700.0) < 8 && started.elapsed() < WAIT {
        let (_, m) = rt.block_on(conn.json(WAIT)).unwrap();
        assert_ne!(m["event"], "error", "{m}");
        if m["event"] != "media" {
            continue;
        }
        let number = |v: &serde_json::Value| v.as_str().unwrap().parse::<u64>().unwrap();
        stamps
            .entry(m["media"]["track"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                number(&m["media"]["chunk"]),
                number(&m["media"]["timestamp"]),
            ));
        assert_eq!(m["stream_id"], stream.as_str(), "{m}");
        let track = m["media"]["track"].as_str().unwrap().to_owned();
        if track == "inbound" {
            let bytes = B64.decode(m["media"]["payload"].as_str().unwrap()).unwrap();
            let mut pcm = vec![0i16; bytes.len()];
            Law::Ulaw.decode(&bytes, &mut pcm);
            inbound.extend(pcm);
        }
        tracks.insert(track);
    }
    talking.join().unwrap();
    assert!(
        windows_of(&inbound, 700.0) >= 8,
        "the caller's voice on the inbound track: {} windows of 700 Hz in {} samples ({stamps:?})\n{}",
        windows_of(&inbound, 700.0),
        inbound.len(),
        server.log()
    );
    assert!(tracks.contains("outbound"), "both tracks: {tracks:?}");
    for (track, seen) in &stamps {
        for pair in seen.windows(2) {
            let ((c1, t1), (c2, t2)) = (pair[0], pair[1]);
            assert_eq!(t2 - t1, (c2 - c1) * 160, "{track}: {seen:?}");
        }
    }

    // A digit: Telnyx's `dtmf` frame.
    let mut seq = 1000;
    send_rfc4733(&phone, endpoint, 5, &mut seq, 200_000);
    let (_, (_, dtmf)) = rt.block_on(conn.until("dtmf", WAIT));
    assert_eq!(dtmf["dtmf"]["digit"], "5", "{dtmf}");
    assert_eq!(dtmf["stream_id"], stream.as_str());

    // The bot hangs up its socket: the document goes on and ends the call.
    conn.close();
    let next = app.hits_to("/next", 1, WAIT);
    assert_eq!(next[0].param("CallSid"), Some(call.as_str()));
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
    let status = app.hits_to("/stream-status", 2, WAIT);
    for (hit, event) in status.iter().zip(["stream-started", "stream-stopped"]) {
        assert!(hit.telnyx_signed, "signed with the account's key: {hit:?}");
        assert_eq!(hit.param("StreamEvent"), Some(event), "{hit:?}");
        assert_eq!(hit.param("StreamSid"), Some(stream.as_str()));
        assert_eq!(hit.param("CallSid"), Some(call.as_str()));
        assert_eq!(hit.param("CallSidLegacy"), Some(call.as_str()));
        assert_eq!(hit.param("AccountSid"), Some(ACCOUNT_ID));
        assert_eq!(hit.param("ConnectionId"), Some(TEXML_APP));
    }
}

/// TeXML's REST participant create, driven by Telnyx's official Python SDK
/// (tests/compat/telnyx_texml_participants.py): a TeXML call puts the customer in a room, the
/// SDK dials the agent into it (muted); both SIPp callees answer, the room lists both, the agent
/// muted, and both are taken out. Refusals are Telnyx's errors.
#[test]
fn the_official_telnyx_sdk_dials_a_participant_into_a_texml_conference() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    const NUMBER: &str = "+15557770403";
    let net = Arc::new(Net::new(233));
    let hooks = format!("{}:18080", net.ip(6));
    let server = Server::start(
        &net,
        &net.two_trunks(&telnyx::config(&hooks, "", &[NUMBER])),
    );
    // Both calls reach carrier-b's callee, which answers two.
    let callee = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", "2"],
    );
    let args = [
        KEY,
        ACCOUNT_ID,
        hooks.as_str(),
        NUMBER,
        "+15551234",
        "+15551235",
    ];
    common::sdk_app::sdk_script_with(
        &python,
        &server,
        "telnyx_texml_participants.py",
        &args,
        |_| None,
    );
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the callee's two calls\n{}",
        server.log()
    );
}
