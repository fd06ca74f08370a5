//! The live socket for frontends: tokens minted with an account's REST credentials, a
//! WebSocket that streams the account's call events as the core emits them, scoped by account
//! and by call, and bounded per token.

use crate::common;
use common::voice_app::{ACCOUNT, App, TOKEN, place_call, records};
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const OTHER: &str = "AC00000000000000000000000000000002";
const OTHER_TOKEN: &str = "other-auth-token";

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn mint(server: &Server, who: (&str, &str), body: Value) -> (u16, Value) {
    common::ws_client::mint_live(server, who, body)
}

async fn open(http: SocketAddr, token: &str) -> Result<Socket, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let request = format!("ws://{http}/v1/live?token={token}")
        .into_client_request()
        .unwrap();
    let stream = tokio::net::TcpStream::connect(http).await.unwrap();
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// The next event on `ws` (pings passed over), within `wait`.
async fn next_event(ws: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// A frontend follows its account's calls: a token minted with the account's credentials
/// (bad requests refused: no credentials 401, a TTL past an hour or a call that is no SID
/// 400) opens up to three sockets (a fourth 429, a forged token 401); each call the REST API
/// places shows there as it happens — initiated, ringing, answered, hangup, numbered in order,
/// the same sequence and times as the call's status callbacks — while a socket of another
/// account, and one scoped to another call, see none of it.
#[test]
fn a_frontend_follows_its_accounts_calls_on_the_live_socket() {
    let net = Net::new(34);
    let accounts = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"{OTHER_TOKEN}\"\n"
    );
    let server = Server::start(&net, &net.two_trunks(&accounts));
    let _callee = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", "1"],
    );

    let (status, _) = server.request("POST", "/v1/live/tokens", "", b"{}");
    assert_eq!(status, 401);
    // The calls' list takes a bounded limit, refused in the API's own error shape.
    for bad in ["0", "201", "many"] {
        let (status, body) = server.http(
            "GET",
            &format!("/v1/calls?limit={bad}"),
            Some((ACCOUNT, TOKEN)),
            "",
        );
        assert_eq!(
            (status, json(&body)["status"].as_u64()),
            (400, Some(400)),
            "{body}"
        );
    }
    let ours = (ACCOUNT, TOKEN);
    assert_eq!(mint(&server, ours, json!({"ttl_secs": 7200})).0, 400);
    assert_eq!(mint(&server, ours, json!({"call_sid": "nope"})).0, 400);
    let (status, minted) = mint(&server, ours, json!({}));
    assert_eq!(status, 201, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    assert_eq!(minted["url"], format!("/v1/live?token={token}"));
    let (_, theirs) = mint(&server, (OTHER, OTHER_TOKEN), json!({}));
    let (_, scoped) = mint(
        &server,
        ours,
        json!({"call_sid": "CA00000000000000000000000000000009"}),
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = server.http;
        let mut ws = open(http, &token).await.unwrap();
        let _second = open(http, &token).await.unwrap();
        let _third = open(http, &token).await.unwrap();
        assert_eq!(open(http, &token).await.err(), Some(429), "a fourth socket");
        let forged = format!("{}x", &token[..token.len() - 1]);
        assert_eq!(open(http, &forged).await.err(), Some(401));
        let mut other = open(http, theirs["token"].as_str().unwrap()).await.unwrap();
        let mut narrow = open(http, scoped["token"].as_str().unwrap()).await.unwrap();

        // The same call's status callbacks, to compare with what the socket shows.
        let app = App::serve(&net.ip(8), axum::Router::new().route("/status", records())).await;
        let events = ["initiated", "ringing", "answered", "completed"]
            .map(|e| format!("&StatusCallbackEvent={e}"))
            .concat();
        let sid = place_call(
            &server,
            "<Response><Pause length=\"1\"/><Hangup/></Response>",
            &format!("&StatusCallback={}/status{events}", app.base),
        );
        let mut seen = Vec::new();
        while !seen.iter().any(|e: &Value| e["event"] == "hangup") {
            let event = next_event(&mut ws, Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("the live socket showed {seen:#?}\n{}", server.log()));
            assert_eq!(event["call"], sid.as_str(), "{event}");
            // What the socket tells of can be read through the API at once (of the events
            // the call's history keeps: not the application's alarms, say).
            let kept = ["initiated", "ringing", "answered", "hangup"];
            if !kept.contains(&event["event"].as_str().unwrap_or_default()) {
                seen.push(event);
                continue;
            }
            let (status, body) = tokio::task::block_in_place(|| {
                server.http("GET", &format!("/v1/calls/{sid}/events"), Some(ours), "")
            });
            assert_eq!(status, 200, "{body}");
            let stored: Vec<u64> = (json(&body)["events"].as_array().unwrap().iter())
                .map(|e| e["seq"].as_u64().unwrap())
                .collect();
            assert!(
                stored.contains(&event["seq"].as_u64().unwrap()),
                "{event} told before it was stored: {stored:?}"
            );
            seen.push(event);
        }
        let kinds: Vec<&str> = seen.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(kinds.first(), Some(&"initiated"), "{kinds:?}");
        assert!(kinds.contains(&"answered"), "{kinds:?}");
        let seqs: Vec<u64> = seen.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
        assert!(seen.iter().all(|e| e["at"].as_i64().is_some()));
        // The socket and the webhooks tell the same story, in the same order and at the same
        // times: initiated, ringing, answered (in-progress), hangup (completed).
        let hooks =
            tokio::task::block_in_place(|| app.hits_to("/status", 4, Duration::from_secs(10)));
        let statuses: Vec<&str> = (hooks.iter())
            .map(|h| h.param("CallStatus").unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["initiated", "ringing", "in-progress", "completed"]
        );
        let told: Vec<&Value> = (seen.iter())
            .filter(|e| {
                ["initiated", "ringing", "answered", "hangup"]
                    .contains(&e["event"].as_str().unwrap())
            })
            .collect();
        let told_kinds: Vec<&str> = told.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(
            told_kinds,
            ["initiated", "ringing", "answered", "hangup"],
            "{kinds:?}"
        );
        for (event, hook) in told.iter().zip(&hooks) {
            assert_eq!(hook.param("CallSid"), Some(sid.as_str()));
            let at = event["at"].as_i64().unwrap() / 1000;
            let stamped = time::OffsetDateTime::parse(
                hook.param("Timestamp").unwrap(),
                &time::format_description::well_known::Rfc2822,
            )
            .unwrap()
            .unix_timestamp();
            assert!(
                (at - stamped).abs() <= 1,
                "{event} at {at}, its webhook at {stamped}"
            );
        }
        let sequence: Vec<&str> = (hooks.iter())
            .map(|h| h.param("SequenceNumber").unwrap())
            .collect();
        assert_eq!(sequence, ["0", "1", "2", "3"]);
        // The others were told nothing (they would have been sent it with the first).
        for (who, ws) in [
            ("another account", &mut other),
            ("another call", &mut narrow),
        ] {
            let got = next_event(ws, Duration::from_millis(500)).await;
            assert!(got.is_none(), "{who} saw {got:?}");
        }
    });
}

/// A frontend hears a call and reads what is said as it is said: a token minted for the call
/// opens a socket asking for the called party's audio as 16-bit PCM (an unknown track or
/// encoding, and audio on an account's token, are refused 400; another account's token naming
/// the call hears and sees nothing of it); the `audio` message names
/// the format, the callee's 700 Hz tone arrives on the inbound track, and its words, spoken
/// while `<Start><Transcription>` runs, come as `transcript` events of the call.
#[test]
fn a_frontend_hears_a_calls_audio_and_reads_its_transcripts_on_the_live_socket() {
    use base64::Engine;
    use common::voices::{assert_heard, piper};
    use switchboard_media::{FRAME, tone};
    const SAID: &str = "I would like to check the balance of my savings account please";
    let net = Net::new(36);
    let accounts = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"{OTHER_TOKEN}\"\n"
    );
    let server = Server::start_with_speech(&net, &net.two_trunks(&accounts));
    let words = piper(SAID);
    let callee_rtp = rig::rtp_socket(&net, 6);
    let (callee, callee_side) = callee_telling_media(&net, &callee_rtp);
    let twiml = "<Response><Start><Transcription track=\"inbound_track\"/></Start>\
                 <Pause length=\"10\"/><Hangup/></Response>";
    let sid = place_call(&server, twiml, "");
    let ours = (ACCOUNT, TOKEN);
    let (_, minted) = mint(&server, ours, json!({"call_sid": sid}));
    let token = minted["token"].as_str().unwrap().to_owned();
    let (_, account_wide) = mint(&server, ours, json!({}));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = server.http;
    let refused = |query: String| rt.block_on(open(http, &query)).err();
    assert_eq!(refused(format!("{token}&audio=mixed")), Some(400));
    assert_eq!(
        refused(format!("{token}&audio=both&encoding=opus")),
        Some(400)
    );
    let wide = account_wide["token"].as_str().unwrap();
    assert_eq!(refused(format!("{wide}&audio=inbound")), Some(400));
    let mut ws = rt
        .block_on(open(http, &format!("{token}&audio=inbound&encoding=l16")))
        .unwrap();
    // Another account's token naming this call hears nothing of it.
    let (_, prying) = mint(&server, (OTHER, OTHER_TOKEN), json!({"call_sid": sid}));
    let prying = prying["token"].as_str().unwrap();
    let mut theirs = rt
        .block_on(open(http, &format!("{prying}&audio=both")))
        .unwrap();

    // The callee answers, then gives a second of tone and says its words.
    let to_callee_side = callee_side();
    let mut said = tone::silence(1000);
    said.extend(tone::sines(&[700.0], 6000.0, 1000));
    said.extend(tone::silence(500));
    said.extend_from_slice(&words);
    said.extend(tone::silence(1500));
    let talking = std::thread::spawn(move || send_audio(&callee_rtp, to_callee_side, &said, 1));

    let (mut format, mut frames) = (None, Vec::<Vec<i16>>::new());
    let mut events = Vec::new();
    rt.block_on(async {
        while !events.iter().any(|e: &Value| e["event"] == "hangup") {
            let Some(m) = next_event(&mut ws, Duration::from_secs(10)).await else {
                panic!("the socket went quiet: {events:#?}\n{}", server.log());
            };
            assert_eq!(m["call"], sid.as_str(), "{m}");
            match m["event"].as_str().unwrap() {
                "audio" => format = Some(m),
                "media" => {
                    assert_eq!(m["track"], "inbound", "{m}");
                    let bytes = (base64::engine::general_purpose::STANDARD)
                        .decode(m["payload"].as_str().unwrap())
                        .unwrap();
                    assert_eq!(bytes.len(), 2 * FRAME, "20 ms of 16-bit samples");
                    let pcm = (bytes.chunks(2)).map(|b| i16::from_le_bytes([b[0], b[1]]));
                    frames.push(pcm.collect());
                }
                _ => events.push(m),
            }
        }
    });
    talking.join().unwrap();
    // By now the call's audio and events have all been sent: the other account got none.
    let pried = rt.block_on(next_event(&mut theirs, Duration::from_millis(200)));
    assert!(pried.is_none(), "another account heard {pried:?}");
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );
    assert_eq!(
        format,
        Some(json!({"event": "audio", "call": sid, "tracks": ["inbound"],
                    "encoding": "audio/l16", "sample_rate": 8000}))
    );
    // The tone is the first loud run of frames.
    let loud = |f: &&Vec<i16>| f.iter().any(|s| s.abs() > 1000);
    let tone_heard: Vec<i16> = (frames.iter())
        .skip_while(|f| !loud(f))
        .take_while(loud)
        .flatten()
        .copied()
        .collect();
    assert!(
        (40 * FRAME..=52 * FRAME).contains(&tone_heard.len()),
        "a second of tone: {} samples",
        tone_heard.len()
    );
    assert!(tone::share_at(&tone_heard, 700.0) > 0.9);
    let finals: Vec<&str> = (events.iter())
        .filter(|e| e["event"] == "transcript" && e["is_final"] == true)
        .inspect(|e| assert_eq!(e["track"], "inbound", "{e}"))
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_heard(&finals.join(" "), SAID);
}
