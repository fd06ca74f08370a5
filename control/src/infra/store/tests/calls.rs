//! Calls and their legs, events and recordings; quarantined rows; nodes and their heartbeats.

use super::*;

/// A row the database refuses while it takes others goes to the quarantine file; the rows
/// around it land and the writer goes on.
pub(super) async fn exercise_quarantine(store: &Store) {
    let rule = if store.postgres {
        "ALTER TABLE calls ADD CONSTRAINT poison CHECK (from_number <> 'poison')"
    } else {
        "CREATE TRIGGER poison BEFORE INSERT ON calls WHEN NEW.from_number = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
    };
    sqlx::query(rule).execute(store.pool()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q/quarantine.jsonl");
    let (writer, task) = StoreWriter::spawn(store.clone(), Some(file.clone()));
    let mut poison = record("CQ2", 5);
    poison.from = "poison".into();
    writer.save(record("CQ1", 5));
    writer.save(poison);
    writer.save(record("CQ3", 5));
    writer.event(EventRow {
        call_id: "CQ1".into(),
        seq: 0,
        at: 5,
        kind: "initiated".into(),
        detail: "{}".into(),
    });
    writer.sync().await;
    assert!(store.get_call("CQ1").await.unwrap().is_some());
    assert!(store.get_call("CQ3").await.unwrap().is_some());
    assert!(store.get_call("CQ2").await.unwrap().is_none());
    assert_eq!(store.call_events("CQ1").await.unwrap().len(), 1);
    let kept = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = kept
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{kept}");
    assert_eq!(lines[0]["calls"][0]["id"], "CQ2");
    assert_eq!(lines[0]["calls"][0]["from"], "poison");
    assert!(lines[0]["error"].as_str().unwrap().contains("poison"));
    // The writer is not stuck behind it.
    writer.save(record("CQ4", 6));
    writer.sync().await;
    assert!(store.get_call("CQ4").await.unwrap().is_some());
    assert_eq!(writer.backlog(), 0);
    drop(writer);
    task.await.unwrap();
    let undo = if store.postgres {
        "ALTER TABLE calls DROP CONSTRAINT poison"
    } else {
        "DROP TRIGGER poison"
    };
    sqlx::query(undo).execute(store.pool()).await.unwrap();
    for cleanup in [
        "DELETE FROM call_events WHERE call_id LIKE 'CQ%'",
        "DELETE FROM calls WHERE id LIKE 'CQ%'",
    ] {
        sqlx::query(cleanup).execute(store.pool()).await.unwrap();
    }
}

/// Recovery is scoped by node: a restarted node closes its own calls; a node whose heartbeat
/// stopped has its calls closed by a live one; nobody closes a live node's calls.
pub(super) async fn exercise_nodes(store: &Store) {
    for table in ["calls", "nodes"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(store.pool())
            .await
            .unwrap();
    }
    let (a, b, c) = (
        store.clone().on_node("node-a"),
        store.clone().on_node("node-b"),
        store.clone().on_node("node-c"),
    );
    c.node_seen(1_000).await.unwrap();
    a.node_seen(200_000).await.unwrap();
    b.node_seen(200_000).await.unwrap();
    a.save(&[record("CA-a", 1)]).await.unwrap();
    b.save(&[record("CA-b", 1)]).await.unwrap();
    c.save(&[record("CA-c", 1)]).await.unwrap();
    // Which other node carries a live call of an account (a bridge across nodes): b's call is
    // b's, for its account only and not to b itself; a silent node's call is nobody's.
    let mut of_account = record("CA-b2", 1);
    of_account.account_sid = Some("AC1".into());
    b.save(&[of_account]).await.unwrap();
    let mut silent = record("CA-c2", 1);
    silent.account_sid = Some("AC1".into());
    c.save(&[silent]).await.unwrap();
    let elsewhere = |node: &Store, call: &'static str, account: &'static str| {
        let node = node.clone().dead_after(60_000);
        async move {
            node.call_node_elsewhere(call, account, 200_000)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        elsewhere(&a, "CA-b2", "AC1").await.as_deref(),
        Some("node-b")
    );
    assert_eq!(
        elsewhere(&a, "CA-b2", "AC2").await,
        None,
        "another account's"
    );
    assert_eq!(elsewhere(&b, "CA-b2", "AC1").await, None, "its own node's");
    assert_eq!(elsewhere(&a, "CA-c2", "AC1").await, None, "a silent node's");
    for sid in ["CA-b2", "CA-c2"] {
        sqlx::query("DELETE FROM calls WHERE id = $1")
            .bind(sid)
            .execute(store.pool())
            .await
            .unwrap();
    }
    let status =
        |id: &'static str| async move { store.get_call(id).await.unwrap().unwrap().status };

    assert_eq!(a.close_abandoned_calls(200_001).await.unwrap(), 1);
    assert_eq!(status("CA-a").await, CallStatus::Failed);
    assert_eq!(status("CA-b").await, CallStatus::InProgress, "b is alive");
    assert_eq!(status("CA-c").await, CallStatus::InProgress);

    // c was last seen at 1 s: dead once its silence passes the configured bound, not before.
    let b = b.dead_after(60_000);
    assert_eq!(b.close_calls_of_dead_nodes(61_000).await.unwrap(), 0);
    assert_eq!(b.close_calls_of_dead_nodes(61_001).await.unwrap(), 1);
    assert_eq!(status("CA-c").await, CallStatus::Failed);
    assert_eq!(status("CA-b").await, CallStatus::InProgress);
    // A later save of b's call (an update from the node carrying it) keeps its node.
    let mut ended = record("CA-b", 1);
    ended.status = CallStatus::Completed;
    b.save(&[ended]).await.unwrap();
    assert_eq!(a.close_abandoned_calls(300_000).await.unwrap(), 0);

    // Their open conferences too: a's at its restart, c's once c is dead; b's goes on.
    sqlx::query("DELETE FROM conferences")
        .execute(store.pool())
        .await
        .unwrap();
    for (node, sid) in [(&a, "CF-a"), (&b, "CF-b"), (&c, "CF-c")] {
        let (writer, task) = StoreWriter::spawn(node.clone(), None);
        writer.conference(ConferenceRow {
            sid: sid.into(),
            name: format!("AC1:{sid}"),
            status: "in-progress".into(),
            created_at: 1,
            updated_at: 1,
            reason_ended: None,
            ended_by: None,
        });
        drop(writer);
        task.await.unwrap();
    }
    let conference = |sid: &'static str| async move {
        let all = store.conferences("AC1:").await.unwrap();
        let row = all.into_iter().find(|r| r.sid == sid).unwrap();
        (row.status, row.reason_ended)
    };
    a.close_abandoned_calls(300_001).await.unwrap();
    let over = || {
        (
            "completed".to_owned(),
            Some("last-participant-left".to_owned()),
        )
    };
    assert_eq!(conference("CF-a").await, over());
    assert_eq!(conference("CF-c").await.0, "in-progress");
    b.close_calls_of_dead_nodes(300_001).await.unwrap();
    assert_eq!(conference("CF-c").await, over());
    assert_eq!(conference("CF-b").await, ("in-progress".to_owned(), None));

    // Dead c's open recordings are taken over by one live node each, however many try at
    // once; b's own (b is alive) and c's finished one are nobody's to take.
    sqlx::query("DELETE FROM recordings")
        .execute(store.pool())
        .await
        .unwrap();
    let recording = |id: &str, status: &str| RecordingRow {
        id: id.into(),
        call_id: "CA-c".into(),
        leg: None,
        path: format!("/shared/{id}.wav"),
        format: "wav-pcm16".into(),
        channels: 1,
        duration_ms: 0,
        size_bytes: 0,
        status: status.into(),
        started_at: 1,
        ended_at: None,
        error: None,
        origin: "api".into(),
    };
    for (node, rows) in [
        (
            &c,
            vec![
                recording("RE-c1", "in-progress"),
                recording("RE-c2", "paused"),
                recording("RE-c3", "completed"),
            ],
        ),
        (&b, vec![recording("RE-b", "in-progress")]),
    ] {
        let (writer, task) = StoreWriter::spawn(node.clone(), None);
        rows.into_iter().for_each(|r| writer.recording(r));
        drop(writer);
        task.await.unwrap();
    }
    let a = a.dead_after(60_000);
    a.node_seen(300_000).await.unwrap();
    b.node_seen(300_000).await.unwrap();
    let (by_a, by_b) = tokio::join!(
        a.claim_recordings_of_dead_nodes(300_002),
        b.claim_recordings_of_dead_nodes(300_002)
    );
    let mut taken: Vec<String> = (by_a.unwrap().into_iter().chain(by_b.unwrap()))
        .map(|r| r.id)
        .collect();
    taken.sort();
    assert_eq!(taken, ["RE-c1", "RE-c2"], "each once, nothing else");
    assert!(
        a.claim_recordings_of_dead_nodes(300_003)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A room name is one room across nodes: the first claim makes its home and names its
/// conference; a second node learns that home (and where its SIP is); a dead home's room is
/// taken over under a new SID; the home's restart gives its rooms up.
pub(super) async fn exercise_rooms(store: &Store) {
    for table in ["room_homes", "nodes"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(store.pool())
            .await
            .unwrap();
    }
    let a = store.clone().on_node("node-a").dead_after(60_000);
    let b = store.clone().on_node("node-b").dead_after(60_000);
    a.node_seen(100_000).await.unwrap();
    b.node_seen(100_000).await.unwrap();
    a.node_sip("192.0.2.1:5060").await.unwrap();
    let home = a.claim_room("AC1:room", "CFa", 100_000).await.unwrap();
    assert_eq!((home.node.as_str(), home.sid.as_str()), ("node-a", "CFa"));
    // B's claim finds A's room, and where A's SIP is; A's own claim again keeps its SID.
    let seen = b.claim_room("AC1:room", "CFb", 100_001).await.unwrap();
    assert_eq!(seen, home);
    assert_eq!(seen.sip, "192.0.2.1:5060");
    assert_eq!(
        a.claim_room("AC1:room", "CFx", 100_002).await.unwrap().sid,
        "CFa"
    );
    // Requests about the conference go to A, from B; A serves its own.
    sqlx::query("UPDATE nodes SET url = 'http://a' WHERE id = 'node-a'")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(
        b.room_elsewhere("CFa", 100_003).await.unwrap().as_deref(),
        Some("http://a")
    );
    assert_eq!(a.room_elsewhere("CFa", 100_003).await.unwrap(), None);
    // Another room is another claim.
    assert_eq!(
        b.claim_room("AC1:other", "CFo", 100_004)
            .await
            .unwrap()
            .node,
        "node-b"
    );
    // A silent past the bound: its room goes to the next claimant, under that one's SID.
    b.node_seen(170_000).await.unwrap();
    let taken = b.claim_room("AC1:room", "CFb2", 170_000).await.unwrap();
    assert_eq!(
        (taken.node.as_str(), taken.sid.as_str()),
        ("node-b", "CFb2")
    );
    assert_eq!(b.room_elsewhere("CFa", 170_000).await.unwrap(), None);
    // B restarts: its rooms are given up, and the next claim opens them anew.
    b.close_abandoned_calls(171_000).await.unwrap();
    let anew = a.claim_room("AC1:room", "CFa2", 171_001).await.unwrap();
    assert_eq!((anew.node.as_str(), anew.sid.as_str()), ("node-a", "CFa2"));
}
