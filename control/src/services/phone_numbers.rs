//! The accounts' phone numbers: stored (the config's `[[numbers]]` seed the ones not stored
//! yet), held in memory for the incoming-call path, and changed through the provider APIs.
//! A number stored once keeps what the API made of it: the config does not overwrite it.
//! An account claims only numbers in the ranges the operator granted it (its config's
//! `number_ranges` and those stored through the admin API, read from the store at each claim so
//! that a grant made on one node holds on every node sharing the database).

use crate::infra::accounts::{Account, Number, NumberRange, formatted_number};
use crate::infra::clock::now_ms;
use crate::infra::sid::new_sid;
use crate::infra::store::changes::Changed;
use crate::infra::store::{PhoneNumberRow, Store, StoreError};
use std::sync::Mutex;
use tracing::{info, warn};

pub struct PhoneNumbers {
    store: Store,
    rows: Mutex<Vec<PhoneNumberRow>>,
}

/// The most ranges the admin API grants one account (each claim is checked against all).
pub const MAX_RANGES: usize = 1000;

impl PhoneNumbers {
    /// Loads the stored numbers, storing first the seeds no row has yet.
    pub async fn open(store: Store, seeds: &[Number]) -> Result<Self, StoreError> {
        let numbers = Self {
            store,
            rows: Mutex::default(),
        };
        numbers.seed(seeds).await?;
        Ok(numbers)
    }

    /// Stores the seeds no row has yet (the configuration's numbers, at start and at each
    /// reload) and reads every row again; returns the numbers it stored.
    pub async fn seed(&self, seeds: &[Number]) -> Result<Vec<Number>, StoreError> {
        let stored = self.store.phone_numbers().await?;
        let mut added = Vec::new();
        for seed in seeds {
            match stored
                .iter()
                .find(|r| r.number.phone_number == seed.phone_number)
            {
                Some(row) if row.number != *seed => warn!(
                    number = %seed.phone_number,
                    "the configured number differs from the stored one (changed through the API); the stored one is used"
                ),
                Some(_) => {}
                None => {
                    let now = now_ms();
                    let row = PhoneNumberRow {
                        sid: new_sid("PN"),
                        friendly_name: formatted_number(&seed.phone_number),
                        number: seed.clone(),
                        created_at: now,
                        updated_at: now,
                    };
                    self.store.insert_phone_number(&row).await?;
                    info!(number = %seed.phone_number, sid = %row.sid, "configured number stored");
                    added.push(seed.clone());
                }
            }
        }
        *self.rows() = self.store.phone_numbers().await?;
        Ok(added)
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Vec<PhoneNumberRow>> {
        self.rows.lock().expect("not poisoned")
    }

    pub fn all(&self) -> Vec<PhoneNumberRow> {
        self.rows().clone()
    }

    /// The number dialed, with the account that owns it.
    pub fn by_number(&self, phone_number: &str) -> Option<PhoneNumberRow> {
        self.rows()
            .iter()
            .find(|r| r.number.phone_number == phone_number)
            .cloned()
    }

    /// A number of this account by its SID.
    pub fn by_sid(&self, account: &str, sid: &str) -> Option<PhoneNumberRow> {
        self.rows()
            .iter()
            .find(|r| r.sid == sid && r.number.account_sid == account)
            .cloned()
    }

    /// An account's numbers, oldest first.
    pub fn of_account(&self, account: &str) -> Vec<PhoneNumberRow> {
        self.rows()
            .iter()
            .filter(|r| r.number.account_sid == account)
            .cloned()
            .collect()
    }

    /// Whether the operator let `account` claim `number`.
    pub async fn may_claim(&self, account: &Account, number: &str) -> Result<bool, StoreError> {
        if account.number_ranges.iter().any(|r| r.contains(number)) {
            return Ok(true);
        }
        Ok(self
            .ranges(&account.sid)
            .await?
            .iter()
            .any(|r| r.contains(number)))
    }

    /// The ranges granted to `account` through the admin API, in the order given.
    pub async fn ranges(&self, account: &str) -> Result<Vec<NumberRange>, StoreError> {
        let stored = self.store.number_ranges(account).await?;
        Ok(stored
            .iter()
            .filter_map(|range| {
                let parsed = NumberRange::parse(range);
                if parsed.is_none() {
                    warn!(%account, %range, "a stored number range does not parse; ignored");
                }
                parsed
            })
            .collect())
    }

    /// Grants a range; `Ok(false)` when the account had it already, `Err(None)` when it has
    /// [`MAX_RANGES`].
    pub async fn grant(
        &self,
        account: &str,
        range: NumberRange,
    ) -> Result<bool, Option<StoreError>> {
        let held = self.ranges(account).await.map_err(Some)?;
        if held.contains(&range) {
            return Ok(false);
        }
        if held.len() >= MAX_RANGES {
            return Err(None);
        }
        (self.store)
            .insert_number_range(account, &range.to_string(), now_ms())
            .await
            .map_err(Some)
    }

    /// Withdraws a granted range (numbers already claimed in it stay claimed).
    pub async fn revoke(&self, account: &str, range: &NumberRange) -> Result<bool, StoreError> {
        (self.store)
            .delete_number_range(account, &range.to_string())
            .await
    }

    /// Stores a new number; `Ok(false)` when the number is already someone's.
    pub async fn add(&self, row: PhoneNumberRow) -> Result<bool, StoreError> {
        if self.by_number(&row.number.phone_number).is_some()
            || !self.store.insert_phone_number(&row).await?
        {
            return Ok(false);
        }
        self.rows().push(row);
        self.store.announce(Changed::Numbers).await;
        Ok(true)
    }

    pub async fn update(&self, row: PhoneNumberRow) -> Result<(), StoreError> {
        self.store.update_phone_number(&row).await?;
        if let Some(r) = self.rows().iter_mut().find(|r| r.sid == row.sid) {
            *r = row;
        }
        self.store.announce(Changed::Numbers).await;
        Ok(())
    }

    /// Every number as stored now (another node may have changed some).
    pub async fn stored(&self) -> Result<Vec<PhoneNumberRow>, StoreError> {
        self.store.phone_numbers().await
    }

    /// Holds `rows` from now on (read with [`PhoneNumbers::stored`]).
    pub fn replace(&self, rows: Vec<PhoneNumberRow>) {
        *self.rows() = rows;
    }

    /// Releases a number; `Ok(None)` when it was not there.
    pub async fn remove(&self, sid: &str) -> Result<Option<PhoneNumberRow>, StoreError> {
        self.store.delete_phone_number(sid).await?;
        let removed = {
            let mut rows = self.rows();
            let i = rows.iter().position(|r| r.sid == sid);
            i.map(|i| rows.remove(i))
        };
        self.store.announce(Changed::Numbers).await;
        Ok(removed)
    }
}
