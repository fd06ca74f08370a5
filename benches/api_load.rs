//! Twilio-dialect load figures, printed as tables:
//!
//! - REST create → INVITE: the real binary (release build of this package) takes `POST
//!   /Calls.json` and sends the INVITE to a trunk this bench plays on loopback (it answers 486);
//!   the time from the request to the INVITE on the wire, p50/p99 over sequential calls;
//! - webhook delivery: the durable outbox (SQLite) delivering signed status callbacks to a
//!   loopback application, webhooks per second over many calls.
//!
//!   cargo bench --bench api_load          knobs: CALLS=300, WEBHOOKS=3000

mod support;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::BenchServer;
use switchboard_control::infra::accounts::{Account, Directory, HttpMethod, Listing};
use switchboard_control::infra::store::Store;
use switchboard_control::infra::webhook::client::WebhookClient;
use switchboard_control::infra::webhook::outbox::{Outbox, RetryPolicy};
use switchboard_control::infra::webhook::request::WebhookRequest;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "bench-token";

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A 486 for an INVITE: its Via, From, To (with a tag), Call-ID and CSeq.
fn busy(invite: &str) -> String {
    let mut out = String::from("SIP/2.0 486 Busy Here\r\n");
    for line in invite.lines() {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("via:")
            || lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
        {
            out.push_str(line);
            out.push_str("\r\n");
        } else if lower.starts_with("to:") {
            out.push_str(line);
            out.push_str(";tag=bench\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

fn create_to_invite(calls: usize) {
    let dir = tempfile::tempdir().unwrap();
    let trunk = UdpSocket::bind("127.0.60.3:5060").expect("the bench's trunk address");
    trunk
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let server = BenchServer::start(
        dir.path(),
        &format!(
            "[sip]\nlisten = [\"udp:127.0.60.1:5060\"]\n[media]\nrtp_ports = \"40000-40999\"\n\
             [http]\nlisten = \"127.0.60.1:8080\"\n[storage]\ndatabase_url = \"sqlite://{db}\"\n\
             [[trunks]]\nname = \"carrier\"\naddress = \"127.0.60.3:5060\"\n\
             [[routes]]\npattern = \"^\\\\+1\"\ntrunk = \"carrier\"\n\
             [[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n",
            db = dir.path().join("db.sqlite").display()
        ),
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = switchboard_control::infra::egress::Clients::default()
        .for_url("http://127.0.0.1/", Default::default())
        .expect("loopback is reachable by default")
        .clone();
    let url = format!("http://127.0.60.1:8080/2010-04-01/Accounts/{ACCOUNT}/Calls.json");
    let mut latencies = Vec::new();
    let mut buf = [0u8; 4096];
    for i in 0..calls {
        let to = format!("+1555{:07}", i);
        let started = Instant::now();
        let status = rt.block_on(async {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("To", to.as_str()),
                    ("From", "+15550001"),
                    ("Twiml", "<Response/>"),
                ])
                .finish();
            http.post(&url)
                .basic_auth(ACCOUNT, Some(TOKEN))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        assert_eq!(status.ok(), Some(201));
        // The INVITE for this call (retransmissions of earlier ones are answered too).
        loop {
            let (n, from) = trunk.recv_from(&mut buf).expect("an INVITE");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("INVITE ") {
                continue;
            }
            let _ = trunk.send_to(busy(&text).as_bytes(), from);
            if text.contains(&to) {
                latencies.push(started.elapsed());
                break;
            }
        }
    }
    drop(server);
    latencies.sort();
    println!(
        "| {calls} | {:.2} ms | {:.2} ms | {:.2} ms |",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0,
    );
}

fn webhook_throughput(webhooks: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!(
            "sqlite://{}",
            dir.path().join("o.sqlite").display()
        ))
        .await
        .unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        let app = axum::Router::new().route(
            "/status",
            axum::routing::post(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::Relaxed);
                    ""
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/status", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let directory = Arc::new(Directory::new(Listing {
            accounts: vec![Account {
                sid: ACCOUNT.into(),
                auth_token: TOKEN.into(),
                signing_key: None,
                project_id: None,
                api_keys: Vec::new(),
                number_ranges: Vec::new(),
                caller_ids: Vec::new(),
                reach: Default::default(),
                telnyx_api_keys: Vec::new(),
                telnyx_seed: [7; 32],
                speech_providers: Default::default(),
            }],
            ..Default::default()
        }));
        let outbox = Outbox::open(
            store,
            WebhookClient::default(),
            directory,
            RetryPolicy::default(),
        )
        .await
        .unwrap();
        let started = Instant::now();
        outbox.spawn();
        let calls = (webhooks / 4).max(1);
        for i in 0..webhooks {
            let call = format!("CA{:032x}", i % calls);
            let params = vec![
                ("CallSid".to_owned(), call.clone()),
                ("CallStatus".to_owned(), "completed".to_owned()),
                ("SequenceNumber".to_owned(), (i / calls).to_string()),
            ];
            let request = WebhookRequest::twilio(&url, HttpMethod::Post, &params);
            outbox.send(ACCOUNT, &call, request).await;
        }
        let queued = started.elapsed();
        while received.load(Ordering::Relaxed) < webhooks {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "delivery stalled"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let total = started.elapsed();
        println!(
            "| {webhooks} over {calls} calls | {:.0}/s queued | {:.0}/s delivered |",
            webhooks as f64 / queued.as_secs_f64(),
            webhooks as f64 / total.as_secs_f64(),
        );
    });
}

fn main() {
    println!("REST create → INVITE on the wire (sequential calls, real binary)");
    println!("| calls | p50 | p99 | max |");
    println!("|---|---|---|---|");
    create_to_invite(knob("CALLS", 300));
    println!();
    println!("webhook delivery through the durable outbox (SQLite, signed, loopback app)");
    println!("| webhooks | written | delivered |");
    println!("|---|---|---|");
    webhook_throughput(knob("WEBHOOKS", 3000));
}
