//! This node's heartbeat in the shared store, and the clean-up of nodes that stopped theirs.

use std::sync::Arc;
use std::time::Duration;
use switchboard_control::infra::store::Store;
use switchboard_control::services::subscriptions::Subscriptions;
use tracing::{info, warn};

/// Beats this node's heartbeat a third of `cluster.dead_after_secs` apart and, on each beat,
/// finishes what nodes that stopped beating theirs left: their calls and conferences closed,
/// their open recordings completed, the status callbacks of both made. Every live node does
/// this; the store's claims make each piece happen once.
pub(crate) async fn heartbeat(store: Store, subscriptions: Arc<Subscriptions>) {
    let period = Duration::from_millis(
        u64::try_from(store.dead_after_ms() / 3)
            .unwrap_or(1)
            .max(500),
    );
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = switchboard_control::infra::clock::now_ms();
        if let Err(e) = store.node_seen(now).await {
            warn!(error = %e, "cannot record this node's heartbeat");
            continue;
        }
        match store.close_calls_of_dead_nodes(now).await {
            Ok(0) => {}
            Ok(n) => warn!(
                closed = n,
                "calls of a node that stopped its heartbeat were closed as failed"
            ),
            Err(e) => warn!(error = %e, "cannot close the calls of stopped nodes"),
        }
        match switchboard_control::services::recording_recovery::recover_dead_nodes_recordings(
            &store, now,
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => info!(
                recordings = n,
                "recordings of a node that stopped were completed"
            ),
            Err(e) => warn!(error = %e, "cannot complete the recordings of stopped nodes"),
        }
        // Their status callbacks, and those of calls that ended before the node stopped.
        let stale_before = now.saturating_sub(store.dead_after_ms());
        if let Err(e) = subscriptions.recover_dead_nodes(stale_before).await {
            warn!(error = %e, "cannot finish the status callbacks of stopped nodes");
        }
    }
}
