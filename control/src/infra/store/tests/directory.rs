//! What accounts keep: transcriptions, queues, conferences, connections, phone numbers.

use super::*;

pub(super) async fn exercise_transcriptions(store: &Store) {
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

pub(super) async fn exercise_queues(store: &Store) {
    for table in ["queues", "queue_members"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(store.pool())
            .await
            .unwrap();
    }
    let mut q = QueueRow {
        sid: "QU1".into(),
        account_sid: "AC1".into(),
        friendly_name: "support".into(),
        max_size: 1000,
        created_at: 1,
        updated_at: 1,
    };
    assert!(store.add_queue(&q).await.unwrap());
    (q.friendly_name, q.max_size, q.updated_at) = ("help".into(), 2, 2);
    store.save_queue(&q).await.unwrap();
    let listed = store.queues_of("AC1").await.unwrap();
    assert_eq!(listed.iter().map(|s| &s.row).collect::<Vec<_>>(), [&q]);
    // One name per account.
    let twin = QueueRow {
        sid: "QU2".into(),
        ..q.clone()
    };
    assert!(!store.add_queue(&twin).await.unwrap());
    // Callers of two nodes, in order, up to the size; one leaving counts its wait.
    let other = store.clone().on_node("node-2");
    assert!(
        store
            .add_queue_member("QU1", "CA1", 2, 1_000)
            .await
            .unwrap()
    );
    assert!(
        other
            .add_queue_member("QU1", "CA2", 2, 2_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_queue_member("QU1", "CA3", 2, 3_000)
            .await
            .unwrap(),
        "full"
    );
    let members = store.queue_members("QU1").await.unwrap();
    let calls: Vec<(&str, &str)> = (members.iter())
        .map(|m| (m.call.as_str(), m.node.as_str()))
        .collect();
    assert_eq!(calls, [("CA1", store.node()), ("CA2", "node-2")]);
    let left = store
        .remove_queue_member("QU1", "CA1", 5_000)
        .await
        .unwrap();
    assert_eq!(left.map(|m| m.enqueued_at), Some(1_000));
    assert!(
        store
            .remove_queue_member("QU1", "CA1", 5_000)
            .await
            .unwrap()
            .is_none()
    );
    let q1 = store
        .queue_of("AC1", Some("QU1"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((q1.waited_ms, q1.departed), (4_000, 1));
    assert_eq!(
        store
            .queue_of("AC1", None, Some("help"))
            .await
            .unwrap()
            .map(|q| q.row.sid),
        Some("QU1".into())
    );
    assert!(
        store
            .queue_of("AC2", Some("QU1"), None)
            .await
            .unwrap()
            .is_none(),
        "another account's"
    );
    // node-2 dies: a live node takes its callers out; node-2's own restart would too.
    let live = store.clone().dead_after(60_000);
    other.node_seen(1_000).await.unwrap();
    live.node_seen(100_000).await.unwrap();
    assert!(
        store
            .add_queue_member("QU1", "CA4", 2, 7_000)
            .await
            .unwrap()
    );
    live.close_calls_of_dead_nodes(100_000).await.unwrap();
    let calls: Vec<String> = (store.queue_members("QU1").await.unwrap())
        .into_iter()
        .map(|m| m.call)
        .collect();
    assert_eq!(calls, ["CA4"], "the live node's caller stays");
    assert!(
        other
            .add_queue_member("QU1", "CA5", 3, 8_000)
            .await
            .unwrap()
    );
    other.close_abandoned_calls(9_000).await.unwrap();
    assert_eq!(store.queue_members("QU1").await.unwrap().len(), 1);
    store
        .remove_queue_member("QU1", "CA4", 9_000)
        .await
        .unwrap();
    store.delete_queue("QU1").await.unwrap();
    assert!(store.queues_of("AC1").await.unwrap().is_empty());
}

pub(super) async fn exercise_conferences(store: &Store) {
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
    assert_eq!(store.conferences("AC1:").await.unwrap(), [over.clone()]);
    assert_eq!(store.conferences("AC").await.unwrap().len(), 2);
    assert!(store.conferences("AC1:%").await.unwrap().is_empty());
    // One by its SID, within the account: another's is as unknown.
    assert_eq!(store.conference("AC1:", "CF1").await.unwrap(), Some(over));
    assert_eq!(store.conference("AC1:", "CF2").await.unwrap(), None);
    assert_eq!(store.conference("AC2:", "CF9").await.unwrap(), None);
}

pub(super) async fn exercise_connections(store: &Store) {
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
            ip_trunk: None,
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

pub(super) async fn exercise_phone_numbers(store: &Store) {
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
    let node_a = crate::services::directory::phone_numbers::PhoneNumbers::open(store.clone(), &[])
        .await
        .unwrap();
    let node_b = crate::services::directory::phone_numbers::PhoneNumbers::open(store.clone(), &[])
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
