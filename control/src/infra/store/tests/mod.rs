use super::*;
use crate::infra::accounts::HttpMethod;
use crate::infra::webhook::request::{FORM, WebhookRequest};

mod calls;
mod directory;
mod webhooks;
use calls::*;
use directory::*;
use webhooks::*;

fn record(id: &str, started_at: i64) -> CallRecord {
    CallRecord {
        direction: super::Direction::Inbound,
        parent_id: None,
        account_sid: None,
        id: id.into(),
        from: "+15550001".into(),
        to: "+15551234".into(),
        from_uri: "sip:+15550001@127.0.0.2".into(),
        to_uri: "sip:+15551234@127.0.0.1".into(),
        trunk_in: Some("carrier-a".into()),
        user_in: None,
        trunk_out: Some("carrier-b".into()),
        user_out: None,
        status: CallStatus::InProgress,
        sip_code: None,
        hangup_by: None,
        hangup_cause: None,
        sip_call_id: format!("{id}@test"),
        sip_tags: super::SipTags {
            local: Some(format!("{id}-tag")),
            remote: None,
        },
        started_at,
        answered_at: None,
        ended_at: None,
        duration_secs: 0,
        legs: Vec::new(),
    }
}

fn leg(name: &str, packets: u64) -> LegRecord {
    LegRecord {
        leg: name.into(),
        sip_call_id: Some("x@y".into()),
        sip_tags: Default::default(),
        remote_rtp: Some("127.0.0.2:6000".into()),
        codec: Some("PCMA".into()),
        packets_in: packets,
        packets_out: packets + 1,
        bytes_in: packets * 172,
        bytes_out: (packets + 1) * 172,
        lost: 0,
        out_of_order: 0,
        dropped: 0,
    }
}

async fn exercise(store: &Store) {
    sqlx::query("DELETE FROM call_legs")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM calls")
        .execute(store.pool())
        .await
        .unwrap();
    store
        .save(&[record("CA1", 1_000), record("CA2", 2_000)])
        .await
        .unwrap();
    let mut answered = record("CA1", 1_000);
    answered.answered_at = Some(1_500);
    store.save(&[answered.clone()]).await.unwrap();
    let mut ended = answered;
    ended.status = CallStatus::Completed;
    ended.sip_code = Some(200);
    ended.hangup_by = Some(HangupBy::Callee);
    ended.ended_at = Some(11_501);
    ended.legs = vec![leg("caller", 500), leg("callee", 499)];
    store.save(&[ended.clone()]).await.unwrap();
    // Saving the same final state again changes nothing.
    store.save(&[ended]).await.unwrap();
    let calls = store.list_calls(10).await.unwrap();
    assert_eq!(
        calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["CA2", "CA1"],
        "newest first"
    );
    let c1 = &calls[1];
    assert_eq!(c1.status, CallStatus::Completed);
    assert_eq!(c1.duration_secs, 11, "10.001 s rounds up");
    assert_eq!(c1.hangup_by, Some(HangupBy::Callee));
    assert_eq!(c1.legs.len(), 2);
    assert_eq!(c1.legs[0].leg, "callee");
    assert_eq!(c1.legs[1].packets_out, 501);
    assert_eq!(calls[0].status, CallStatus::InProgress);
    assert_eq!(store.list_calls(1).await.unwrap().len(), 1);
    assert_eq!(store.close_abandoned_calls(3_000).await.unwrap(), 1);
    let c2 = store.get_call("CA2").await.unwrap().unwrap();
    assert_eq!(
        (c2.status, c2.ended_at, c2.hangup_by),
        (CallStatus::Failed, Some(3_000), Some(HangupBy::System))
    );
    assert!(store.get_call("nope").await.unwrap().is_none());
    let json = serde_json::to_value(c1).unwrap();
    assert_eq!(json["started_at"], "1970-01-01T00:00:01.000Z");
    assert_eq!(json["status"], "completed");
    assert_eq!(json["legs"][0]["packets_in"], 499);
    exercise_phone_numbers(store).await;
    exercise_connections(store).await;
    exercise_conferences(store).await;
    exercise_queues(store).await;
    exercise_notifications(store).await;
    exercise_transcriptions(store).await;
    exercise_nodes(store).await;
    exercise_rooms(store).await;
    exercise_subscriptions(store).await;
    exercise_outbox(store).await;
    exercise_quarantine(store).await;
}

fn webhook(id: &str, call: &str, seq: i64, due: i64) -> OutboxRow {
    OutboxRow {
        id: id.into(),
        call_id: call.into(),
        seq,
        account_sid: "AC1".into(),
        request: WebhookRequest::twilio(
            "http://127.0.0.1:9/status",
            HttpMethod::Post,
            &[("CallStatus".into(), "completed".into())],
        ),
        created_at: 0,
        next_attempt_at: due,
        attempts: 0,
    }
}

#[tokio::test]
async fn sqlite_file_and_directory_are_created_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/switchboard.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(path.exists());
    exercise(&store).await;
    store.close().await;
    // Reopening runs no migration twice and keeps the data.
    let again = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_eq!(
        again.list_calls(10).await.unwrap().len(),
        5,
        "the node and subscription exercises' calls"
    );
}

#[tokio::test]
async fn writer_batches_and_drains_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/w.db", dir.path().display()))
        .await
        .unwrap();
    let (writer, task) = StoreWriter::spawn(store.clone(), None);
    for i in 0..300 {
        writer.save(record(&format!("CA{i:03}"), i));
        // A later snapshot of the same call replaces the earlier one.
        let mut done = record(&format!("CA{i:03}"), i);
        done.status = CallStatus::Completed;
        writer.save(done);
    }
    drop(writer);
    task.await.unwrap();
    let calls = store.list_calls(1000).await.unwrap();
    assert_eq!(calls.len(), 300);
    assert!(calls.iter().all(|c| c.status == CallStatus::Completed));
    // Each row's values landed in its own row and columns (statements of many rows, their
    // values bound in order).
    for c in &calls {
        let i: i64 = c.id[2..].parse().unwrap();
        assert_eq!(
            (c.started_at, c.sip_call_id.as_str()),
            (i, format!("{}@test", c.id).as_str())
        );
    }
}

/// While the database is away, later snapshots of a call join the waiting batch instead of
/// piling up, and past HIGH_WATER rows held the writer reports itself overloaded (the call
/// core then refuses new calls).
#[tokio::test]
async fn an_outage_coalesces_and_then_overloads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/o.db", dir.path().display()))
        .await
        .unwrap();
    let (writer, task) = StoreWriter::spawn(store.clone(), None);
    store.pool().close().await;
    for round in 0..500 {
        for i in 0..10 {
            let mut r = record(&format!("CO{i}"), round);
            r.sip_code = Some(180);
            writer.save(r);
        }
    }
    let held_settles = |want: u64| {
        let writer = writer.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while writer.held() != want {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{} held, waiting for {want}",
                    writer.held()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    // 5,000 snapshots of 10 calls are 10 rows.
    held_settles(10).await;
    assert_eq!(writer.backlog(), 5_000);
    assert!(!writer.overloaded());
    let events = writer::HIGH_WATER;
    for seq in 0..events {
        writer.event(EventRow {
            call_id: "CO0".into(),
            seq: seq as u32,
            at: 1,
            kind: "dtmf".into(),
            detail: "{}".into(),
        });
    }
    held_settles(10 + events).await;
    assert!(writer.overloaded());
    task.abort();
}

#[tokio::test]
async fn bad_urls_are_refused() {
    assert!(matches!(
        Store::open("mysql://x").await,
        Err(StoreError::BadUrl(_))
    ));
    assert!(matches!(
        Store::open("sqlite://").await,
        Err(StoreError::BadUrl(_))
    ));
}

/// Runs against PostgreSQL when `SWITCHBOARD_TEST_POSTGRES_URL` names one (the test script
/// starts a server and sets it; `SWITCHBOARD_REQUIRE_POSTGRES=1` makes its absence an error).
#[tokio::test]
async fn postgres_uses_the_same_code() {
    let Ok(url) = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("SWITCHBOARD_REQUIRE_POSTGRES").is_err(),
            "PostgreSQL required but not configured"
        );
        eprintln!("SWITCHBOARD_TEST_POSTGRES_URL not set; PostgreSQL not exercised");
        return;
    };
    let store = Store::open(&url).await.unwrap();
    exercise(&store).await;
}
