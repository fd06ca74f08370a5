//! The browser SDKs' signalling sockets against hostile input, spoken raw (no SDK): Telnyx's
//! Verto on `/` and Twilio's on `/signal` answer what is not JSON, what comes before a login
//! and a bad login in their own dialects; a refused login closes the socket and counts as a
//! failed authentication of its address, so a guesser is refused at the upgrade (429) after
//! the burst, while another address still connects.

use crate::common;
use common::sdk_app::telnyx::{ACCOUNT, SEED, TOKEN};
use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

use common::ws_client::Socket;

async fn connect(server: SocketAddr, path: &str, from: &str) -> Result<Socket, u16> {
    common::ws_client::connect(server, path, from, false).await
}

/// The next JSON message (heartbeats passed over); `None` once the socket is closed.
async fn next_json(ws: &mut Socket) -> Option<Value> {
    common::ws_client::next_json(ws, Duration::from_secs(5)).await
}

async fn send(ws: &mut Socket, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

#[test]
fn browser_signalling_refuses_bad_input_in_its_dialect_and_throttles_login_guessers() {
    let net = Net::new(167);
    let config = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\n\
         telnyx_api_keys = [\"KEY0123456789ABCDEF_switchboard\"]\ntelnyx_private_key = \"{SEED}\"\n\
         api_keys = [{{ sid = \"SK0123456789abcdef0123456789abcdef\", secret = \"s\" }}]\n"
    );
    let server = Server::start(&net, &config);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let guesser = net.ip(7);
    rt.block_on(async {
        // Verto: not JSON; a request before a login; a bad login (then the socket closes).
        let mut ws = connect(server.http, "/", &guesser).await.unwrap();
        ws.send(Message::Text("not json".into())).await.unwrap();
        assert_eq!(next_json(&mut ws).await.unwrap()["error"]["code"], -32700);
        let invite =
            json!({"jsonrpc": "2.0", "id": "1", "method": "telnyx_rtc.invite", "params": {}});
        send(&mut ws, invite).await;
        let early = next_json(&mut ws).await.unwrap();
        assert_eq!(
            (early["id"].as_str(), early["error"]["code"].as_i64()),
            (Some("1"), Some(-32000))
        );
        let login = json!({"jsonrpc": "2.0", "id": "2", "method": "login",
                           "params": {"login": "nobody1", "passwd": "guess"}});
        send(&mut ws, login.clone()).await;
        let refused = next_json(&mut ws).await.unwrap();
        assert_eq!(refused["error"]["code"], -32001, "{refused}");
        assert!(
            next_json(&mut ws).await.is_none(),
            "the socket closes after a refused login"
        );

        // Twilio: a frame before `listen`, and a token that is no token: 31204, closed.
        let mut ws = connect(server.http, "/signal", &guesser).await.unwrap();
        let register =
            json!({"type": "register", "version": "1.6", "payload": {"media": {"audio": true}}});
        send(&mut ws, register).await;
        let early = next_json(&mut ws).await.unwrap();
        assert_eq!(
            (
                early["type"].as_str(),
                early["payload"]["error"]["code"].as_u64()
            ),
            (Some("error"), Some(31204))
        );
        assert!(next_json(&mut ws).await.is_none());
        let mut ws = connect(server.http, "/signal", &guesser).await.unwrap();
        let listen = json!({"type": "listen", "version": "1.6", "payload": {"token": "a.b.c"}});
        send(&mut ws, listen).await;
        assert_eq!(
            next_json(&mut ws).await.unwrap()["payload"]["error"]["code"],
            31204
        );
        assert!(next_json(&mut ws).await.is_none());

        // Three failures so far; the default burst is ten: the guesser is refused at the
        // upgrade once it has spent it.
        let mut tries = 3;
        let status = loop {
            match connect(server.http, "/", &guesser).await {
                Err(status) => break status,
                Ok(mut ws) => {
                    send(&mut ws, login.clone()).await;
                    assert_eq!(next_json(&mut ws).await.unwrap()["error"]["code"], -32001);
                    tries += 1;
                    assert!(tries <= 11, "still let in after {tries} failed logins");
                }
            }
        };
        assert_eq!(status, 429, "after {tries} failed logins");
        assert!(tries >= 10, "refused after only {tries}");
        // Another address is not held back by the guesser.
        let mut ws = connect(server.http, "/", &net.ip(8)).await.unwrap();
        let ping = json!({"jsonrpc": "2.0", "id": "3", "method": "telnyx_rtc.ping", "params": {}});
        send(&mut ws, ping).await;
        assert_eq!(next_json(&mut ws).await.unwrap()["error"]["code"], -32000);

        // Reconnections that claim what is not theirs. Twilio: a signed-in device's reconnect
        // invite with a forged token, and one with a token far too long, each get a hangup
        // with 31005 and take nothing; the socket goes on.
        let mut ws = connect(server.http, "/signal", &net.ip(8)).await.unwrap();
        let listen = json!({"type": "listen", "version": "1.6",
                            "payload": {"token": twilio_token(), "reconnectTimeout": 30}});
        send(&mut ws, listen).await;
        assert_eq!(next_json(&mut ws).await.unwrap()["type"], "connected");
        for (callsid, token) in [
            ("CA0123456789abcdef0123456789abcdef", "forged".to_owned()),
            ("CA00000000000000000000000000000001", "x".repeat(100_000)),
        ] {
            let invite = json!({"type": "invite", "version": "1.6",
                                "payload": {"callsid": callsid, "sdp": "v=0", "reconnect": token,
                                            "twilio": {}}});
            send(&mut ws, invite).await;
            let refused = next_json(&mut ws).await.unwrap();
            assert_eq!(refused["type"], "hangup", "{refused}");
            assert_eq!(refused["payload"]["callsid"], callsid, "{refused}");
            assert_eq!(refused["payload"]["error"]["code"], 31005, "{refused}");
        }
        // User-defined messages: another type (31210), one too large (31212), one for a call
        // the device does not hold (31100); each names its message, the socket goes on.
        let call = "CA0123456789abcdef0123456789abcdef";
        let event = "KX0123456789abcdef0123456789abcdef";
        for (messagetype, content, code) in [
            ("custom", json!({"a": 1}), 31210),
            ("user-defined-message", json!({"a": "x".repeat(20_000)}), 31212),
            ("user-defined-message", json!({"a": 1}), 31100),
        ] {
            let message = json!({"type": "message", "version": "1.6",
                                 "payload": {"callsid": call, "content": content,
                                             "contenttype": "application/json",
                                             "messagetype": messagetype, "voiceeventsid": event}});
            send(&mut ws, message).await;
            let refused = next_json(&mut ws).await.unwrap();
            assert_eq!(refused["type"], "error", "{refused}");
            assert_eq!(refused["payload"]["error"]["code"], code, "{refused}");
            assert_eq!(refused["payload"]["voiceeventsid"], event, "{refused}");
        }
        // Nor does the REST API reach a call no device holds; a Content that is not JSON is
        // refused as such.
        let auth = Some((ACCOUNT, TOKEN));
        for (path, body, code) in [
            ("UserDefinedMessages.json", "Content=%7B%22a%22%3A1%7D", 21220),
            ("UserDefinedMessageSubscriptions.json", "Callback=http%3A%2F%2F127.0.0.1%2Fm", 21220),
            ("UserDefinedMessages.json", "Content=not+json", 20001),
        ] {
            let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{call}/{path}");
            let (status, body) = server.http("POST", &path, auth, body);
            assert_eq!((status, json(&body)["code"].as_u64()), (400, Some(code)), "{body}");
        }
        // Telnyx: a login that claims another session's `sessid` as a reconnection is an
        // ordinary login: its own session, nothing reattached.
        let (status, body) = server.request(
            "POST",
            "/v2/credential_connections",
            "Authorization: Bearer KEY0123456789ABCDEF_switchboard\r\nContent-Type: application/json\r\n",
            br#"{"connection_name": "phones", "user_name": "reconnecter1", "password": "reconnect-pw-1"}"#,
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let mut ws = connect(server.http, "/", &net.ip(8)).await.unwrap();
        let login = json!({"jsonrpc": "2.0", "id": "4", "method": "login",
                           "params": {"login": "reconnecter1", "passwd": "reconnect-pw-1",
                                      "reconnection": true, "sessid": "someone-elses-session"}});
        send(&mut ws, login).await;
        let logged = next_json(&mut ws).await.unwrap();
        let sessid = logged["result"]["sessid"].as_str().unwrap_or_default();
        assert!(!sessid.is_empty() && sessid != "someone-elses-session", "{logged}");
        let ready = loop {
            let m = next_json(&mut ws).await.expect("clientReady");
            if m["method"] == "telnyx_rtc.clientReady" {
                break m;
            }
        };
        assert_eq!(ready["params"]["reattached_sessions"], json!([]), "{ready}");
    });
}

/// An access token for `alice` signed with the configuration's API key (`SK…`, secret `s`).
fn twilio_token() -> String {
    use switchboard_control::infra::jwt::{Algorithm, sign};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let key = "SK0123456789abcdef0123456789abcdef";
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), json!("JWT"));
    header.insert("cty".into(), json!("twilio-fpa;v=1"));
    let claims = json!({"jti": format!("{key}-{now}"), "iss": key, "sub": ACCOUNT,
                        "exp": now + 600,
                        "grants": {"identity": "alice", "voice": {"incoming": {"allow": true}}}});
    sign(Algorithm::Hs256, b"s", header, &claims)
}
