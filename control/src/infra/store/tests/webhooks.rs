//! Subscriptions, the webhook outbox and notifications.

use super::*;

/// The subscriptions stage over this store: what a crash left unmade is rebuilt from the
/// stored events and the call's record, each webhook once, in order, numbered on; a node that
/// stopped has its subscriptions finished by live nodes, and two at once make each webhook
/// once.
pub(super) async fn exercise_subscriptions(store: &Store) {
    use crate::call::{CallEvent, EventKind};
    use crate::services::subscriptions::{
        History, Hook, Milestone, MilestoneEvent, NewSubscription, Renderer, Subscriptions,
    };
    use std::sync::Arc;

    /// Renders every milestone (but `ringing` when the context says so) with what it was told.
    struct Echo;
    impl Renderer for Echo {
        fn render(
            &self,
            hook: &Hook<'_>,
            h: &History,
            m: &MilestoneEvent,
        ) -> Option<WebhookRequest> {
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
    fn subscription_request(call: &str, context: &str) -> NewSubscription {
        NewSubscription {
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
    let mut subscription = stage_a.subscribe(subscription_request("CS-1", "")).await;
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
    subscription.on_event(&events[0].0).await;
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
    subscription
        .on_event(&event("CS-1", 4, 1_400, end.clone()).0)
        .await;
    assert_eq!(made(&a, "CS-1").await.len(), 4);

    // Node sub-dead: its call ended and the hang-up was stored, but the node died before the
    // webhooks of `answered` and `completed` were made. Two live nodes finish it at once.
    let dead = store.clone().on_node("sub-dead");
    dead.node_seen(1_000).await.unwrap();
    let mut subscription = stage(&dead)
        .await
        .subscribe(subscription_request("CS-2", "no-ringing"))
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
    subscription.on_event(&events[0].0).await;
    subscription.on_event(&events[1].0).await;
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

    // A subject two nodes take turns at (a conference's participants' nodes): the node whose
    // count runs far ahead makes the first webhook, the other the second — which still goes
    // after the first.
    let (hi, lo) = (
        store.clone().on_node("sub-hi"),
        store.clone().on_node("sub-lo"),
    );
    let stage_lo = stage(&lo).await;
    store
        .outbox_add(&webhook("WH-CS-ahead", "CS-ahead", 1_000_000, i64::MAX))
        .await
        .unwrap();
    let stage_hi = stage(&hi).await;
    stage_hi.subscribe(subscription_request("CS-3", "")).await;
    let events = [
        event("CS-3", 0, 1_000, EventKind::Initiated),
        event("CS-3", 1, 1_100, EventKind::Ringing),
    ];
    for (seen_by, e) in [(&stage_hi, &events[0]), (&stage_lo, &events[1])] {
        let (writer, task) = StoreWriter::spawn(store.clone(), None);
        writer.event(row(e));
        drop(writer);
        task.await.unwrap();
        assert_eq!(seen_by.catch_up_subject("CS-3").await.unwrap(), 1);
    }
    assert_eq!(
        made(store, "CS-3").await,
        [s("initiated", "0", ""), s("ringing", "1", "")]
    );
}

/// Claims: only due rows, only the first undelivered one of each call, never a row under
/// another claim; a claim that runs out (its node died) is claimable again.
pub(super) async fn exercise_outbox(store: &Store) {
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
        .with_failover(Some("http://127.0.0.1:9/failover".into()))
        .with_timeout(Some(7));
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

pub(super) async fn exercise_notifications(store: &Store) {
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
