use super::*;

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
    exercise_conferences(store).await;
    exercise_queues(store).await;
    exercise_notifications(store).await;
}

async fn exercise_notifications(store: &Store) {
    sqlx::query("DELETE FROM notifications")
        .execute(store.pool())
        .await
        .unwrap();
    let n = |sid: &str, call: Option<&str>, at: i64| NotificationRow {
        sid: sid.into(),
        account_sid: "AC1".into(),
        call_sid: call.map(str::to_owned),
        error_code: 12200,
        log: 0,
        message_text: "Msg=bad".into(),
        request_url: None,
        request_method: Some("POST".into()),
        created_at: at,
    };
    store
        .add_notification(&n("NO1", Some("CA1"), 1))
        .await
        .unwrap();
    store.add_notification(&n("NO2", None, 2)).await.unwrap();
    let all = store.notifications("AC1", None).await.unwrap();
    assert_eq!(
        all.iter().map(|n| n.sid.as_str()).collect::<Vec<_>>(),
        ["NO2", "NO1"]
    );
    assert_eq!(
        store.notifications("AC1", Some("CA1")).await.unwrap(),
        [n("NO1", Some("CA1"), 1)]
    );
    assert!(store.notifications("AC2", None).await.unwrap().is_empty());
}

async fn exercise_queues(store: &Store) {
    sqlx::query("DELETE FROM queues")
        .execute(store.pool())
        .await
        .unwrap();
    let mut q = QueueRow {
        sid: "QU1".into(),
        account_sid: "AC1".into(),
        friendly_name: "support".into(),
        max_size: 1000,
        created_at: 1,
        updated_at: 1,
    };
    store.save_queue(&q).await.unwrap();
    (q.friendly_name, q.max_size, q.updated_at) = ("help".into(), 5, 2);
    store.save_queue(&q).await.unwrap();
    assert_eq!(store.queues().await.unwrap(), [q.clone()]);
    // One name per account.
    let twin = QueueRow {
        sid: "QU2".into(),
        ..q.clone()
    };
    assert!(store.save_queue(&twin).await.is_err());
    store.delete_queue("QU1").await.unwrap();
    assert!(store.queues().await.unwrap().is_empty());
}

async fn exercise_conferences(store: &Store) {
    sqlx::query("DELETE FROM conferences")
        .execute(store.pool())
        .await
        .unwrap();
    let row = |sid: &str, name: &str, status: &str| ConferenceRow {
        sid: sid.into(),
        name: name.into(),
        status: status.into(),
        created_at: 1,
        updated_at: 1,
        reason_ended: None,
        ended_by: None,
    };
    let (writer, task) = StoreWriter::spawn(store.clone());
    writer.conference(row("CF1", "AC1:sales", "init"));
    writer.conference(row("CF2", "AC2:sales", "in-progress"));
    writer.sync().await;
    let mut over = row("CF1", "AC1:sales", "completed");
    (over.updated_at, over.reason_ended, over.ended_by) =
        (9, Some("last-participant-left".into()), Some("CA1".into()));
    writer.conference(over.clone());
    drop(writer);
    task.await.unwrap();
    // By the account's prefix: another account's room of the same name is not listed.
    assert_eq!(store.conferences("AC1:").await.unwrap(), [over]);
    assert_eq!(store.conferences("AC").await.unwrap().len(), 2);
    assert!(store.conferences("AC1:%").await.unwrap().is_empty());
}

async fn exercise_phone_numbers(store: &Store) {
    use crate::accounts::{HttpMethod, Number};
    sqlx::query("DELETE FROM phone_numbers")
        .execute(store.pool())
        .await
        .unwrap();
    let mut row = PhoneNumberRow {
        sid: "PN1".into(),
        friendly_name: "(666) 555-0100".into(),
        number: Number {
            phone_number: "+16665550100".into(),
            account_sid: "AC1".into(),
            voice_url: Some("http://app/voice".into()),
            voice_method: HttpMethod::Get,
            voice_fallback_url: None,
            voice_fallback_method: HttpMethod::Post,
            status_callback: None,
            status_callback_method: HttpMethod::Post,
        },
        created_at: 1,
        updated_at: 1,
    };
    assert!(store.insert_phone_number(&row).await.unwrap());
    // The number is one account's at a time.
    let mut taken = row.clone();
    (taken.sid, taken.number.account_sid) = ("PN2".into(), "AC2".into());
    assert!(!store.insert_phone_number(&taken).await.unwrap());
    row.number.voice_url = None;
    row.number.status_callback = Some("http://app/status".into());
    row.updated_at = 2;
    store.update_phone_number(&row).await.unwrap();
    assert_eq!(store.phone_numbers().await.unwrap(), [row]);
    assert!(store.delete_phone_number("PN1").await.unwrap());
    assert!(!store.delete_phone_number("PN1").await.unwrap());
    assert!(store.insert_phone_number(&taken).await.unwrap());
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
    assert_eq!(again.list_calls(10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn writer_batches_and_drains_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/w.db", dir.path().display()))
        .await
        .unwrap();
    let (writer, task) = StoreWriter::spawn(store.clone());
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
