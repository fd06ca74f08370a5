use super::*;
use crate::infra::accounts::HttpMethod;
use crate::infra::webhook::request::{FORM, WebhookRequest};

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
    exercise_connections(store).await;
    exercise_conferences(store).await;
    exercise_queues(store).await;
    exercise_notifications(store).await;
    exercise_transcriptions(store).await;
    exercise_nodes(store).await;
    exercise_subscriptions(store).await;
    exercise_outbox(store).await;
    exercise_quarantine(store).await;
}

/// A row the database refuses while it takes others goes to the quarantine file; the rows
/// around it land and the writer goes on.
async fn exercise_quarantine(store: &Store) {
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
async fn exercise_nodes(store: &Store) {
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
    let status =
        |id: &'static str| async move { store.get_call(id).await.unwrap().unwrap().status };

    assert_eq!(a.close_abandoned_calls(200_001).await.unwrap(), 1);
    assert_eq!(status("CA-a").await, CallStatus::Failed);
    assert_eq!(status("CA-b").await, CallStatus::InProgress, "b is alive");
    assert_eq!(status("CA-c").await, CallStatus::InProgress);

    // c was last seen at 1 s: dead once NODE_STALE_MS have passed, not before.
    assert_eq!(b.close_calls_of_dead_nodes(NODE_STALE_MS).await.unwrap(), 0);
    assert_eq!(
        b.close_calls_of_dead_nodes(1_001 + NODE_STALE_MS)
            .await
            .unwrap(),
        1
    );
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
}

/// The subscriptions stage over this store: what a crash left unmade is rebuilt from the
/// stored events and the call's record, each webhook once, in order, numbered on; a node that
/// stopped has its subscriptions finished by live nodes, and two at once make each webhook
/// once.
async fn exercise_subscriptions(store: &Store) {
    use crate::call::{CallEvent, EventKind};
    use crate::services::subscriptions::{
        History, Hook, Milestone, Moment, Renderer, Subscriptions, Wish,
    };
    use std::sync::Arc;

    /// Renders every milestone (but `ringing` when the context says so) with what it was told.
    struct Echo;
    impl Renderer for Echo {
        fn render(&self, hook: &Hook<'_>, h: &History, m: &Moment) -> Option<WebhookRequest> {
            let what = match &m.milestone {
                Milestone::Initiated => "initiated",
                Milestone::Ringing if hook.context == "no-ringing" => return None,
                Milestone::Ringing => "ringing",
                Milestone::Answered { .. } => "answered",
                Milestone::Ended { status, .. } => status.as_str(),
                _ => return None,
            };
            let answered = h.answered_at.map(|a| a.to_string()).unwrap_or_default();
            let params = [
                ("what".into(), what.into()),
                ("sent".into(), h.sent.to_string()),
                ("answered_at".into(), answered),
            ];
            Some(WebhookRequest::twilio(hook.url, hook.method, &params))
        }
    }
    async fn stage(store: &Store) -> Arc<Subscriptions> {
        let directory = Arc::new(crate::infra::accounts::Directory::default());
        let client = crate::infra::webhook::client::WebhookClient::new(
            crate::infra::egress::Clients::new(None),
        );
        let outbox = crate::infra::webhook::outbox::Outbox::open(
            store.clone(),
            client,
            directory,
            Default::default(),
        )
        .await
        .unwrap();
        // Events are written to the store directly here: no writer queue to wait for.
        let (writer, _task) = StoreWriter::spawn(store.clone(), None);
        let stage = Subscriptions::new(store.clone(), writer.reader(), outbox);
        stage.register("echo", Arc::new(Echo));
        stage
    }
    fn wish(call: &str, context: &str) -> Wish {
        Wish {
            call: call.into(),
            account: "AC1".into(),
            renderer: "echo",
            url: "http://app/status".into(),
            method: HttpMethod::Post,
            context: context.into(),
        }
    }
    fn event(call: &str, seq: u32, at: i64, kind: EventKind) -> (CallEvent, EventRow) {
        let row = EventRow {
            call_id: call.into(),
            seq,
            at,
            kind: kind.name().into(),
            detail: serde_json::to_string(&kind).unwrap(),
        };
        let event = CallEvent {
            call: call.into(),
            seq,
            at,
            kind,
        };
        (event, row)
    }
    async fn made(store: &Store, call: &str) -> Vec<(String, String, String)> {
        store
            .outbox_of_call(call)
            .await
            .unwrap()
            .into_iter()
            .map(|w| {
                let params = w.request.form_params();
                let get = |k: &str| {
                    let v = params.iter().find(|(n, _)| n == k);
                    v.map(|(_, v)| v.clone()).unwrap_or_default()
                };
                (get("what"), get("sent"), get("answered_at"))
            })
            .collect()
    }
    for sql in [
        "DELETE FROM call_subscriptions WHERE call_id LIKE 'CS-%'",
        "DELETE FROM webhook_outbox WHERE call_id LIKE 'CS-%'",
        "DELETE FROM call_events WHERE call_id LIKE 'CS-%'",
        "DELETE FROM calls WHERE id LIKE 'CS-%'",
        "DELETE FROM nodes WHERE id LIKE 'sub-%'",
    ] {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }
    let row = |(_, r): &(CallEvent, EventRow)| r.clone();

    // Node sub-a: a call answered, its `initiated` made live, then the crash.
    let a = store.clone().on_node("sub-a");
    let stage_a = stage(&a).await;
    let mut follower = stage_a.subscribe(wish("CS-1", "")).await;
    let events = [
        event("CS-1", 0, 1_000, EventKind::Initiated),
        event("CS-1", 1, 1_100, EventKind::Ringing),
        event("CS-1", 2, 1_200, EventKind::Answered { codec: None }),
        event("CS-1", 3, 1_300, EventKind::Unbridged { peer_ended: false }),
    ];
    let (writer, task) = StoreWriter::spawn(a.clone(), None);
    writer.save(record("CS-1", 1_000));
    events.iter().for_each(|e| writer.event(row(e)));
    drop(writer);
    task.await.unwrap();
    follower.on_event(&events[0].0).await;
    assert_eq!(made(&a, "CS-1").await.len(), 1);

    // The restart: the call is closed, and the rest is made from what was stored.
    let restarted = crate::infra::clock::now_ms() + 1;
    a.close_abandoned_calls(restarted).await.unwrap();
    let stage_a = stage(&a).await;
    assert_eq!(stage_a.recover(restarted).await.unwrap(), 3);
    let s = |w: &str, n: &str, at: &str| (w.to_owned(), n.to_owned(), at.to_owned());
    assert_eq!(
        made(&a, "CS-1").await,
        [
            s("initiated", "0", ""),
            s("ringing", "1", ""),
            s("answered", "2", "1200"),
            s("failed", "3", "1200"),
        ]
    );
    assert_eq!(stage_a.recover(restarted).await.unwrap(), 0, "done");
    // The old run's follower, were it still about, adds nothing to a finished subscription.
    let end = EventKind::Hangup {
        status: CallStatus::Completed,
        sip_code: Some(200),
        by: HangupBy::Caller,
        cause: None,
        quality: None,
    };
    follower
        .on_event(&event("CS-1", 4, 1_400, end.clone()).0)
        .await;
    assert_eq!(made(&a, "CS-1").await.len(), 4);

    // Node sub-dead: its call ended and the hang-up was stored, but the node died before the
    // webhooks of `answered` and `completed` were made. Two live nodes finish it at once.
    let dead = store.clone().on_node("sub-dead");
    dead.node_seen(1_000).await.unwrap();
    let mut follower = stage(&dead)
        .await
        .subscribe(wish("CS-2", "no-ringing"))
        .await;
    let events = [
        event("CS-2", 0, 1_000, EventKind::Initiated),
        event("CS-2", 1, 1_100, EventKind::Ringing),
        event("CS-2", 2, 2_000, EventKind::Answered { codec: None }),
        event("CS-2", 3, 5_000, end),
    ];
    let mut ended = record("CS-2", 1_000);
    ended.status = CallStatus::Completed;
    ended.ended_at = Some(5_000);
    let (writer, task) = StoreWriter::spawn(dead.clone(), None);
    writer.save(ended);
    events.iter().for_each(|e| writer.event(row(e)));
    drop(writer);
    task.await.unwrap();
    follower.on_event(&events[0].0).await;
    follower.on_event(&events[1].0).await;
    let (b, c) = (
        store.clone().on_node("sub-b"),
        store.clone().on_node("sub-c"),
    );
    let (stage_b, stage_c) = (stage(&b).await, stage(&c).await);
    assert_eq!(
        stage_b.recover_dead_nodes(500).await.unwrap(),
        0,
        "not yet dead"
    );
    let (made_b, made_c) = tokio::join!(
        stage_b.recover_dead_nodes(2_000),
        stage_c.recover_dead_nodes(2_000)
    );
    assert_eq!(made_b.unwrap() + made_c.unwrap(), 2);
    assert_eq!(
        made(store, "CS-2").await,
        [
            s("initiated", "0", ""),
            s("answered", "1", "2000"),
            s("completed", "2", "2000"),
        ]
    );
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

/// Claims: only due rows, only the first undelivered one of each call, never a row under
/// another claim; a claim that runs out (its node died) is claimable again.
async fn exercise_outbox(store: &Store) {
    sqlx::query("DELETE FROM webhook_outbox")
        .execute(store.pool())
        .await
        .unwrap();
    let (a, b) = (
        store.clone().on_node("node-a"),
        store.clone().on_node("node-b"),
    );
    for row in [
        webhook("WH1", "CA1", 1, 100),
        webhook("WH2", "CA1", 2, 100),
        webhook("WH3", "CA2", 3, 100),
        webhook("WH4", "CA3", 4, 5_000),
    ] {
        store.outbox_add(&row).await.unwrap();
    }
    let ids = |rows: Vec<OutboxRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    // Requests come back as they were queued; a GET's parameters are in its URL, a row
    // queued before requests were stored (form parameters only) reads as its Twilio request.
    let mut get = webhook("WH5", "CA5", 5, 9_000);
    let params = [("CallStatus".to_owned(), "busy".to_owned())];
    get.request = WebhookRequest::twilio("http://127.0.0.1:9/s?x=1", HttpMethod::Get, &params)
        .with_failover(Some("http://127.0.0.1:9/failover".into()));
    store.outbox_add(&get).await.unwrap();
    sqlx::query(
        "INSERT INTO webhook_outbox (id, call_id, seq, account_sid, url, method, params, \
         created_at, next_attempt_at) VALUES ('WH6', 'CA6', 6, 'AC1', 'http://127.0.0.1:9/s', \
         'POST', '[[\"CallStatus\",\"no-answer\"]]', 0, 9000)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let old = store.outbox_of_call("CA6").await.unwrap().remove(0).request;
    assert_eq!(
        (old.content_type.as_deref(), old.body.as_str()),
        (Some(FORM), "CallStatus=no-answer")
    );
    let read = store.outbox_of_call("CA5").await.unwrap().remove(0).request;
    assert_eq!(read, get.request);
    assert_eq!(read.url, "http://127.0.0.1:9/s?x=1&CallStatus=busy");
    for id in ["WH5", "WH6"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM webhook_outbox WHERE id = '{id}'"
        )))
        .execute(store.pool())
        .await
        .unwrap();
    }
    assert_eq!(store.outbox_next_due().await.unwrap(), Some(100));
    assert_eq!(
        ids(a.outbox_claim(1_000, 60_000, 10).await.unwrap()),
        ["WH1", "WH3"]
    );
    assert!(
        b.outbox_claim(1_000, 60_000, 10).await.unwrap().is_empty(),
        "claimed by a"
    );
    // The next thing due is WH4 at 5 s (WH2 waits behind WH1, claimed until 61 s).
    assert_eq!(store.outbox_next_due().await.unwrap(), Some(5_000));
    a.outbox_attempted("WH1", 1, Attempt::Delivered, 1_100)
        .await
        .unwrap();
    a.outbox_attempted(
        "WH3",
        1,
        Attempt::Retry {
            at: 3_000,
            error: "HTTP 503".into(),
        },
        1_100,
    )
    .await
    .unwrap();
    assert_eq!(
        ids(b.outbox_claim(1_200, 60_000, 10).await.unwrap()),
        ["WH2"]
    );
    assert!(
        b.outbox_claim(2_999, 60_000, 10).await.unwrap().is_empty(),
        "WH3 not due"
    );
    assert_eq!(
        ids(b.outbox_claim(5_000, 60_000, 10).await.unwrap()),
        ["WH3", "WH4"]
    );
    // b died holding WH2, WH3 and WH4: its claims run out, and a takes them.
    assert!(a.outbox_claim(60_000, 60_000, 10).await.unwrap().is_empty());
    assert_eq!(
        ids(a.outbox_claim(61_200, 60_000, 1).await.unwrap()),
        ["WH2"]
    );
    a.outbox_defer("WH2", 70_000).await.unwrap();
    assert_eq!(store.outbox_next_due().await.unwrap(), Some(65_000));
    // A restarted b drops its claims at once.
    b.close_abandoned_calls(62_000).await.unwrap();
    assert_eq!(
        ids(a.outbox_claim(62_000, 60_000, 10).await.unwrap()),
        ["WH3", "WH4"]
    );

    // Two nodes claiming at once never both get a row.
    sqlx::query("DELETE FROM webhook_outbox")
        .execute(store.pool())
        .await
        .unwrap();
    for i in 0..200 {
        store
            .outbox_add(&webhook(&format!("WHr{i}"), &format!("CAr{i}"), i, 0))
            .await
            .unwrap();
    }
    let claim = |s: Store| async move {
        let mut got = Vec::new();
        loop {
            let rows = s.outbox_claim(1, 60_000, 7).await.unwrap();
            if rows.is_empty() {
                return got;
            }
            got.extend(rows.into_iter().map(|r| r.id));
        }
    };
    let (x, y) = tokio::join!(claim(a.clone()), claim(b.clone()));
    let mut all: Vec<String> = x.iter().chain(&y).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!((x.len() + y.len(), all.len()), (200, 200), "{x:?} {y:?}");
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

async fn exercise_transcriptions(store: &Store) {
    sqlx::query("DELETE FROM transcriptions")
        .execute(store.pool())
        .await
        .unwrap();
    let t = |sid: &str, recording: &str, at: i64| TranscriptionRow {
        sid: sid.into(),
        account_sid: "AC1".into(),
        recording_sid: recording.into(),
        call_sid: Some("CA1".into()),
        status: "in-progress".into(),
        text: None,
        duration_ms: 4200,
        created_at: at,
        updated_at: at,
    };
    store.add_transcription(&t("TR1", "RE1", 1)).await.unwrap();
    store.add_transcription(&t("TR2", "RE2", 2)).await.unwrap();
    store
        .finish_transcription("TR1", "completed", Some("hello there"), 5)
        .await
        .unwrap();
    let all = store.transcriptions("AC1", None).await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.sid.as_str()).collect::<Vec<_>>(),
        ["TR2", "TR1"]
    );
    let one = store.transcriptions("AC1", Some("RE1")).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        (
            one[0].status.as_str(),
            one[0].text.as_deref(),
            one[0].updated_at
        ),
        ("completed", Some("hello there"), 5)
    );
    // Another account sees none of them, fetches none, deletes none.
    assert!(store.transcriptions("AC2", None).await.unwrap().is_empty());
    assert_eq!(store.transcription("AC2", "TR1").await.unwrap(), None);
    assert!(!store.delete_transcription("AC2", "TR1").await.unwrap());
    assert!(store.delete_transcription("AC1", "TR1").await.unwrap());
    assert_eq!(store.transcription("AC1", "TR1").await.unwrap(), None);
    assert!(store.transcription("AC1", "TR2").await.unwrap().is_some());
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
    let (writer, task) = StoreWriter::spawn(store.clone(), None);
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

async fn exercise_connections(store: &Store) {
    use crate::infra::accounts::Connection;
    sqlx::query("DELETE FROM call_control_applications")
        .execute(store.pool())
        .await
        .unwrap();
    let mut row = ConnectionRow {
        connection: Connection {
            id: "1494404757140276705".into(),
            account_sid: "AC1".into(),
            name: "bot".into(),
            webhook_event_url: "http://app/telnyx".into(),
            webhook_event_failover_url: None,
            webhook_api_version: "2".into(),
            first_command_timeout: true,
            first_command_timeout_secs: 10,
            texml: None,
            credential: None,
            settings: serde_json::json!({"dtmf_type": "Inband", "tags": ["a"]})
                .as_object()
                .unwrap()
                .clone(),
        },
        created_at: 1,
        updated_at: 1,
    };
    assert!(store.insert_connection(&row).await.unwrap());
    assert!(!store.insert_connection(&row).await.unwrap());
    row.connection.webhook_event_failover_url = Some("http://app/failover".into());
    row.connection.first_command_timeout = false;
    // A TeXML application keeps its voice settings.
    row.connection.texml = Some(crate::infra::accounts::TexmlVoice {
        voice_url: "http://app/texml".into(),
        voice_method: crate::infra::accounts::HttpMethod::Get,
        voice_fallback_url: None,
        status_callback: Some("http://app/status".into()),
        status_callback_method: crate::infra::accounts::HttpMethod::Post,
    });
    row.updated_at = 2;
    store.update_connection(&row).await.unwrap();
    assert_eq!(store.connections().await.unwrap(), [row]);
    assert!(
        store
            .delete_connection("1494404757140276705")
            .await
            .unwrap()
    );
    assert!(store.connections().await.unwrap().is_empty());
}

async fn exercise_phone_numbers(store: &Store) {
    use crate::infra::accounts::{HttpMethod, Number};
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
            connection_id: Some("1494404757140276705".into()),
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
    row.number.connection_id = None;
    row.number.status_callback = Some("http://app/status".into());
    row.updated_at = 2;
    store.update_phone_number(&row).await.unwrap();
    assert_eq!(store.phone_numbers().await.unwrap(), [row]);
    assert!(store.delete_phone_number("PN1").await.unwrap());
    assert!(!store.delete_phone_number("PN1").await.unwrap());
    assert!(store.insert_phone_number(&taken).await.unwrap());

    // Two nodes sharing the database: a range granted through one node's admin API lets the
    // account claim there at once, and a revoke through the other holds on the first.
    sqlx::query("DELETE FROM number_ranges")
        .execute(store.pool())
        .await
        .unwrap();
    let node_a = crate::services::phone_numbers::PhoneNumbers::open(store.clone(), &[])
        .await
        .unwrap();
    let node_b = crate::services::phone_numbers::PhoneNumbers::open(store.clone(), &[])
        .await
        .unwrap();
    let account = crate::infra::accounts::Account::for_test("AC9");
    let range = crate::infra::accounts::NumberRange::parse("+1777555*").unwrap();
    assert!(!node_b.may_claim(&account, "+17775550100").await.unwrap());
    assert_eq!(node_a.grant("AC9", range.clone()).await.ok(), Some(true));
    assert!(node_b.may_claim(&account, "+17775550100").await.unwrap());
    assert!(!node_b.may_claim(&account, "+17785550100").await.unwrap());
    assert_eq!(
        node_b.ranges("AC9").await.unwrap(),
        std::slice::from_ref(&range)
    );
    // Granting it again through the other node adds nothing.
    assert_eq!(node_b.grant("AC9", range.clone()).await.ok(), Some(false));
    assert!(node_b.revoke("AC9", &range).await.unwrap());
    assert!(!node_a.may_claim(&account, "+17775550100").await.unwrap());
    // Another account's grant is not this one's.
    node_a.grant("AC8", range.clone()).await.unwrap();
    assert!(!node_b.may_claim(&account, "+17775550100").await.unwrap());
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
