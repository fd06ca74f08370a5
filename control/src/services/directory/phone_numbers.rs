//! The accounts' phone numbers: stored (the config's `[[numbers]]` seed the ones not stored
//! yet), held in memory for the incoming-call path, and changed through the provider APIs.
//! Each field of a configured number has an origin: the row remembers what the file said of it
//! when the file was last applied. An edit of the file applies to every field the API has not
//! changed since; a field the API changed keeps the API's value, and the log says which side
//! won each field and why.
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

/// A number's fields the file and the API both set, by name, as text.
type Fields = std::collections::BTreeMap<String, Option<String>>;

fn fields(n: &Number) -> Fields {
    [
        ("account_sid", Some(n.account_sid.clone())),
        ("voice_url", n.voice_url.clone()),
        ("voice_method", Some(n.voice_method.as_str().to_owned())),
        ("voice_fallback_url", n.voice_fallback_url.clone()),
        (
            "voice_fallback_method",
            Some(n.voice_fallback_method.as_str().to_owned()),
        ),
        ("status_callback", n.status_callback.clone()),
        (
            "status_callback_method",
            Some(n.status_callback_method.as_str().to_owned()),
        ),
        ("connection_id", n.connection_id.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A stored configured number with the file's edit applied.
struct Merged {
    row: PhoneNumberRow,
    /// Fields set from the file (the API had not changed them).
    applied: Vec<String>,
    /// Fields where the file differs but the API's value stays (the API changed them since the
    /// file last set them).
    kept: Vec<String>,
}

/// Applies `seed` (the file's number) to `row` field by field: a field takes the file's value
/// unless the API changed it since the file last set it (`before`, what the file said then).
/// A row from before origins were kept has no `before`: it was never changed through the API
/// if it was never updated, and then the file applies throughout.
fn merge(row: &PhoneNumberRow, seed: &Number, before: Option<&Fields>) -> Merged {
    let (file, now) = (fields(seed), fields(&row.number));
    let untouched = row.updated_at == row.created_at;
    let mut out = Merged {
        row: row.clone(),
        applied: Vec::new(),
        kept: Vec::new(),
    };
    for (name, wanted) in &file {
        let held = &now[name];
        if held == wanted {
            continue;
        }
        let api_changed = match before {
            Some(before) => before.get(name) != Some(held),
            None => !untouched,
        };
        if api_changed {
            out.kept.push(name.clone());
        } else {
            out.applied.push(name.clone());
        }
    }
    if !out.applied.is_empty() {
        let n = &mut out.row.number;
        for name in &out.applied {
            let v = file[name].clone();
            let method = |v: &Option<String>| {
                (v.as_deref())
                    .and_then(crate::infra::accounts::HttpMethod::parse)
                    .unwrap_or_default()
            };
            match name.as_str() {
                "account_sid" => n.account_sid = v.unwrap_or_default(),
                "voice_url" => n.voice_url = v,
                "voice_method" => n.voice_method = method(&v),
                "voice_fallback_url" => n.voice_fallback_url = v,
                "voice_fallback_method" => n.voice_fallback_method = method(&v),
                "status_callback" => n.status_callback = v,
                "status_callback_method" => n.status_callback_method = method(&v),
                "connection_id" => n.connection_id = v,
                _ => {}
            }
        }
        // Not an API change: the next comparison with the file's snapshot decides origins.
        out.row.updated_at = row.updated_at.max(now_ms());
    }
    out
}

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
        let configured = self.store.configured_numbers().await?;
        let mut added = Vec::new();
        let mut changed = false;
        for seed in seeds {
            let said = serde_json::to_string(&fields(seed)).expect("strings serialise");
            let Some(row) = (stored.iter()).find(|r| r.number.phone_number == seed.phone_number)
            else {
                let now = now_ms();
                let row = PhoneNumberRow {
                    sid: new_sid("PN"),
                    friendly_name: formatted_number(&seed.phone_number),
                    number: seed.clone(),
                    created_at: now,
                    updated_at: now,
                };
                self.store.insert_phone_number(&row).await?;
                self.store.apply_configured_number(&row, &said).await?;
                info!(number = %seed.phone_number, sid = %row.sid, "configured number stored");
                added.push(seed.clone());
                continue;
            };
            let before = configured.get(&row.sid);
            if before == Some(&said) {
                // The file says what it said when last applied: what the API made stays.
                continue;
            }
            let before: Option<Fields> = before.and_then(|b| serde_json::from_str(b).ok());
            let merged = merge(row, seed, before.as_ref());
            if !merged.applied.is_empty() {
                info!(number = %seed.phone_number, fields = ?merged.applied,
                    "the configuration's edit of the number applied: the API had not changed these fields");
            }
            if !merged.kept.is_empty() {
                warn!(number = %seed.phone_number, fields = ?merged.kept,
                    "the configuration differs from the stored number in fields changed through the API since the file last set them; the API's values are kept");
            }
            self.store
                .apply_configured_number(&merged.row, &said)
                .await?;
            if !merged.applied.is_empty() {
                added.push(merged.row.number.clone());
                changed = true;
            }
        }
        *self.rows() = self.store.phone_numbers().await?;
        if changed {
            // The other nodes read the numbers again.
            self.store.announce(Changed::Numbers).await;
        }
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

#[cfg(test)]
mod configured {
    use super::*;
    use crate::infra::accounts::HttpMethod;

    fn number(voice_url: &str, status_callback: Option<&str>) -> Number {
        Number {
            phone_number: "+15557654321".into(),
            account_sid: "AC00000000000000000000000000000001".into(),
            voice_url: Some(voice_url.into()),
            voice_method: HttpMethod::Post,
            voice_fallback_url: None,
            voice_fallback_method: HttpMethod::Post,
            status_callback: status_callback.map(str::to_owned),
            status_callback_method: HttpMethod::Post,
            connection_id: None,
        }
    }

    /// An edit of the file applies at the next start unless the API changed the field since
    /// the file last set it; then the API's value is kept for that field alone, and a field the
    /// API did not change still follows the file. A file that did not change leaves what the
    /// API made.
    #[tokio::test]
    async fn an_edit_in_the_file_applies_to_every_field_the_api_has_not_changed_since() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/n.db", dir.path().display());
        let open = |seeds: Vec<Number>| {
            let url = url.clone();
            async move {
                PhoneNumbers::open(Store::open(&url).await.unwrap(), &seeds)
                    .await
                    .unwrap()
            }
        };
        let held = |n: &PhoneNumbers| n.by_number("+15557654321").unwrap().number;

        let first = open(vec![number("http://a/voice", None)]).await;
        assert_eq!(held(&first).voice_url.as_deref(), Some("http://a/voice"));
        // The file's voice URL is edited: never changed through the API, it applies.
        let second = open(vec![number("http://b/voice", None)]).await;
        assert_eq!(held(&second).voice_url.as_deref(), Some("http://b/voice"));

        // The API changes the voice URL; the file then edits both it and the status callback.
        let mut row = second.by_number("+15557654321").unwrap();
        row.number.voice_url = Some("http://api/voice".into());
        row.updated_at += 1;
        second.update(row).await.unwrap();
        let third = open(vec![number("http://c/voice", Some("http://c/status"))]).await;
        let n = held(&third);
        assert_eq!(
            n.voice_url.as_deref(),
            Some("http://api/voice"),
            "the API's change is kept"
        );
        assert_eq!(
            n.status_callback.as_deref(),
            Some("http://c/status"),
            "the file's applies"
        );
        // The same file again: nothing moves.
        let fourth = open(vec![number("http://c/voice", Some("http://c/status"))]).await;
        assert_eq!(held(&fourth), n);
    }
}
