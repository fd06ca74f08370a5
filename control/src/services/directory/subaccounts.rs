//! Accounts made through the API under another (Twilio's subaccounts): stored, and put in the
//! directory while active, so that their own credentials authenticate and their owner's reach
//! them. A suspended or closed one is out of force (its credentials fail, its numbers'
//! calls find no account) but stays on record for its owner to see and, while suspended, to
//! make active again; a closed one stays closed, as Twilio's do.

use crate::infra::accounts::{Directory, MadeAccount};
use crate::infra::store::changes::Changed;
use crate::infra::store::{Store, StoreError, SubaccountRow};
use std::sync::{Arc, Mutex};

/// The most subaccounts one account may make (Twilio's default limit).
pub const MAX_PER_OWNER: usize = 1000;

pub struct Subaccounts {
    store: Store,
    directory: Arc<Directory>,
    rows: Mutex<Vec<SubaccountRow>>,
}

impl Subaccounts {
    /// Loads the stored subaccounts and puts the active ones in the directory.
    pub async fn open(store: Store, directory: Arc<Directory>) -> Result<Self, StoreError> {
        let rows = store.subaccounts().await?;
        let subaccounts = Self {
            store,
            directory,
            rows: Mutex::new(rows),
        };
        subaccounts.publish();
        Ok(subaccounts)
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Vec<SubaccountRow>> {
        self.rows.lock().expect("not poisoned")
    }

    fn publish(&self) {
        let made = (self.rows().iter())
            .map(|r| MadeAccount {
                sid: r.sid.clone(),
                owner: r.owner_sid.clone(),
                auth_token: r.auth_token.clone(),
                active: r.status == "active",
            })
            .collect();
        self.directory.set_made_accounts(made);
    }

    pub fn get(&self, sid: &str) -> Option<SubaccountRow> {
        self.rows().iter().find(|r| r.sid == sid).cloned()
    }

    pub fn of_owner(&self, owner: &str) -> Vec<SubaccountRow> {
        (self.rows().iter())
            .filter(|r| r.owner_sid == owner)
            .cloned()
            .collect()
    }

    /// Stores a new subaccount; `Ok(false)` when its owner has [`MAX_PER_OWNER`].
    pub async fn add(&self, row: SubaccountRow) -> Result<bool, StoreError> {
        if self.of_owner(&row.owner_sid).len() >= MAX_PER_OWNER {
            return Ok(false);
        }
        self.store.insert_subaccount(&row).await?;
        self.rows().push(row);
        self.publish();
        self.store.announce(Changed::Subaccounts).await;
        Ok(true)
    }

    /// Stores its new name or status, in force at once.
    pub async fn update(&self, row: SubaccountRow) -> Result<(), StoreError> {
        self.store.update_subaccount(&row).await?;
        if let Some(r) = self.rows().iter_mut().find(|r| r.sid == row.sid) {
            *r = row;
        }
        self.publish();
        self.store.announce(Changed::Subaccounts).await;
        Ok(())
    }

    /// Reads every subaccount again (another node changed one).
    pub async fn reload(&self) -> Result<(), StoreError> {
        *self.rows() = self.store.subaccounts().await?;
        self.publish();
        Ok(())
    }
}
