//! What other nodes sharing the database changed, applied here: each node listens for their
//! notifications ([`crate::infra::store::changes`]) and reads the part that changed again —
//! numbers, connections (and the logins they carry), API keys, credentials, verified caller
//! IDs, accounts' call limits — so that the next call and the next request on this node see
//! it; a caller put in a queue there makes the agents waiting here look at their queues again.
//! Everything is read again (and every waiting agent looks again) when the listening
//! connection comes back and once a minute regardless: the safety net for a notification sent
//! while this node was not listening.

use crate::call::account_limits::AccountLimits;
use crate::infra::store::changes::{Changed, parse_payload};
use crate::infra::store::{Store, StoreError};
use crate::services::directory::api_keys::ApiKeys;
use crate::services::directory::connections::Connections;
use crate::services::directory::sip_logins::SipLogins;
use crate::services::directory::verified_caller_ids::VerifiedCallerIds;
use crate::services::inbound::Inbound;
use crate::services::queues::Queues;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// How often everything is read again, notified or not.
const FULL_REFRESH: Duration = Duration::from_secs(60);
/// How long to wait before listening again after the connection failed.
const RECONNECT: Duration = Duration::from_secs(1);

/// What this node holds in memory of the shared store.
#[derive(Clone)]
pub struct Held {
    /// The numbers, and whose their calls are.
    pub inbound: Arc<Inbound>,
    pub connections: Arc<Connections>,
    pub api_keys: Arc<ApiKeys>,
    pub logins: Arc<SipLogins>,
    pub caller_ids: Arc<VerifiedCallerIds>,
    /// Accounts' call limits, as the admin API set them.
    pub account_limits: Arc<AccountLimits>,
    /// The queues, whose waiting agents look again when a caller joins on another node.
    pub queues: Arc<Queues>,
    /// Accounts made under others.
    pub subaccounts: Arc<crate::services::directory::subaccounts::Subaccounts>,
    /// SIP domains and their lists (their logins follow).
    pub sip_domains: Arc<crate::services::directory::sip_domains::SipDomains>,
    /// Tenants' trunks: an IP connection or a number changed elsewhere changes them here.
    pub sip_trunks: Arc<crate::services::directory::sip_trunks::SipTrunks>,
    /// The trunks and routes the admin API added.
    pub routing: Option<Arc<dyn crate::operator::additions::ConfigAdmin>>,
    pub store: Store,
}

impl Held {
    /// Reads `changed` again from the store.
    pub async fn reload(&self, changed: Changed) -> Result<(), StoreError> {
        match changed {
            Changed::Numbers => {
                self.inbound.reload_numbers().await?;
                self.trunks_changed().await;
                Ok(())
            }
            // A connection carries a login, and its credentials' logins depend on it.
            Changed::Connections => {
                self.connections.reload().await?;
                self.logins.reload().await?;
                self.trunks_changed().await;
                Ok(())
            }
            Changed::ApiKeys => self.api_keys.reload().await,
            Changed::Credentials => self.logins.reload().await,
            Changed::CallerIds => self.caller_ids.reload().await,
            Changed::AccountLimits => {
                for (account, limits) in self.store.account_limits().await? {
                    self.account_limits.set(&account, limits);
                }
                Ok(())
            }
            Changed::QueueMembers => {
                self.queues.look_again();
                Ok(())
            }
            Changed::Subaccounts => self.subaccounts.reload().await,
            Changed::SipDomains => self.sip_domains.reload().await,
            Changed::Routing => {
                if let Some(routing) = &self.routing {
                    let applied =
                        crate::operator::additions::apply_stored(&self.store, routing.as_ref())
                            .await;
                    if let Err(why) = applied {
                        warn!(%why, "the trunks and routes another node added do not apply here");
                    }
                }
                Ok(())
            }
        }
    }

    async fn trunks_changed(&self) {
        self.sip_trunks.publish().await;
    }

    async fn reload_all(&self) {
        for changed in Changed::ALL {
            if let Err(e) = self.reload(changed).await {
                warn!(error = %e, changed = changed.as_str(), "cannot read the shared store again");
            }
        }
    }
}

/// Follows the other nodes' changes until the task is dropped; nothing to follow on SQLite.
pub async fn follow(store: Store, held: Held) {
    if !store.shared() {
        return;
    }
    let mut refresh = tokio::time::interval(FULL_REFRESH);
    refresh.tick().await;
    loop {
        let mut listener = match store.listen_for_changes().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "cannot listen for the other nodes' changes");
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
        };
        // What changed while this node was not listening.
        held.reload_all().await;
        loop {
            tokio::select! {
                notification = listener.recv() => match notification {
                    Ok(n) => match parse_payload(n.payload()) {
                        Some((node, _)) if node == store.node() => {}
                        Some((node, changed)) => {
                            debug!(node, changed = changed.as_str(), "another node changed something");
                            if let Err(e) = held.reload(changed).await {
                                warn!(error = %e, changed = changed.as_str(), "cannot read the shared store again");
                            }
                        }
                        None => warn!(payload = n.payload(), "a change notification not understood"),
                    },
                    Err(e) => {
                        warn!(error = %e, "lost the change notifications; listening again");
                        break;
                    }
                },
                _ = refresh.tick() => held.reload_all().await,
            }
        }
        tokio::time::sleep(RECONNECT).await;
        info!("listening for the other nodes' changes again");
    }
}
