//! Conference coaching against the real binary: a customer, an agent and a supervisor, each a
//! SIPp callee on a trunk of its own with its media on a socket of the test's, meet in a room
//! through the REST API. The supervisor joins with `<Conference coach=AGENT>`: the agent hears
//! it, the customer does not. Twilio's official Python SDK (tests/compat/twilio_coaching.py)
//! then reads the participants, barges the supervisor in (everyone hears it) and makes it coach
//! the customer instead; each step is checked by the tones each phone hears. The same room
//! rules through Telnyx's `/v2/conferences`, driven by Telnyx's official Python SDK
//! (tests/compat/telnyx_conferences.py): a supervisor whispering to the agent, then barging
//! in, a muted customer, audio played and spoken into the room or to one participant, and the
//! `conference.*` webhooks. And a warm transfer: the new agent is whispered to (a prompt only it
//! hears) before it joins the customer and the first agent, who then leaves the two together.

use crate::common;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use common::voice_app::*;
use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_media::{FRAME, Law, tone};

const ROOM: &str = "support";
/// Each party's number (a trunk of its own) and the tone it speaks.
const CUSTOMER: (&str, f32) = ("+15551234", 500.0);
const AGENT: (&str, f32) = ("+16661234", 900.0);
const SUPERVISOR: (&str, f32) = ("+14441234", 1300.0);

async fn start_app(ip: &str) -> App {
    let room = format!(
        r#"<Response><Dial><Conference beep="false">{ROOM}</Conference></Dial></Response>"#
    );
    // The customer's joins with the room's status callback, for its announcements.
    let reporting_room = post(
        |State(app): State<App>, uri: Uri, h: HeaderMap, body: String| async move {
            app.hit("POST", &uri, None, &h, &body);
            twiml(format!(
                r#"<Response><Dial><Conference beep="false" statusCallback="{}/conference-events" statusCallbackEvent="announcement">{ROOM}</Conference></Dial></Response>"#,
                app.base
            ))
        },
    );
    let announce = |State(app): State<App>, uri: Uri, h: HeaderMap, body: String| async move {
        app.hit("ANY", &uri, None, &h, &body);
        twiml(format!(
            r#"<Response><Play loop="3">{}/tone.wav</Play></Response>"#,
            app.base
        ))
    };
    let router = Router::new()
        .route("/customer", reporting_room)
        .route("/agent", answers(room.clone()))
        .route("/room", answers(room))
        .route("/announce", axum::routing::any(announce))
        .route("/conference-events", answers("<Response/>"))
        .route(
            "/tone.wav",
            axum::routing::get(|| async { ([("content-type", "audio/wav")], wav_1khz()) }),
        )
        .route(
            // The supervisor coaches the agent, whose CallSid the agent's fetch told.
            "/supervisor",
            post(|State(app): State<App>, uri: Uri, h: HeaderMap, body: String| async move {
                app.hit("POST", &uri, None, &h, &body);
                let agent = app.hits_to("/agent", 1, Duration::ZERO)[0]
                    .param("CallSid")
                    .unwrap()
                    .to_owned();
                twiml(format!(
                    r#"<Response><Dial><Conference beep="false" coach="{agent}">{ROOM}</Conference></Dial></Response>"#
                ))
            }),
        );
    App::serve(ip, router).await
}

/// Two more trunks beside [`Net::two_trunks`]' carrier-b (the customer's, on .3): the
/// agent's on .6 (+1666…) and the supervisor's on .7 (+1444…).
fn three_trunks(net: &Net) -> String {
    let trunk = |name: &str, host: u8, pattern: &str| {
        format!(
            "[[trunks]]\nname = \"{name}\"\naddress = \"{ip}:5060\"\ninbound_sources = [\"{ip}/32\"]\n\
             [[routes]]\npattern = \"{pattern}\"\ntrunk = \"{name}\"\n",
            ip = net.ip(host)
        )
    };
    trunk("carrier-c", 6, "^\\\\+?1666") + &trunk("carrier-d", 7, "^\\\\+?1444")
}

/// A SIPp callee answering on `host`:5060 whose media is the returned socket.
fn callee_at(net: &Net, host: u8) -> (UdpSocket, SippServer) {
    let phone = rig::rtp_socket(net, host);
    let port = phone.local_addr().unwrap().port().to_string();
    let written = uas_media_at(net, &net.ip(host), &port, &[]);
    // Each callee reads a scenario of its own (the next one rewrites the shared name).
    let own = net.path(&format!("uas_media_{host}.xml"));
    std::fs::copy(written, &own).unwrap();
    let sipp = SippServer::start(net, &own, &net.ip(host), 5060, &["-m", "1"]);
    (phone, sipp)
}

/// One party: its media socket, where Switchboard's media for it is, its tone.
struct Party {
    sock: UdpSocket,
    at: SocketAddr,
    freq: f32,
}

/// Everyone speaks their tone for 1.5 s at once; what each heard in the last second.
fn talk(parties: &[&Party]) -> Vec<Vec<i16>> {
    let threads: Vec<_> = (parties.iter())
        .map(|p| {
            let (tx, rx, at) = (
                p.sock.try_clone().unwrap(),
                p.sock.try_clone().unwrap(),
                p.at,
            );
            let spoken = tone::sines(&[p.freq], 6000.0, 1500);
            rig::drain(&rx);
            let send = std::thread::spawn(move || send_audio(&tx, at, &spoken, 1000));
            let hear = std::thread::spawn(move || {
                let mut heard = Vec::new();
                let mut buf = [0u8; 2048];
                let start = Instant::now();
                rx.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                while start.elapsed() < Duration::from_millis(1500) {
                    if let Ok(n) = rx.recv(&mut buf) {
                        let mut pcm = [0i16; FRAME];
                        Law::Ulaw.decode(&buf[12..n], &mut pcm);
                        heard.extend_from_slice(&pcm[..n - 12]);
                    }
                }
                heard.split_off(heard.len().saturating_sub(8000))
            });
            (send, hear)
        })
        .collect();
    (threads.into_iter())
        .map(|(send, hear)| {
            send.join().unwrap();
            hear.join().unwrap()
        })
        .collect()
}

/// Whether an RFC 4733 event for `digit` (payload type 101) reaches `sock` within 5 s.
/// What each party hears for `ms`, saying nothing.
fn hear(parties: &[&Party; 3], ms: u64) -> [Vec<i16>; 3] {
    let listen = |p: &Party| {
        let rx = p.sock.try_clone().unwrap();
        rig::drain(&rx);
        std::thread::spawn(move || {
            let mut heard = Vec::new();
            let mut buf = [0u8; 2048];
            let start = Instant::now();
            rx.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            while start.elapsed() < Duration::from_millis(ms) {
                if let Ok(n) = rx.recv(&mut buf) {
                    let mut pcm = [0i16; FRAME];
                    Law::Ulaw.decode(&buf[12..n], &mut pcm);
                    heard.extend_from_slice(&pcm[..n - 12]);
                }
            }
            heard
        })
    };
    parties.map(listen).map(|t| t.join().unwrap())
}

fn hears_digit(sock: &UdpSocket, digit: u8) -> bool {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf)
            && n >= 16
            && buf[1] & 0x7f == 101
            && buf[12] == digit
        {
            return true;
        }
    }
    false
}

/// Whether `heard` holds `freq` (a fair share of it, against three tones at most).
fn holds(heard: &[i16], freq: f32) -> bool {
    tone::share_at(heard, freq) > 0.2
}

/// Who hears whom: rows are who hears (customer, agent, supervisor), columns whose tone.
type Hearing = [[bool; 3]; 3];

/// Everyone hears everyone else.
const EVERYONE: Hearing = [
    [false, true, true],
    [true, false, true],
    [true, true, false],
];
/// The supervisor coaches the agent: the customer does not hear it.
const COACHING_AGENT: Hearing = [
    [false, true, false],
    [true, false, true],
    [true, true, false],
];

/// The three talk until they hear as `want` (three tries: a change is applied on the media
/// thread a moment after the API answers), and the party `unheard`, who must not hear the
/// supervisor, hears none of it (no faint leak either).
fn hear_as(
    parties: &[&Party; 3],
    want: Hearing,
    unheard: Option<usize>,
    phase: &str,
    server: &Server,
) {
    let freqs = [CUSTOMER.1, AGENT.1, SUPERVISOR.1];
    let hearing = |heard: &[Vec<i16>]| -> Hearing {
        let row = |h: &[i16]| freqs.map(|f| holds(h, f));
        [row(&heard[0]), row(&heard[1]), row(&heard[2])]
    };
    let mut heard = talk(parties);
    for _ in 0..2 {
        if hearing(&heard) == want {
            break;
        }
        heard = talk(parties);
    }
    assert_eq!(hearing(&heard), want, "phase {phase}\n{}", server.log());
    if let Some(i) = unheard {
        let leak = tone::share_at(&heard[i], SUPERVISOR.1);
        assert!(leak < 0.02, "phase {phase}: the supervisor leaks ({leak})");
    }
}

#[test]
fn a_supervisor_coaches_the_agent_unheard_by_the_customer_then_barges_in() {
    let Some(python) = compat_env("SWITCHBOARD_TWILIO_PYTHON") else {
        return;
    };
    let net = Arc::new(Net::new(219));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&format!(
        "{}{}",
        three_trunks(&net),
        numbers_config(&app.base, &[])
    ));
    let server = Server::start(&net, &config);
    let mut parties = Vec::new();
    let mut calls = Vec::new();
    let mut callees = Vec::new();
    for ((to, freq), host, path) in [
        (CUSTOMER, 3, "/customer"),
        (AGENT, 6, "/agent"),
        (SUPERVISOR, 7, "/supervisor"),
    ] {
        let (sock, sipp) = callee_at(&net, host);
        callees.push(sipp);
        let url: String =
            url::form_urlencoded::byte_serialize(format!("{}{path}", app.base).as_bytes())
                .collect();
        let (status, body) = server.http(
            "POST",
            &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
            Some((ACCOUNT, TOKEN)),
            &format!("To={}&From=%2B15550001&Url={url}", to.replace('+', "%2B")),
        );
        assert_eq!(status, 201, "{body}");
        calls.push(json(&body)["sid"].as_str().unwrap().to_owned());
        app.hits_to(path, 1, Duration::from_secs(15));
        // In the room, the conference sends all along: its first packet says where it is.
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (_, at) = sock.recv_from(&mut [0u8; 2048]).expect("the room's media");
        parties.push(Party { sock, at, freq });
    }
    let [customer, agent, supervisor] = [&parties[0], &parties[1], &parties[2]];

    let mut phases = Vec::new();
    let args = [
        ACCOUNT, TOKEN, ROOM, &calls[0], &calls[1], &calls[2], &app.base,
    ];
    common::sdk_app::sdk_script_with(&python, &server, "twilio_coaching.py", &args, |line| {
        let phase = line.strip_prefix("TALK ")?;
        // `AnnounceUrl`: a tone (1 kHz) to the room, heard to its end (1.8 s), then to the
        // agent alone.
        if phase.starts_with("announced") {
            let alone = phase == "announced-agent";
            let ms = if alone { 1500 } else { 2500 };
            let [c, a, s] = hear(&[customer, agent, supervisor], ms)
                .map(|h| common::sdk_app::windows_of(&h, 1000.0));
            assert!(
                a >= 3
                    && if alone {
                        c == 0 && s == 0
                    } else {
                        c >= 6 && s >= 6
                    },
                "phase {phase}: the announcement's windows (customer, agent, supervisor): {:?}",
                [c, a, s]
            );
            phases.push(phase.to_owned());
            return Some("go".into());
        }
        let (want, unheard) = match phase {
            // The agent hears its coach; the customer does not.
            "coached" => (COACHING_AGENT, Some(0)),
            // Barged in: everyone hears everyone else.
            "barged" => (EVERYONE, None),
            // Coaching the customer: the agent no longer hears the supervisor.
            "customer" => (
                [
                    [false, true, true],
                    [true, false, false],
                    [true, true, false],
                ],
                Some(1),
            ),
            other => panic!("unknown phase {other}"),
        };
        hear_as(
            &[customer, agent, supervisor],
            want,
            unheard,
            phase,
            &server,
        );
        phases.push(phase.to_owned());
        Some("go".into())
    });
    assert_eq!(
        phases,
        [
            "coached",
            "barged",
            "customer",
            "announced",
            "announced-agent"
        ]
    );
    // Each announcement's end went to the room's status callback, the agent's naming it.
    let reports = app.hits_to("/conference-events", 2, Duration::from_secs(10));
    let ends: Vec<Option<&str>> = (reports.iter())
        .filter(|h| h.param("StatusCallbackEvent") == Some("announcement-end"))
        .map(|h| h.param("CallSid"))
        .collect();
    assert_eq!(ends, [None, Some(calls[1].as_str())], "{reports:?}");
    let fetched = app.hits_to("/announce", 1, Duration::ZERO);
    assert_eq!(
        fetched[0].param("ConferenceSid"),
        reports[0].param("ConferenceSid")
    );
}

/// Telnyx's conferences on the same rooms: the SDK's app dials the three, the customer's leg
/// opens "support", the agent joins, the supervisor joins whispering to the agent; then it
/// barges in, the customer is muted, and the conference is ended (see the script for the
/// webhooks and resources it checks).
#[test]
fn telnyx_conferences_whisper_barge_and_mute_as_the_sdk_asks() {
    telnyx_conferences(223, 1);
}

/// The same on two call-core shards: the app's dials go to the shards in turn, so the agent's
/// call visits the room the customer's shard holds, and the supervisor, on the customer's
/// shard, whispers to the visiting agent.
#[test]
fn telnyx_conferences_span_two_call_core_shards() {
    telnyx_conferences(86, 2);
}

fn telnyx_conferences(net_number: u8, shards: u16) {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    let mut phases = Vec::new();
    telnyx_three_phones(
        &python,
        (net_number, shards),
        "telnyx_conferences.py",
        |phase, three, server| {
            // What the app plays into the room (the script's tone is 600 Hz): to everyone, to the
            // agent alone, nothing once stopped, then speech to everyone.
            let tone_windows = |ms| hear(three, ms).map(|h| common::sdk_app::windows_of(&h, 600.0));
            match phase {
                "play" => {
                    let windows = tone_windows(1500);
                    assert!(
                        windows.iter().all(|&n| n >= 6),
                        "the room's tone: {windows:?}"
                    );
                }
                "play-agent" => {
                    let windows = tone_windows(1500);
                    assert!(
                        windows[1] >= 6 && windows[0] == 0 && windows[2] == 0,
                        "the agent's tone (customer, agent, supervisor): {windows:?}"
                    );
                }
                "quiet" => assert_eq!(tone_windows(1000), [0; 3], "a stopped tone"),
                "speak" => {
                    let loud = hear(three, 2500).map(|h| loud_windows(&h));
                    assert!(loud.iter().all(|&n| n >= 5), "the room's speech: {loud:?}");
                }
                _ => {}
            }
            if matches!(phase, "play" | "play-agent" | "quiet" | "speak") {
                phases.push(phase.to_owned());
                return Some("go".into());
            }
            if phase == "gather" {
                // The agent hears its prompt, the others do not; its digits stop it.
                let windows = tone_windows(700);
                assert!(
                    windows[1] >= 4 && windows[0] == 0 && windows[2] == 0,
                    "the agent's prompt (customer, agent, supervisor): {windows:?}"
                );
                let agent = three[1];
                let mut seq = 7000;
                for (i, digit) in [4, 2].into_iter().enumerate() {
                    send_rfc4733(
                        &agent.sock,
                        agent.at,
                        digit,
                        &mut seq,
                        80_000 + i as u32 * 1600,
                    );
                }
                assert_eq!(
                    tone_windows(600),
                    [0; 3],
                    "the prompt went on over the digits"
                );
                phases.push(phase.to_owned());
                return Some("go".into());
            }
            if phase == "dtmf" {
                assert!(
                    hears_digit(&three[0].sock, 1),
                    "the customer got no digit 1"
                );
                phases.push(phase.to_owned());
                return Some("go".into());
            }
            let (want, unheard) = match phase {
                "whisper" => (COACHING_AGENT, Some(0)),
                "barge" => (EVERYONE, None),
                // Muted, the customer is heard by nobody (and still hears the others).
                "muted" => (
                    [
                        [false, true, true],
                        [false, false, true],
                        [false, true, false],
                    ],
                    None,
                ),
                other => panic!("unknown phase {other}"),
            };
            hear_as(three, want, unheard, phase, server);
            phases.push(phase.to_owned());
            Some("go".into())
        },
    );
    assert_eq!(
        phases,
        [
            "whisper",
            "barge",
            "muted",
            "dtmf",
            "play",
            "play-agent",
            "quiet",
            "speak",
            "gather"
        ]
    );
}

/// A warm transfer through the room: the customer and agent A talk; agent B is called into the
/// room with a whisper first (a tone it alone hears: the customer hears none of it); A leaves,
/// its call ending with its document, and the customer and B hear each other.
#[test]
fn a_warm_transfer_whispers_to_the_new_agent_and_leaves_it_with_the_customer() {
    let net = Arc::new(Net::new(226));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&format!(
        "{}{}",
        three_trunks(&net),
        numbers_config(&app.base, &[])
    ));
    let server = Server::start(&net, &config);
    let callees: Vec<(UdpSocket, SippServer)> =
        [3, 6, 7].iter().map(|&h| callee_at(&net, h)).collect();
    let create = |to: &str, how: &str| -> String {
        let (status, body) = server.http(
            "POST",
            &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
            Some((ACCOUNT, TOKEN)),
            &format!("To={}&From=%2B15550001&{how}", to.replace('+', "%2B")),
        );
        assert_eq!(status, 201, "{body}");
        json(&body)["sid"].as_str().unwrap().to_owned()
    };
    let url = |path: &str| -> String {
        url::form_urlencoded::byte_serialize(format!("{}{path}", app.base).as_bytes()).collect()
    };
    let party = |i: usize, freq: f32| {
        let sock = callees[i].0.try_clone().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (_, at) = sock.recv_from(&mut [0u8; 2048]).expect("the room's media");
        Party { sock, at, freq }
    };
    create(CUSTOMER.0, &format!("Url={}", url("/room")));
    app.hits_to("/room", 1, Duration::from_secs(15));
    let a = create(AGENT.0, &format!("Url={}", url("/room")));
    app.hits_to("/room", 2, Duration::from_secs(15));
    let (customer, agent) = (party(0, CUSTOMER.1), party(1, AGENT.1));
    let heard = talk(&[&customer, &agent]);
    assert!(holds(&heard[0], AGENT.1) && holds(&heard[1], CUSTOMER.1));

    // B is whispered to before it joins; the customer hears none of it.
    let listening = {
        let sock = customer.sock.try_clone().unwrap();
        std::thread::spawn(move || listen(&sock, Duration::from_secs(3), Duration::from_secs(3)).0)
    };
    let whisper = format!(
        r#"<Response><Play>{}/tone.wav</Play><Dial><Conference beep="false">{ROOM}</Conference></Dial></Response>"#,
        app.base
    );
    let twiml: String = url::form_urlencoded::byte_serialize(whisper.as_bytes()).collect();
    create(SUPERVISOR.0, &format!("Twiml={twiml}"));
    let b_sock = callees[2].0.try_clone().unwrap();
    let (b_heard, b_at) = listen(&b_sock, Duration::from_millis(300), Duration::from_secs(10));
    assert!(
        common::sdk_app::windows_of(&b_heard, 1000.0) >= 4,
        "the new agent heard no whisper"
    );
    let customer_heard = listening.join().unwrap();
    assert_eq!(
        common::sdk_app::windows_of(&customer_heard, 1000.0),
        0,
        "the customer heard the whisper"
    );
    let participants = |n: usize| {
        let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Conferences.json?Status=in-progress");
        for _ in 0..100 {
            let (_, body) = server.http("GET", &path, Some((ACCOUNT, TOKEN)), "");
            let conferences = json(&body);
            if let Some(sid) = conferences["conferences"][0]["sid"].as_str() {
                let path =
                    format!("/2010-04-01/Accounts/{ACCOUNT}/Conferences/{sid}/Participants.json");
                let (_, body) = server.http("GET", &path, Some((ACCOUNT, TOKEN)), "");
                if json(&body)["participants"].as_array().unwrap().len() == n {
                    return sid.to_owned();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the room never had {n} participants\n{}", server.log());
    };
    let room = participants(3);

    // A leaves the two together.
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Conferences/{room}/Participants/{a}.json");
    assert_eq!(
        server.http("DELETE", &path, Some((ACCOUNT, TOKEN)), "").0,
        204
    );
    participants(2);
    let b = Party {
        sock: b_sock,
        at: b_at.expect("B's media"),
        freq: SUPERVISOR.1,
    };
    // A talks on: it is out of the room (its call ended), and nobody hears it.
    let heard = talk(&[&customer, &b, &agent]);
    assert!(
        holds(&heard[0], SUPERVISOR.1),
        "the customer does not hear B"
    );
    assert!(holds(&heard[1], CUSTOMER.1), "B does not hear the customer");
    let leak = tone::share_at(&heard[0], AGENT.1).max(tone::share_at(&heard[1], AGENT.1));
    assert!(leak < 0.02, "A is still heard ({leak})");
}

/// Telnyx's supervisor on a bridged call, driven by Telnyx's official Python SDK
/// (tests/compat/telnyx_supervision.py): the customer and the agent are bridged; the supervisor
/// is dialed with `supervise_call_control_id` (the agent) as a `monitor` (hears both, heard by
/// neither), switched to `whisper` (heard by the agent alone) and `barge` (heard by both), then
/// hangs up — and the two, still bridged, hear each other. Checked by the tones each phone
/// hears.
#[test]
fn a_telnyx_supervisor_monitors_whispers_and_barges_on_a_bridged_call() {
    telnyx_supervision(232, 1);
}

/// The same on two call-core shards: the customer's and the agent's calls are on different
/// shards (the app's dials go to the shards in turn), bridged through a visit, and the
/// supervisor is placed on the agent's shard, whose bridge it joins.
#[test]
fn a_telnyx_supervisor_joins_a_bridge_of_two_call_core_shards() {
    telnyx_supervision(87, 2);
}

fn telnyx_supervision(net_number: u8, shards: u16) {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    let mut phases = Vec::new();
    telnyx_three_phones(
        &python,
        (net_number, shards),
        "telnyx_supervision.py",
        |phase, three, server| {
            let (want, unheard) = match phase {
                // The supervisor hears both and nobody hears it.
                "monitor" => (
                    [
                        [false, true, false],
                        [true, false, false],
                        [true, true, false],
                    ],
                    Some(0),
                ),
                "whisper" => (COACHING_AGENT, Some(0)),
                "barge" => (EVERYONE, None),
                // Gone: the two hear each other, as bridged before.
                "left" => (
                    [
                        [false, true, false],
                        [true, false, false],
                        [false, false, false],
                    ],
                    Some(0),
                ),
                other => panic!("unknown phase {other}"),
            };
            hear_as(three, want, unheard, phase, server);
            if phase == "monitor" {
                let leak = tone::share_at(&talk(three)[1], SUPERVISOR.1);
                assert!(leak < 0.02, "the monitor is heard by the agent ({leak})");
            }
            phases.push(phase.to_owned());
            Some("go".into())
        },
    );
    assert_eq!(phases, ["monitor", "whisper", "barge", "left"]);
}

/// Runs a Telnyx SDK `script` against a server of `shards` call-core shards with the
/// customer, agent and supervisor phones (SIPp callees on three trunks); each `TALK <phase>`
/// it prints is handed to `phase` with the three parties, and answered with what it returns.
/// Once in a room or a mix, each phone is sent audio all along: its first packet says where
/// Switchboard's media for it is.
fn telnyx_three_phones(
    python: &str,
    (net_number, shards): (u8, u16),
    script: &str,
    mut phase: impl FnMut(&str, &[&Party; 3], &Server) -> Option<String>,
) {
    use common::sdk_app::telnyx::{self, CONNECTION, KEY, PUBLIC_KEY};
    let net = Arc::new(Net::new(net_number));
    let hooks = format!("{}:18080", net.ip(9));
    let config = telnyx::config(&hooks, "", &[]) + &three_trunks(&net);
    let shards = shards.to_string();
    let env = [("SWITCHBOARD_SIP__CALL_SHARDS", shards.as_str())];
    let server = Server::start_with(&net, &net.two_trunks(&config), &env);
    let callees: Vec<(UdpSocket, SippServer)> =
        [3, 6, 7].iter().map(|&h| callee_at(&net, h)).collect();
    let mut parties: Vec<Party> = Vec::new();
    let args = [
        KEY,
        PUBLIC_KEY,
        hooks.as_str(),
        CONNECTION,
        CUSTOMER.0,
        AGENT.0,
        SUPERVISOR.0,
    ];
    common::sdk_app::sdk_script_with(python, &server, script, &args, |line| {
        let name = line.strip_prefix("TALK ")?;
        if parties.is_empty() {
            for ((sock, _), freq) in callees.iter().zip([CUSTOMER.1, AGENT.1, SUPERVISOR.1]) {
                let sock = sock.try_clone().unwrap();
                sock.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let (_, at) = sock.recv_from(&mut [0u8; 2048]).expect("the phone's media");
                parties.push(Party { sock, at, freq });
            }
        }
        phase(name, &[&parties[0], &parties[1], &parties[2]], &server)
    });
    if shards != "1" {
        // The phones' calls were spread: the joins above spanned the shards.
        let carried = |n: u8| {
            let metric = format!("switchboard_shard_calls_total{{shard=\"{n}\"}}");
            server.metric(&metric).unwrap_or(0.0)
        };
        assert!(
            carried(0) >= 1.0 && carried(1) >= 1.0,
            "{} {}",
            carried(0),
            carried(1)
        );
    }
}
