//! Telnyx connections — Call Control applications and TeXML applications, one id space —:
//! stored (the config's `[[connections]]` seed
//! those not stored yet), held in memory for dials and incoming calls, and changed through
//! the API. A connection stored once keeps what the API made of it: the config does not
//! overwrite it (as with numbers).

use crate::infra::accounts::{Connection, ConnectionKind};
use crate::infra::clock::now_ms;
use crate::infra::store::changes::Changed;
use crate::infra::store::{ConnectionRow, Store, StoreError};
use std::sync::Mutex;
use tracing::{info, warn};

/// The most connections one account may have (each incoming call and dial looks one up).
pub const MAX_PER_ACCOUNT: usize = 1000;

pub struct Connections {
    store: Store,
    rows: Mutex<Vec<ConnectionRow>>,
}

impl Connections {
    /// Loads the stored connections, storing first the seeds no row has yet.
    pub async fn open(store: Store, seeds: &[Connection]) -> Result<Self, StoreError> {
        let connections = Self {
            store,
            rows: Mutex::default(),
        };
        connections.seed(seeds).await?;
        Ok(connections)
    }

    /// Stores the seeds no row has yet (the configuration's connections, at start and at each
    /// reload) and reads every row again; returns how many it stored.
    pub async fn seed(&self, seeds: &[Connection]) -> Result<usize, StoreError> {
        let stored = self.store.connections().await?;
        let mut added = 0;
        for seed in seeds {
            match stored.iter().find(|r| r.connection.id == seed.id) {
                Some(row) if row.connection != *seed => warn!(
                    connection = %seed.id,
                    "the configured connection differs from the stored one (changed through the API); the stored one is used"
                ),
                Some(_) => {}
                None => {
                    let now = now_ms();
                    let row = ConnectionRow {
                        connection: seed.clone(),
                        created_at: now,
                        updated_at: now,
                    };
                    self.store.insert_connection(&row).await?;
                    info!(connection = %seed.id, "configured connection stored");
                    added += 1;
                }
            }
        }
        *self.rows() = self.store.connections().await?;
        Ok(added)
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Vec<ConnectionRow>> {
        self.rows.lock().expect("not poisoned")
    }

    /// The connection `id` if it is `account`'s (another account's is as unknown).
    pub fn get(&self, account: &str, id: &str) -> Option<ConnectionRow> {
        self.rows()
            .iter()
            .find(|r| r.connection.id == id && r.connection.account_sid == account)
            .cloned()
    }

    /// The connection `id` if it is `account`'s and its calls are Call Control calls: a
    /// Call Control application, or a credential connection (its phones' and browsers'
    /// calls are reported to its webhook URL and commanded like an application's).
    pub fn call_control(&self, account: &str, id: &str) -> Option<ConnectionRow> {
        // An IP connection's calls are its trunk's, not an application's.
        self.get(account, id).filter(|r| {
            !matches!(
                r.connection.kind(),
                ConnectionKind::Texml | ConnectionKind::Ip | ConnectionKind::Fqdn
            )
        })
    }

    /// The TeXML application `id` if it is `account`'s.
    pub fn texml(&self, account: &str, id: &str) -> Option<ConnectionRow> {
        self.get(account, id)
            .filter(|r| r.connection.texml.is_some())
    }

    /// Every connection, oldest first.
    pub fn all(&self) -> Vec<ConnectionRow> {
        self.rows().clone()
    }

    /// The credential connection `id` if it is `account`'s.
    pub fn credential(&self, account: &str, id: &str) -> Option<ConnectionRow> {
        self.get(account, id)
            .filter(|r| r.connection.kind() == ConnectionKind::Credential)
    }

    /// An account's connections (of every kind), oldest first.
    pub fn of_account(&self, account: &str) -> Vec<ConnectionRow> {
        self.rows()
            .iter()
            .filter(|r| r.connection.account_sid == account)
            .cloned()
            .collect()
    }

    /// Stores a new connection; `Ok(false)` when the account has [`MAX_PER_ACCOUNT`] or the
    /// id is taken.
    pub async fn add(&self, row: ConnectionRow) -> Result<bool, StoreError> {
        let (account, id) = (&row.connection.account_sid, &row.connection.id);
        let full = self.of_account(account).len() >= MAX_PER_ACCOUNT;
        let taken = self.rows().iter().any(|r| r.connection.id == *id);
        if full || taken || !self.store.insert_connection(&row).await? {
            return Ok(false);
        }
        self.rows().push(row);
        self.store.announce(Changed::Connections).await;
        Ok(true)
    }

    pub async fn update(&self, row: ConnectionRow) -> Result<(), StoreError> {
        self.store.update_connection(&row).await?;
        if let Some(r) = (self.rows().iter_mut()).find(|r| r.connection.id == row.connection.id) {
            *r = row;
        }
        self.store.announce(Changed::Connections).await;
        Ok(())
    }

    /// Reads every connection again (another node changed one).
    pub async fn reload(&self) -> Result<(), StoreError> {
        *self.rows() = self.store.connections().await?;
        Ok(())
    }

    /// Deletes a connection; `Ok(None)` when it was not there.
    pub async fn remove(&self, id: &str) -> Result<Option<ConnectionRow>, StoreError> {
        self.store.delete_connection(id).await?;
        let removed = {
            let mut rows = self.rows();
            let i = rows.iter().position(|r| r.connection.id == id);
            i.map(|i| rows.remove(i))
        };
        self.store.announce(Changed::Connections).await;
        Ok(removed)
    }
}
