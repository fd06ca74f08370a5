//! What one document's prompts cost the server, measured on the real binary's memory
//! (`/proc/PID/status`): a `<Gather>` of eighty ten-minute pauses holds no samples for them
//! (it took 1.29 GB), a long `<Say>` without punctuation is synthesised in bounded pieces (1,600
//! characters peaked at 1.96 GB), and a short `<Say>` on another call is heard while a
//! 3,900-character one renders rather than after it (it waited 21–25 s).

use crate::common;

use axum::Router;
use axum::routing::post;
use common::voice_app::*;
use common::voices::speech_dir;
use common::*;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const PAUSES: &str = "+15557770001";
const LONG: &str = "+15557770002";
const SHORT: &str = "+15557770003";

/// `len` characters of words without a punctuation mark.
fn long_text(len: usize) -> String {
    let words = [
        "please",
        "hold",
        "the",
        "line",
        "while",
        "we",
        "connect",
        "your",
        "call",
        "to",
        "the",
        "next",
        "available",
        "agent",
        "who",
        "will",
        "help",
        "you",
        "today",
    ];
    let mut text = String::new();
    for w in words.iter().cycle() {
        if text.len() + w.len() + 1 > len {
            break;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(w);
    }
    text
}

/// The server with the Piper voice (the recogniser is not preloaded: its model would blur the
/// measure), answering `numbers` with `routes` of the test app.
async fn server_with(
    net: &Arc<Net>,
    routes: Router<App>,
    numbers: &[(&str, &str)],
) -> (Server, App) {
    let app = App::serve(&net.ip(9), routes).await;
    let config = net.two_trunks(&numbers_config(&app.base, numbers));
    let dir = speech_dir();
    let server = Server::start_with(
        net,
        &config,
        &[
            ("SWITCHBOARD_SPEECH__DIR", dir.to_str().unwrap()),
            ("SWITCHBOARD_SPEECH__PRELOAD", "false"),
        ],
    );
    assert!(
        !server.log().contains("no neural voice"),
        "the Piper voice is installed by scripts/test.sh:\n{}",
        server.log()
    );
    (server, app)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gather_of_eighty_ten_minute_pauses_holds_no_samples() {
    let net = Arc::new(Net::new(136));
    let pauses = format!(
        "<Response><Gather input=\"dtmf\" timeout=\"5\">{}</Gather></Response>",
        "<Pause length=\"600\"/>".repeat(80)
    );
    let (server, app) = server_with(
        &net,
        Router::new().route("/pauses", post(answers(pauses))),
        &[(PAUSES, "voice_url = \"{base}/pauses\"")],
    )
    .await;
    let (before, _) = server.memory_mb();
    let (phone, caller) = call_with_phone(&net, &server, PAUSES);
    // Two seconds of it (it would go on for an hour).
    let heard = tokio::task::spawn_blocking(move || {
        phone
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = phone.recv_from(&mut buf).expect("the gather plays");
        let mut audio = vec![0i16; n - 12];
        switchboard_media::Law::Ulaw.decode(&buf[12..n], &mut audio);
        audio.extend(listen(&phone, Duration::from_millis(300), Duration::from_secs(2)).0);
        audio
    })
    .await
    .unwrap();
    assert!(
        heard.len() >= 8000,
        "the gather's silence plays: {} samples",
        heard.len()
    );
    assert!(heard.iter().all(|&s| s.abs() < 64), "it is silence");
    let (during, _) = server.memory_mb();
    eprintln!("gather of 80 pauses: RSS {before} MB before, {during} MB while it plays");
    assert!(
        during < before + 64,
        "the pauses hold no samples: {before} MB before, {during} MB during"
    );
    // The app ends the call through the API.
    let sid = app.hits_to("/pauses", 1, Duration::from_secs(5))[0]
        .param("CallSid")
        .unwrap()
        .to_owned();
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json");
    let (status, body) = server.http("POST", &path, Some((ACCOUNT, TOKEN)), "Status=completed");
    assert_eq!(status, 200, "{body}");
    let run = tokio::task::spawn_blocking(move || caller.join().unwrap())
        .await
        .unwrap();
    assert!(run.status.success(), "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_say_is_synthesised_in_bounded_pieces_and_a_short_one_is_heard_meanwhile() {
    let net = Arc::new(Net::new(137));
    let long = format!(
        "<Response><Say>{}</Say><Hangup/></Response>",
        long_text(3900)
    );
    let short = "<Response><Say>Thank you for calling.</Say><Hangup/></Response>";
    let (server, app) = server_with(
        &net,
        Router::new()
            .route("/long", post(answers(long)))
            .route("/short", post(answers(short))),
        &[
            (LONG, "voice_url = \"{base}/long\""),
            (SHORT, "voice_url = \"{base}/short\""),
        ],
    )
    .await;
    let (_, peak_before) = server.memory_mb();
    // The long call lasts until the test ends it, after the synthesis (waited for up to 180 s
    // below: minutes on a machine busy with something else).
    let limit = Duration::from_secs(240);
    let (long_phone, long_call) = call_with_phone_for(&net, &server, LONG, limit);
    let long_first = tokio::task::spawn_blocking(move || first_audio(&long_phone));
    // The short text is asked for in the middle of the long one's synthesis (about 13 s on
    // this machine, phonemes first): 3 s after its document was fetched.
    app.hits_to("/long", 1, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let short_net = net.clone();
    let server_sip = server.sip;
    let short = tokio::task::spawn_blocking(move || {
        let net = short_net;
        let phone = std::net::UdpSocket::bind(format!("{}:0", net.ip(6))).unwrap();
        let port = phone.local_addr().unwrap().port().to_string();
        let uac = scenario(
            &net,
            "uac_media_wait_bye.xml",
            &[
                ("RTP_IP", &net.ip(6)),
                ("RTP_PORT", &port),
                ("AUDIO", "0\n      a=rtpmap:0 PCMU/8000"),
                ("HEADERS", ""),
                ("ANSWER_CHECKS", ""),
                ("BYE_CHECKS", ""),
            ],
        );
        let caller = std::thread::spawn({
            let net = net.clone();
            move || {
                let ip = net.ip(2);
                let args = ["-s", SHORT, "-m", "1"];
                run_sipp(
                    &net,
                    &uac,
                    &ip,
                    5061,
                    server_sip,
                    &args,
                    Duration::from_secs(90),
                )
            }
        });
        let first = first_audio(&phone);
        (first, caller.join().unwrap())
    });
    let (short_first, short_run) = short.await.unwrap();
    assert!(
        short_run.status.success(),
        "{short_run:?}\n{}",
        server.log()
    );
    let long_first = long_first.await.unwrap();
    // When the voice finished synthesising the long text, by the server's log (it goes on
    // rendering while the call plays its first pieces).
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let rendered = loop {
        let found = (server.log().lines())
            .find(|l| {
                l.contains("speech rendered")
                    && (l.split("chars=").nth(1))
                        .and_then(|n| n.trim().parse::<usize>().ok())
                        .is_some_and(|n| n > 3000)
            })
            .and_then(|l| l.split_whitespace().next())
            .map(|t| t.to_owned());
        if let Some(at) = found {
            break at;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the long text was never rendered:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rendered = parse_utc(&rendered);
    let (_, peak) = server.memory_mb();
    eprintln!(
        "3,900-character say: peak RSS {peak_before} MB before, {peak} MB after; heard {:?} (the long one) and {:?} (the short one) before the long one's synthesis ended",
        rendered.duration_since(long_first).unwrap_or_default(),
        rendered.duration_since(short_first).unwrap_or_default(),
    );
    assert!(
        short_first < rendered,
        "the short text is heard while the long one is still being synthesised"
    );
    assert!(
        peak < peak_before + 400,
        "one synthesis is bounded: peak {peak_before} MB before, {peak} MB after"
    );
    drop(server);
    let run = tokio::task::spawn_blocking(move || long_call.join().unwrap())
        .await
        .unwrap();
    assert!(run.status.success(), "{run:?}");
}

/// `2026-11-24T06:51:14.540885Z`, a log line's time.
fn parse_utc(t: &str) -> SystemTime {
    let n = |r: std::ops::Range<usize>| t[r].parse::<u64>().unwrap();
    let (year, month, day) = (n(0..4), n(5..7), n(8..10));
    let (h, m, sec) = (n(11..13), n(14..16), n(17..19));
    let micros = n(20..26);
    // Days since 1970-01-01 (civil calendar; Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    SystemTime::UNIX_EPOCH
        + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + sec)
        + Duration::from_micros(micros)
}

/// When the first loud audio packet reached `phone` (speech, not the silence of a pause).
fn first_audio(phone: &std::net::UdpSocket) -> SystemTime {
    phone
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut buf = [0u8; 2048];
    loop {
        let (n, _) = phone.recv_from(&mut buf).expect("audio from Switchboard");
        let mut pcm = [0i16; switchboard_media::FRAME];
        switchboard_media::Law::Ulaw.decode(&buf[12..n], &mut pcm[..n - 12]);
        if pcm[..n - 12].iter().any(|s| s.abs() > 1000) {
            return SystemTime::now();
        }
    }
}
