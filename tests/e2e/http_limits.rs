//! The HTTP server against idle sockets and credential guessing, over real connections from
//! distinct loopback addresses: silent, trickling and idle keep-alive connections are closed
//! after the header timeout; one address gets a bounded number of connections while
//! `/healthz` still answers others; failed authentications from one address are answered 429 in
//! each API's shape after a burst, while the real account elsewhere is not locked out.

use crate::common;

use common::sdk_app::telnyx;
use common::voice_app::{ACCOUNT, TOKEN};
use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection to the server from `ip`.
async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the server has closed `s`: `Some(true)` at EOF or reset within `wait`, `Some(false)`
/// if bytes came, `None` if nothing happened.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> Option<bool> {
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Some(true),
        Ok(Ok(_)) => Some(false),
        Err(_) => None,
    }
}

/// One request from `ip`; the status and body.
async fn request_from(ip: &str, to: SocketAddr, head: &str) -> (u16, String) {
    let mut s = connect_from(ip, to).await;
    s.write_all(format!("{head}Host: test\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}\r\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sockets_are_closed_capped_per_address_and_guessers_are_slowed() {
    let net = Net::new(130);
    let config = telnyx::config(&net.ip(9), "", &[]);
    let config = config.replace(
        &format!("auth_token = \"{}\"", telnyx::TOKEN),
        &format!("auth_token = \"{TOKEN}\""),
    );
    let server = Server::start_with(
        &net,
        &config,
        &[
            ("SWITCHBOARD_HTTP__ADMIN_TOKEN", "operator-token"),
            ("SWITCHBOARD_HTTP__HEADER_TIMEOUT_SECS", "2"),
            ("SWITCHBOARD_HTTP__MAX_CONNECTIONS_PER_ADDRESS", "8"),
        ],
    );
    let http = server.http;

    // One address: 8 connections are held, the next ones are closed at once.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push((connect_from(&net.ip(20), http).await, Instant::now()));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..4 {
        let mut extra = connect_from(&net.ip(20), http).await;
        assert_eq!(
            closed_within(&mut extra, Duration::from_millis(500)).await,
            Some(true),
            "a 9th connection from one address is closed at accept"
        );
    }
    // Meanwhile another address is served.
    let (status, body) = request_from(&net.ip(21), http, "GET /healthz HTTP/1.1\r\n").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // Trickling a header line every 500 ms, and idling after a first request, on 4 more each.
    let mut trickling = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from(&net.ip(22), http).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        trickling.push((s, Instant::now()));
    }
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from(&net.ip(23), http).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        idle.push((s, Instant::now()));
    }
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut open = trickling.len();
    while open > 0 && Instant::now() < deadline {
        open = 0;
        for (s, _) in &mut trickling {
            if s.write_all(b"X-Trickle: 1\r\n").await.is_ok() {
                open += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (what, list) in [
        ("silent", &mut silent),
        ("trickling", &mut trickling),
        ("idle", &mut idle),
    ] {
        for (s, opened) in list.iter_mut() {
            let left = Duration::from_secs(5).saturating_sub(opened.elapsed());
            assert_eq!(
                closed_within(s, left).await,
                Some(true),
                "a {what} connection is closed within 5 s of opening (header timeout 2 s)"
            );
        }
    }
    assert!(
        server
            .metric("switchboard_http_connections_refused_total")
            .unwrap()
            >= 4.0
    );

    // Guessing Twilio passwords from one address: ten 401s, an eleventh, then 429 (20429) —
    // even for the right password, which the guesser must not be able to test.
    let calls = format!("GET /2010-04-01/Accounts/{ACCOUNT}/Calls.json HTTP/1.1\r\n");
    for i in 0..11 {
        let (status, body) = request_from(
            &net.ip(24),
            http,
            &format!("{calls}{}", basic(ACCOUNT, &format!("guess{i}"))),
        )
        .await;
        assert_eq!(status, 401, "guess {i}: {body}");
    }
    let (status, body) = request_from(
        &net.ip(24),
        http,
        &format!("{calls}{}", basic(ACCOUNT, TOKEN)),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(json(&body)["code"], 20429, "{body}");
    // The account itself, from its own address, is served.
    let (status, body) = request_from(
        &net.ip(25),
        http,
        &format!("{calls}{}", basic(ACCOUNT, TOKEN)),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Telnyx keys and the admin token likewise, each in its API's shape.
    let telnyx_list = "GET /v2/recordings HTTP/1.1\r\nAuthorization: Bearer KEYwrong\r\n";
    for _ in 0..11 {
        assert_eq!(request_from(&net.ip(26), http, telnyx_list).await.0, 401);
    }
    let (status, body) = request_from(&net.ip(26), http, telnyx_list).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(json(&body)["errors"][0]["code"], "10011", "{body}");
    let admin = format!(
        "GET /admin/v1/accounts/{ACCOUNT}/number_ranges HTTP/1.1\r\nAuthorization: Bearer wrong\r\n"
    );
    for _ in 0..11 {
        assert_eq!(request_from(&net.ip(27), http, &admin).await.0, 401);
    }
    let (status, body) = request_from(&net.ip(27), http, &admin).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(json(&body)["status"], 429, "{body}");
    let good = format!(
        "GET /admin/v1/accounts/{ACCOUNT}/number_ranges HTTP/1.1\r\nAuthorization: Bearer operator-token\r\n"
    );
    assert_eq!(request_from(&net.ip(28), http, &good).await.0, 200);
}

/// The service default of 1,024 descriptors (soft and hard, so the server cannot raise it), and
/// 1,095 silent HTTP connections from 18 addresses (under the per-address cap) that never time
/// out during the test: HTTP holds only its share (what SIP's TCP connections, the RTP ports
/// and the reserve leave), the idlest connections make room for new ones, so `/healthz` and the
/// API still answer, and a call is placed and its audio crosses the relay.
#[tokio::test(flavor = "multi_thread")]
async fn a_crowd_of_silent_connections_at_1024_descriptors_starves_neither_api_nor_calls() {
    let net = std::sync::Arc::new(Net::new(138));
    // The crowd needs more descriptors than the runner may give by default.
    raise_own_descriptor_limit(4096);
    let config = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n"
    );
    let server = Server::start_limited(
        &net,
        &net.two_trunks(&config),
        &[
            ("SWITCHBOARD_HTTP__HEADER_TIMEOUT_SECS", "300"),
            ("SWITCHBOARD_SIP__TCP_MAX_CONNECTIONS", "128"),
            ("SWITCHBOARD_MEDIA__RTP_PORTS", "20000-20199"),
        ],
        Some(1024),
    );
    // 1,024 - 256 reserved - 128 SIP/TCP - 200 RTP sockets.
    assert!(
        server.log().contains("http_max_connections=440"),
        "{}",
        server.log()
    );
    let http = server.http;
    let mut crowd = Vec::new();
    for i in 0..1095 {
        crowd.push(connect_from(&net.ip(40 + (i % 18) as u8), http).await);
    }
    // The server has seen them all: what it refused and evicted adds up to the rest.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let evicted = server
            .metric("switchboard_http_connections_evicted_total")
            .unwrap_or(0.0);
        if evicted >= (1095 - 440) as f64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{evicted} evicted:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The API answers while the crowd holds every other place.
    let (status, body) = request_from(&net.ip(21), http, "GET /healthz HTTP/1.1\r\n").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let auth = basic(ACCOUNT, TOKEN);
    let head = format!("GET /2010-04-01/Accounts/{ACCOUNT}/Calls.json HTTP/1.1\r\n{auth}");
    let (status, body) = request_from(&net.ip(21), http, &head).await;
    assert_eq!(status, 200, "{body}");

    // A call from carrier A to carrier B: the callee's tone reaches the caller.
    let (phone_a, phone_b) = (rig::rtp_socket(&net, 5), rig::rtp_socket(&net, 6));
    let (callee, media_b) = callee_telling_media(&net, &phone_b);
    let uac = uac_media_at(&net, &phone_a, 3000, "0\n      a=rtpmap:0 PCMU/8000");
    let sip = server.sip;
    let caller = {
        let net = net.clone();
        rig::blocking(move || {
            let args = ["-s", "+15551234", "-m", "1"];
            run_sipp(
                &net,
                &uac,
                &net.ip(2),
                5060,
                sip,
                &args,
                Duration::from_secs(20),
            )
        })
    };
    let heard = rig::blocking(move || {
        let to = media_b();
        send_audio(
            &phone_b,
            to,
            &switchboard_media::tone::sines(&[1000.0], 8000.0, 1000),
            1,
        );
        rig::receive_audio(&phone_a, 20, switchboard_media::Law::Ulaw).0
    })
    .await
    .unwrap();
    let share = switchboard_media::tone::share_at(&heard, 1000.0);
    assert!(share > 0.9, "the callee's tone reached the caller: {share}");
    let run = caller.await.unwrap();
    assert!(run.status.success(), "{run:?}\n{}", server.log());
    assert!(callee.finished_ok(Duration::from_secs(10)));
    assert!(
        !server.log().contains("out of descriptors"),
        "{}",
        server.log()
    );
    drop(crowd);
}

/// Raises this process's soft descriptor limit to `want` (or its hard limit, if lower).
fn raise_own_descriptor_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}
