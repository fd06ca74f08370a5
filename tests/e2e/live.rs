//! The live socket for frontends: tokens minted with an account's REST credentials, a
//! WebSocket that streams the account's call events as the core emits them, scoped by account
//! and by call, and bounded per token.

use crate::common;
use common::voice_app::{ACCOUNT, TOKEN};
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const OTHER: &str = "AC00000000000000000000000000000002";
const OTHER_TOKEN: &str = "other-auth-token";

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// `POST /v1/live/tokens` as `account` with `body`: the status and the answer.
fn mint(server: &Server, (account, token): (&str, &str), body: Value) -> (u16, Value) {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{account}:{token}"));
    let headers = format!("Authorization: Basic {basic}\r\nContent-Type: application/json\r\n");
    let (status, answer) = server.request(
        "POST",
        "/v1/live/tokens",
        &headers,
        body.to_string().as_bytes(),
    );
    (
        status,
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    )
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
/// places shows there as it happens — initiated, ringing, answered, hangup, numbered in order
/// — while a socket of another account, and one scoped to another call, see none of it.
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

        let (status, body) = server.http(
            "POST",
            &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
            Some((ACCOUNT, TOKEN)),
            "To=%2B15551234&From=%2B15550001&Twiml=%3CResponse%3E%3CPause%20length%3D%221%22%2F%3E%3CHangup%2F%3E%3C%2FResponse%3E",
        );
        assert_eq!(status, 201, "{body}");
        let sid = serde_json::from_str::<Value>(&body).unwrap()["sid"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut seen = Vec::new();
        while !seen.iter().any(|e: &Value| e["event"] == "hangup") {
            let event = next_event(&mut ws, Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("the live socket showed {seen:#?}\n{}", server.log()));
            assert_eq!(event["call"], sid.as_str(), "{event}");
            seen.push(event);
        }
        let kinds: Vec<&str> = seen.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(kinds.first(), Some(&"initiated"), "{kinds:?}");
        assert!(kinds.contains(&"answered"), "{kinds:?}");
        let seqs: Vec<u64> = seen.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
        assert!(seen.iter().all(|e| e["at"].as_i64().is_some()));
        // The others were told nothing (they would have been sent it with the first).
        for (who, ws) in [("another account", &mut other), ("another call", &mut narrow)] {
            let got = next_event(ws, Duration::from_millis(500)).await;
            assert!(got.is_none(), "{who} saw {got:?}");
        }
    });
}
