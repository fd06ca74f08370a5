//! The browser and tenant sockets against clients that hold on to what they were given: a
//! client that sends frames the server answers and never reads the answers, a device whose
//! access token ran out or whose API key was deleted, a live socket whose token ran out or was
//! revoked, and a forged call report. Each spoken raw (no SDK) on real sockets, the way an
//! attacker would.

use crate::common;
use common::sdk_app::telnyx::{ACCOUNT, SEED, TOKEN};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

use common::ws_client::{self, Socket};

const API_KEY: &str = "SK0123456789abcdef0123456789abcdef";

fn config() -> String {
    format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\n\
         telnyx_api_keys = [\"KEY0123456789ABCDEF_switchboard\"]\ntelnyx_private_key = \"{SEED}\"\n\
         api_keys = [{{ sid = \"{API_KEY}\", secret = \"s\" }}]\n"
    )
}

async fn connect(server: SocketAddr, path: &str, from: &str) -> Result<Socket, u16> {
    ws_client::connect(server, path, from, true).await
}

async fn next_json(ws: &mut Socket, wait: Duration) -> Option<Value> {
    ws_client::next_json(ws, wait).await
}

/// Sends frames the server answers and never reads the answers, until the server stops
/// taking them: it is then blocked writing to this client. `false` if it still took them
/// after 20 MB or 15 s. Each batch has `frame` as many times as make 64 KB (the answers fill
/// the server's send buffer) and one large frame (it fills the server's receive buffer once
/// the server no longer reads), sent in one write.
async fn flood_until_the_server_stops_reading(ws: &mut Socket, frame: &str) -> bool {
    let mut sent = 0;
    let until = Instant::now() + Duration::from_secs(15);
    let batch = (64 << 10) / frame.len().max(1) + 1;
    let large = format!("{frame}{}", " ".repeat(64 << 10));
    while sent < 20 << 20 && Instant::now() < until {
        let send = async {
            for _ in 0..batch {
                ws.feed(Message::Text(frame.to_owned().into())).await?;
            }
            ws.feed(Message::Text(large.clone().into())).await?;
            ws.flush().await
        };
        match tokio::time::timeout(Duration::from_millis(500), send).await {
            Ok(Ok(())) => sent += frame.len() * batch + large.len(),
            Ok(Err(e)) => panic!("the server closed a flooding socket early: {e}"),
            Err(_) => return true,
        }
    }
    false
}

/// Whether the server has closed `ws` (without reading what it sent): a write fails within
/// `wait`. A server blocked writing to it leaves the write pending instead.
async fn closed_by_server(ws: &mut Socket, wait: Duration) -> bool {
    let until = tokio::time::Instant::now() + wait;
    loop {
        // A send taken at once is not a sign of life (it may sit in a buffer): the deadline
        // is checked here too.
        if tokio::time::Instant::now() >= until {
            return false;
        }
        let send = ws.send(Message::Text("x".into()));
        match tokio::time::timeout_at(until, send).await {
            Err(_) => return false,
            Ok(Err(_)) => return true,
            Ok(Ok(())) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Item 1 of the third hardening round. Eight places, four per address: two addresses fill
/// them with sockets (Verto and Twilio's) that send frames the server answers and never read
/// the answers, until the server stops reading them (blocked on its sends). A fifth from one
/// of them is refused (its share); a browser from a fresh address still gets in, and a live
/// socket with a valid token too, each taking the place of the oldest socket of the address
/// that holds the most; and 20 s (as configured) after its upgrade every flooding socket,
/// signed in to nothing, has been closed by the server although it was blocked writing to it.
#[test]
fn a_client_that_never_reads_loses_its_sockets_and_a_fresh_browser_still_gets_in() {
    let net = Net::new(186);
    let server = Server::start_with(
        &net,
        &config(),
        &[
            ("SWITCHBOARD_HTTP__WEBSOCKETS_MAX", "8"),
            ("SWITCHBOARD_HTTP__WEBSOCKETS_PER_ADDRESS", "4"),
            // Time to fill the buffers of eight sockets on a busy machine before the
            // deadline the test is about.
            ("SWITCHBOARD_HTTP__WEBSOCKETS_SIGN_IN_SECS", "20"),
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = async {
        let opened = Instant::now();
        // Verto echoes a request's id in its error: a 16 KB id makes each answer as large as
        // the frame. Twilio's answers a frame that is not JSON with a 31100 error.
        let verto =
            json!({"jsonrpc": "2.0", "id": "i".repeat(16 << 10), "method": "echo"}).to_string();
        let mut flooding = Vec::new();
        for host in [20u8, 21] {
            for n in 0..4 {
                let (path, frame) = match n % 2 {
                    0 => ("/", verto.as_str()),
                    _ => ("/signal", "{"),
                };
                let ws = connect(server.http, path, &net.ip(host)).await.unwrap();
                flooding.push((ws, path, frame, host));
            }
        }
        // Every place is taken now: one address has its share (checked before the flood: a
        // socket blocked longer than the send deadline is closed and frees its place, and on
        // a loaded machine the flood itself can take that long).
        assert_eq!(
            connect(server.http, "/", &net.ip(20)).await.err(),
            Some(503),
            "an address has its share"
        );
        let floods = flooding
            .iter_mut()
            .map(|(ws, path, frame, host)| async move {
                assert!(
                    flood_until_the_server_stops_reading(ws, frame).await,
                    "the server kept reading {path} from {host}"
                );
            });
        futures_util::future::join_all(floods).await;
        assert!(
            opened.elapsed() < Duration::from_secs(18),
            "flooding took {:?}",
            opened.elapsed()
        );
        let mut flooding: Vec<Socket> = flooding.into_iter().map(|(ws, ..)| ws).collect();

        // A browser from a fresh address gets in and is answered.
        let newcomers = opened.elapsed();
        let mut fresh = connect(server.http, "/", &net.ip(30))
            .await
            .expect("a place");
        let ping = json!({"jsonrpc": "2.0", "id": "1", "method": "telnyx_rtc.ping", "params": {}});
        fresh
            .send(Message::Text(ping.to_string().into()))
            .await
            .unwrap();
        let answer = next_json(&mut fresh, Duration::from_secs(5)).await.unwrap();
        assert_eq!(answer["error"]["code"], -32000, "{answer}");
        // So does the console's live socket with a valid token.
        let (status, minted) = mint_live(&server, json!({}));
        assert_eq!(status, 201, "{minted}");
        let token = minted["token"].as_str().unwrap();
        let live = format!("/v1/live?token={token}");
        let _live = connect(server.http, &live, &net.ip(31))
            .await
            .expect("a place");

        // Every flooding socket is closed 10 s after its upgrade, blocked writes and all.
        let deadline = opened + Duration::from_secs(22);
        tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
        for (i, ws) in flooding.iter_mut().enumerate() {
            assert!(
                closed_by_server(ws, Duration::from_secs(3)).await,
                "flooding socket {i} still open after {:?}",
                opened.elapsed()
            );
        }
        // Their places are free again: the flooding addresses get new ones.
        let again = connect(server.http, "/signal", &net.ip(20)).await;
        assert!(again.is_ok(), "{again:?}");
        newcomers
    };
    let newcomers = rt.block_on(async {
        (tokio::time::timeout(Duration::from_secs(90), run).await)
            .expect("the test's steps in time")
    });
    // The newcomers took the places of two unsigned sockets — unless they came after the
    // send deadline (10 s from the first block, at the earliest from the opening) had already
    // closed some, as on a loaded machine where the flood itself takes that long.
    let evicted = server
        .metric("switchboard_websockets_evicted_total")
        .unwrap();
    if newcomers < Duration::from_secs(10) {
        assert_eq!(evicted, 2.0, "the two newcomers took two places");
    } else {
        assert!(evicted <= 2.0, "{evicted} evicted for two newcomers");
    }
}

fn mint_live(server: &Server, body: Value) -> (u16, Value) {
    ws_client::mint_live(server, (ACCOUNT, TOKEN), body)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An access token for `identity` signed with `key`'s `secret`, good for `ttl` seconds.
fn access_token(key: &str, secret: &str, identity: &str, ttl: i64) -> String {
    use switchboard_control::infra::jwt::{Algorithm, sign};
    let now = now_secs();
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), json!("JWT"));
    header.insert("cty".into(), json!("twilio-fpa;v=1"));
    let claims = json!({"jti": format!("{key}-{now}"), "iss": key, "sub": ACCOUNT,
                        "exp": now + ttl,
                        "grants": {"identity": identity, "voice": {"incoming": {"allow": true}}}});
    sign(Algorithm::Hs256, secret.as_bytes(), header, &claims)
}

/// `listen` with `token`: the first answer's type and error code.
async fn listen(ws: &mut Socket, token: &str) -> (String, Option<u64>) {
    let listen = json!({"type": "listen", "version": "1.6", "payload": {"token": token}});
    ws.send(Message::Text(listen.to_string().into()))
        .await
        .unwrap();
    let answer = next_json(ws, Duration::from_secs(5)).await.unwrap();
    let kind = answer["type"].as_str().unwrap_or_default().to_owned();
    (kind, answer["payload"]["error"]["code"].as_u64())
}

/// The error a signed-in device is sent, then its socket's end, within `wait`.
async fn signed_out(ws: &mut Socket, wait: Duration) -> Option<u64> {
    let until = tokio::time::Instant::now() + wait;
    let mut code = None;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => panic!("the device's socket is still open"),
            Ok(Some(Ok(Message::Text(t)))) if t.trim().is_empty() => {}
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "error" {
                    code = v["payload"]["error"]["code"].as_u64();
                }
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(_) => return code,
        }
    }
}

/// Item 4. A device is signed out (31205, the SDK's AccessTokenExpired 20104) when its token
/// runs out, unless `updateToken`'s new `listen` came first; a device whose token's API key is
/// deleted is signed out at once (31204); a token good for more than Twilio's 24 hours is
/// refused (20157). The session's registration goes with its socket: the device is not rung.
#[test]
fn a_twilio_device_is_signed_out_when_its_token_runs_out_or_its_key_goes() {
    let net = Net::new(187);
    let server = Server::start(&net, &config());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Runs out in 3 s.
        let mut short = connect(server.http, "/signal", &net.ip(20)).await.unwrap();
        let token = access_token(API_KEY, "s", "alice", 3);
        assert_eq!(listen(&mut short, &token).await, ("connected".into(), None));
        // Refreshed before it runs out: a new `listen` with a token good for 60 s.
        let mut refreshed = connect(server.http, "/signal", &net.ip(20)).await.unwrap();
        let token = access_token(API_KEY, "s", "bob", 2);
        assert_eq!(listen(&mut refreshed, &token).await.0, "connected");
        let token = access_token(API_KEY, "s", "bob", 60);
        assert_eq!(listen(&mut refreshed, &token).await.0, "connected");
        let started = Instant::now();
        assert_eq!(
            signed_out(&mut short, Duration::from_secs(6)).await,
            Some(31205)
        );
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "not before its time"
        );
        // The refreshed one lives on past its first token's end.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let heartbeat = tokio::time::timeout(Duration::from_secs(6), refreshed.next()).await;
        assert!(
            matches!(&heartbeat, Ok(Some(Ok(Message::Text(t)))) if t.trim().is_empty()),
            "{heartbeat:?}"
        );

        // A key made through the API signs a device in; deleting it signs the device out.
        let (status, made) = twilio(&server, "POST", "Keys.json", "FriendlyName=browser");
        assert_eq!(status, 201, "{made}");
        let (sid, secret) = (
            made["sid"].as_str().unwrap(),
            made["secret"].as_str().unwrap(),
        );
        let mut keyed = connect(server.http, "/signal", &net.ip(21)).await.unwrap();
        let token = access_token(sid, secret, "carol", 600);
        assert_eq!(listen(&mut keyed, &token).await.0, "connected");
        let (status, _) = twilio(&server, "DELETE", &format!("Keys/{sid}.json"), "");
        assert_eq!(status, 204);
        assert_eq!(
            signed_out(&mut keyed, Duration::from_secs(5)).await,
            Some(31204)
        );
        // And the key signs nobody in now.
        let mut again = connect(server.http, "/signal", &net.ip(21)).await.unwrap();
        assert_eq!(
            listen(&mut again, &token).await,
            ("error".into(), Some(31204))
        );

        // Longer than a day: refused.
        let mut long = connect(server.http, "/signal", &net.ip(22)).await.unwrap();
        let token = access_token(API_KEY, "s", "dave", 24 * 3600 + 60);
        assert_eq!(
            listen(&mut long, &token).await,
            ("error".into(), Some(20157))
        );
        assert!(next_json(&mut long, Duration::from_secs(5)).await.is_none());
    });
    assert!(
        server.log().contains("browser device's token expired"),
        "{}",
        server.log()
    );
}

/// A Twilio REST request on the account's own resources (`path` under the account).
fn twilio(server: &Server, method: &str, path: &str, form: &str) -> (u16, Value) {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"));
    let headers = format!(
        "Authorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    );
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/{path}");
    let (status, body) = server.request(method, &path, &headers, form.as_bytes());
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The live socket's closing frame (code and reason) within `wait`.
async fn close_of(ws: &mut Socket, wait: Duration) -> Option<(u16, String)> {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                return Some((u16::from(f.code), f.reason.to_string()));
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) => return Some((0, String::new())),
        }
    }
}

/// Item 5. A live socket closes (1008) when its token runs out, and when the account's auth
/// token changes (a reload of the file: the documented way to revoke live tokens), which also
/// refuses the old token at the upgrade; a socket of the new token lives on.
#[test]
fn a_live_socket_closes_when_its_token_runs_out_or_is_revoked() {
    let net = Net::new(188);
    let server = Server::start(&net, &config());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (status, short) = mint_live(&server, json!({"ttl_secs": 2}));
        assert_eq!(status, 201, "{short}");
        let path = format!("/v1/live?token={}", short["token"].as_str().unwrap());
        let mut ws = connect(server.http, &path, &net.ip(20)).await.unwrap();
        let closed = close_of(&mut ws, Duration::from_secs(6)).await;
        assert_eq!(closed, Some((1008, "token expired".into())));

        let (_, long) = mint_live(&server, json!({"ttl_secs": 600}));
        let path = format!("/v1/live?token={}", long["token"].as_str().unwrap());
        let mut ws = connect(server.http, &path, &net.ip(20)).await.unwrap();
        // The auth token changes in the file, which is read again.
        let file = std::fs::read_to_string(server.config_path()).unwrap();
        let changed = file.replace(TOKEN, "a-new-auth-token");
        std::fs::write(server.config_path(), changed).unwrap();
        server.signal("HUP");
        let closed = close_of(&mut ws, Duration::from_secs(5)).await;
        assert_eq!(closed, Some((1008, "token revoked".into())));
        let refused = connect(server.http, &path, &net.ip(20)).await.err();
        assert_eq!(refused, Some(401));
    });
}

/// Item 6. `POST /call_report` is taken only with the `call_report_id` a signed-in page was
/// given in its REGED gateway state (what the SDK posts it with); without one it is refused
/// unlogged, and with one a newline in a field cannot forge a log line.
#[test]
fn call_reports_come_only_from_signed_in_pages_and_forge_no_log_line() {
    let net = Net::new(189);
    let server = Server::start(&net, &config());
    let report = |id: Option<&str>| {
        let body = json!({"summary": {"callId": "abc\nERROR forged line from a report",
                                      "durationSeconds": 3.0}, "stats": []});
        let id = id
            .map(|i| format!("x-call-report-id: {i}\r\n"))
            .unwrap_or_default();
        let headers = format!("Content-Type: application/json\r\n{id}");
        server
            .request(
                "POST",
                "/call_report",
                &headers,
                body.to_string().as_bytes(),
            )
            .0
    };
    assert_eq!(report(None), 401);
    assert_eq!(report(Some("made-up")), 401);

    let (status, body) = server.request(
        "POST",
        "/v2/credential_connections",
        "Authorization: Bearer KEY0123456789ABCDEF_switchboard\r\nContent-Type: application/json\r\n",
        br#"{"connection_name": "phones", "user_name": "reporter1", "password": "report-pw-1"}"#,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let mut ws = connect(server.http, "/", &net.ip(20)).await.unwrap();
        let login = json!({"jsonrpc": "2.0", "id": "1", "method": "login",
                           "params": {"login": "reporter1", "passwd": "report-pw-1"}});
        ws.send(Message::Text(login.to_string().into()))
            .await
            .unwrap();
        // Asked until registered, as the SDK asks.
        for i in 0..50 {
            let state = json!({"jsonrpc": "2.0", "id": format!("s{i}"),
                               "method": "telnyx_rtc.gatewayState", "params": {}});
            ws.send(Message::Text(state.to_string().into()))
                .await
                .unwrap();
            loop {
                let m = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
                if m["id"] != format!("s{i}") {
                    continue;
                }
                if m["result"]["params"]["state"] == "REGED" {
                    return m["result"]["params"]["call_report_id"]
                        .as_str()
                        .expect("REGED carries the call_report_id")
                        .to_owned();
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("never registered");
    });
    assert_eq!(report(Some(&id)), 200);
    server.wait_for_log("browser call report");
    let log = server.log();
    assert!(
        !log.lines().any(|l| l.starts_with("ERROR forged")),
        "a report forged a log line:\n{log}"
    );
    assert!(log.contains(r"abc\nERROR forged"), "{log}");
    assert_eq!(
        log.matches("browser call report").count(),
        1,
        "refused reports are not logged"
    );
}

/// One account's signed-in sockets are bounded (`http.websockets_per_account`) whatever
/// addresses they come from: with two, a third device of the account is refused in Twilio's
/// dialect (20429), a Verto login of the account in Verto's (-32003), a live socket of the
/// account closed 1013, and none of them signs in; another account's device still gets in,
/// and a device that leaves gives its account's place to the next.
#[test]
fn an_account_signs_in_its_share_of_sockets_and_no_more() {
    let net = Net::new(228);
    const OTHER: &str = "AC9999999999999999999999999999999a";
    const OTHER_KEY: &str = "SK9999999999999999999999999999999a";
    let config = format!(
        "{}[[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"other-token\"\n\
         api_keys = [{{ sid = \"{OTHER_KEY}\", secret = \"t\" }}]\n",
        config()
    );
    let server = Server::start_with(
        &net,
        &config,
        &[("SWITCHBOARD_HTTP__WEBSOCKETS_PER_ACCOUNT", "2")],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kept = rt.block_on(async {
        let mut devices = Vec::new();
        for (host, who) in [(20, "alice"), (21, "bob")] {
            let mut ws = connect(server.http, "/signal", &net.ip(host)).await.unwrap();
            let token = access_token(API_KEY, "s", who, 600);
            assert_eq!(listen(&mut ws, &token).await, ("connected".into(), None));
            devices.push(ws);
        }
        // The account's third, from a third address.
        let mut third = connect(server.http, "/signal", &net.ip(22)).await.unwrap();
        let token = access_token(API_KEY, "s", "carol", 600);
        assert_eq!(
            listen(&mut third, &token).await,
            ("error".into(), Some(20429))
        );
        assert!(
            next_json(&mut third, Duration::from_secs(3)).await.is_none(),
            "and its socket is closed"
        );
        // Verto, for the same account.
        let (status, body) = server.request(
            "POST",
            "/v2/credential_connections",
            "Authorization: Bearer KEY0123456789ABCDEF_switchboard\r\nContent-Type: application/json\r\n",
            br#"{"connection_name": "phones", "user_name": "pagefull1", "password": "pagefull-pw-1"}"#,
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let mut verto = connect(server.http, "/", &net.ip(23)).await.unwrap();
        let login = json!({"jsonrpc": "2.0", "id": "1", "method": "login",
                           "params": {"login": "pagefull1", "passwd": "pagefull-pw-1"}});
        verto
            .send(Message::Text(login.to_string().into()))
            .await
            .unwrap();
        let answer = next_json(&mut verto, Duration::from_secs(5)).await.unwrap();
        assert_eq!(answer["error"]["code"], json!(-32003), "{answer}");
        // A live socket of the account.
        let (status, live) = mint_live(&server, json!({"ttl_secs": 600}));
        assert_eq!(status, 201, "{live}");
        let path = format!("/v1/live?token={}", live["token"].as_str().unwrap());
        let mut ws = connect(server.http, &path, &net.ip(24)).await.unwrap();
        let closed = close_of(&mut ws, Duration::from_secs(5)).await;
        assert_eq!(
            closed,
            Some((1013, "this account has all its sockets open".into()))
        );

        // Another account is not held back.
        let mut other = connect(server.http, "/signal", &net.ip(25)).await.unwrap();
        let token = {
            use switchboard_control::infra::jwt::{Algorithm, sign};
            let now = now_secs();
            let mut header = serde_json::Map::new();
            header.insert("typ".into(), json!("JWT"));
            header.insert("cty".into(), json!("twilio-fpa;v=1"));
            let claims = json!({"jti": format!("{OTHER_KEY}-{now}"), "iss": OTHER_KEY,
                                "sub": OTHER, "exp": now + 600,
                                "grants": {"identity": "erin", "voice": {"incoming": {"allow": true}}}});
            sign(Algorithm::Hs256, b"t", header, &claims)
        };
        assert_eq!(listen(&mut other, &token).await, ("connected".into(), None));
        (devices, other)
    });
    assert_eq!(
        server.metric_settles(
            "switchboard_websockets_refused_total{reason=\"account\"}",
            3.0
        ),
        Some(3.0)
    );
    let (mut devices, _other) = kept;
    rt.block_on(async {
        // Alice leaves: her account's place goes to the next device.
        drop(devices.remove(0));
        let token = access_token(API_KEY, "s", "carol", 600);
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let mut again = connect(server.http, "/signal", &net.ip(22)).await.unwrap();
            match listen(&mut again, &token).await {
                (kind, None) if kind == "connected" => break,
                (_, Some(20429)) if Instant::now() < until => {
                    // The server has not yet seen alice's socket end.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => panic!("carol after alice left: {other:?}"),
            }
        }
    });
}

/// Item 4 on two nodes sharing one database: an API key made through node A signs a device in
/// on node B, and deleting the key through A signs that device out on B (31204) — B learns of
/// both through the store's change notices, not from its own API.
#[test]
fn a_key_deleted_through_one_node_signs_its_devices_out_on_the_other() {
    let Some(database) = cluster_database("revocation") else {
        return;
    };
    let (net_a, net_b) = (Net::new(229), Net::new(230));
    let node = |net: &Net, id: &str| {
        Server::start_with(
            net,
            &config(),
            &[
                ("SWITCHBOARD_STORAGE__DATABASE_URL", &database),
                ("SWITCHBOARD_STORAGE__NODE_ID", id),
                ("SWITCHBOARD_SIP__DIGEST_SECRET", "cluster-secret-revoke"),
            ],
        )
    };
    let (a, b) = (node(&net_a, "revoke-a"), node(&net_b, "revoke-b"));
    let (status, made) = twilio(&a, "POST", "Keys.json", "FriendlyName=browser");
    assert_eq!(status, 201, "{made}");
    let (sid, secret) = (
        made["sid"].as_str().unwrap(),
        made["secret"].as_str().unwrap(),
    );
    let token = access_token(sid, secret, "frank", 600);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // B signs the device in once A's notice has reached it.
    let mut device = rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let mut ws = connect(b.http, "/signal", &net_b.ip(20)).await.unwrap();
            match listen(&mut ws, &token).await {
                (kind, None) if kind == "connected" => break ws,
                // Seldom: a failed sign-in counts against the address's guesses.
                (_, Some(31204)) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                other => panic!("B with A's new key: {other:?}"),
            }
        }
    });
    let (status, _) = twilio(&a, "DELETE", &format!("Keys/{sid}.json"), "");
    assert_eq!(status, 204);
    rt.block_on(async {
        assert_eq!(
            signed_out(&mut device, Duration::from_secs(5)).await,
            Some(31204),
            "B signs out a device of a key deleted through A"
        );
        let mut again = connect(b.http, "/signal", &net_b.ip(20)).await.unwrap();
        assert_eq!(
            listen(&mut again, &token).await,
            ("error".into(), Some(31204))
        );
    });
}
