//! Changes to what nodes hold in memory (numbers, connections, keys, credentials, verified
//! caller IDs), told to the other nodes sharing the database. On PostgreSQL a node that
//! changed something sends a notification (`pg_notify` on [`CHANNEL`], naming itself and what
//! changed) once the change is committed; the other nodes listen and read that part again
//! ([`crate::services::cluster::changes`]). SQLite is one node's: nothing to tell.
//!
//! Chosen over polling a version table: a change reaches the other nodes in milliseconds, and
//! nothing is read while nothing changes. A notification is lost only while a node's listening
//! connection is down; the follower reads everything again when it reconnects, and once a
//! minute regardless.

use super::{Store, StoreError};

/// The notification channel.
pub const CHANNEL: &str = "switchboard_changes";

/// What changed, as a notification names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    Numbers,
    Connections,
    ApiKeys,
    Credentials,
    CallerIds,
    /// The limits the operator set on an account's calls (admin API).
    AccountLimits,
    /// A caller was put in a queue: an agent's `<Dial><Queue>` waiting on another node looks
    /// at the queue again.
    QueueMembers,
    /// An account made, renamed, suspended or closed under another (subaccounts).
    Subaccounts,
    /// A trunk or route the admin API added or removed.
    Routing,
    /// A SIP domain, credential list, IP access control list or mapping made, changed or
    /// deleted.
    SipDomains,
}

impl Changed {
    pub const ALL: [Changed; 10] = [
        Changed::Numbers,
        Changed::Connections,
        Changed::ApiKeys,
        Changed::Credentials,
        Changed::CallerIds,
        Changed::AccountLimits,
        Changed::QueueMembers,
        Changed::Subaccounts,
        Changed::Routing,
        Changed::SipDomains,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Changed::Numbers => "numbers",
            Changed::Connections => "connections",
            Changed::ApiKeys => "api-keys",
            Changed::Credentials => "credentials",
            Changed::CallerIds => "caller-ids",
            Changed::AccountLimits => "account-limits",
            Changed::QueueMembers => "queue-members",
            Changed::Subaccounts => "subaccounts",
            Changed::Routing => "routing",
            Changed::SipDomains => "sip-domains",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A notification's payload: the node that made the change, and what it changed.
pub fn payload(node: &str, changed: Changed) -> String {
    format!("{node} {}", changed.as_str())
}

/// The node and the change a payload names; `None` for anything else.
pub fn parse_payload(payload: &str) -> Option<(&str, Changed)> {
    let (node, what) = payload.rsplit_once(' ')?;
    Some((node, Changed::parse(what)?))
}

impl Store {
    /// Tells the other nodes that `changed` changed (committed already). A notification that
    /// cannot be sent is logged, not an error of the change: the others read everything again
    /// within a minute.
    pub async fn announce(&self, changed: Changed) {
        if !self.postgres {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload(&self.node, changed))
            .execute(&self.pool)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, changed = changed.as_str(), "cannot tell the other nodes of a change");
        }
    }

    /// A connection listening for the other nodes' changes; `None` on SQLite.
    pub async fn listen_for_changes(
        &self,
    ) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        if !self.postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(listener))
    }

    /// Whether other nodes may share this store (PostgreSQL).
    pub fn shared(&self) -> bool {
        self.postgres
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_the_node_and_the_change() {
        for changed in Changed::ALL {
            let p = payload("node a", changed);
            assert_eq!(parse_payload(&p), Some(("node a", changed)));
        }
        assert_eq!(parse_payload("node-a nothing"), None);
        assert_eq!(parse_payload("numbers"), None);
    }
}
