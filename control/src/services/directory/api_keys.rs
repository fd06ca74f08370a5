//! API keys accounts make through the API (Twilio's Keys resource): stored, and put in the
//! directory beside the configured ones, so they authenticate REST requests (Basic with the
//! SID and secret) and sign access tokens at once.

use crate::infra::accounts::Directory;
use crate::infra::store::changes::Changed;
use crate::infra::store::{ApiKeyRow, Store, StoreError};
use std::sync::{Arc, Mutex};

/// The most keys one account may make.
pub const MAX_PER_ACCOUNT: usize = 100;

pub struct ApiKeys {
    store: Store,
    directory: Arc<Directory>,
    rows: Mutex<Vec<ApiKeyRow>>,
}

impl ApiKeys {
    /// Loads the stored keys and puts them in the directory.
    pub async fn open(store: Store, directory: Arc<Directory>) -> Result<Self, StoreError> {
        let rows = store.api_keys().await?;
        let keys = Self {
            store,
            directory,
            rows: Mutex::new(rows),
        };
        keys.publish();
        Ok(keys)
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Vec<ApiKeyRow>> {
        self.rows.lock().expect("not poisoned")
    }

    fn publish(&self) {
        let keys = (self.rows().iter())
            .map(|r| (r.account_sid.clone(), r.sid.clone(), r.secret.clone()))
            .collect();
        self.directory.set_made_keys(keys);
    }

    pub fn of_account(&self, account: &str) -> Vec<ApiKeyRow> {
        (self.rows().iter())
            .filter(|r| r.account_sid == account)
            .cloned()
            .collect()
    }

    pub fn get(&self, account: &str, sid: &str) -> Option<ApiKeyRow> {
        (self.rows().iter())
            .find(|r| r.sid == sid && r.account_sid == account)
            .cloned()
    }

    /// Stores a new key; `Ok(false)` when the account has [`MAX_PER_ACCOUNT`].
    pub async fn add(&self, row: ApiKeyRow) -> Result<bool, StoreError> {
        if self.of_account(&row.account_sid).len() >= MAX_PER_ACCOUNT {
            return Ok(false);
        }
        self.store.insert_api_key(&row).await?;
        self.rows().push(row);
        self.publish();
        self.store.announce(Changed::ApiKeys).await;
        Ok(true)
    }

    /// Reads every key again (another node changed one).
    pub async fn reload(&self) -> Result<(), StoreError> {
        *self.rows() = self.store.api_keys().await?;
        self.publish();
        Ok(())
    }

    pub async fn rename(&self, row: ApiKeyRow) -> Result<(), StoreError> {
        self.store.rename_api_key(&row).await?;
        if let Some(r) = self.rows().iter_mut().find(|r| r.sid == row.sid) {
            *r = row;
        }
        self.store.announce(Changed::ApiKeys).await;
        Ok(())
    }

    /// Deletes a key: requests and tokens signed with it fail from now on.
    pub async fn remove(&self, sid: &str) -> Result<(), StoreError> {
        self.store.delete_api_key(sid).await?;
        self.rows().retain(|r| r.sid != sid);
        self.publish();
        self.store.announce(Changed::ApiKeys).await;
        Ok(())
    }
}
