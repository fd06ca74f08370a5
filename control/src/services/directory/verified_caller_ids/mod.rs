//! Caller IDs an account proved it answers: a verification call rings the number and either
//! asks for a six-digit code the account was shown (Twilio's OutgoingCallerIds and validation
//! requests) or speaks a code the account then submits (Telnyx's verified numbers); on the
//! right code the number becomes one of the account's caller IDs. Beside the numbers
//! an account owns and those the operator allows it, these are what its calls may present (see
//! [`crate::call::caller_id`]). The flow is the core's commands — dial, play, gather, hang up — so a
//! dialect only translates the request and the outcome.
//!
//! The rows are held in memory for the caller-ID check, which runs on the call core's thread and
//! cannot wait for the database; a verification made on another node sharing the database is
//! seen here after a restart.

mod call;

use crate::call::caller_id::as_number;
use crate::call::{CallControl, CallError, CallStatus};
use crate::infra::accounts::formatted_number;
use crate::infra::sid::new_sid;
use crate::infra::store::changes::Changed;
use crate::infra::store::{Store, StoreError, VerifiedCallerIdRow};
use crate::services::prompts::Prompts;
use call::Flow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The most caller IDs one account may hold (each placed call checks them).
pub const MAX_PER_ACCOUNT: usize = 1000;
/// Tries the person called gets to key the code.
const ATTEMPTS: usize = 3;
/// The longest a verification call may last once answered.
const CALL_LIMIT: Duration = Duration::from_secs(180);
/// How long a spoken code may be submitted.
const SPOKEN_CODE_LIFE: Duration = Duration::from_secs(600);
/// Wrong submissions of a spoken code before it is void.
const SUBMISSIONS: u8 = 5;
/// Spoken codes awaiting submission, per account and in all.
const MAX_PENDING_PER_ACCOUNT: usize = 20;
const MAX_PENDING: usize = 10_000;
/// Wrong submissions for one number, whatever code they were for, within
/// [`FAILURE_WINDOW`]: past them a new verification of the number is refused until the window
/// passes, so that asking again for a fresh code does not give a guesser fresh tries.
const MAX_FAILURES_PER_NUMBER: u8 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(3600);

pub struct VerifiedCallerIds {
    store: Store,
    rows: RwLock<Vec<VerifiedCallerIdRow>>,
    /// Spoken codes awaiting the account's submission, by account and number.
    pending: Mutex<HashMap<(String, String), Pending>>,
    /// Wrong submissions per account and number, and since when they count (at most
    /// [`MAX_PENDING`] numbers; the oldest windows go first).
    failures: Mutex<HashMap<(String, String), (u8, Instant)>>,
}

/// How the number proves it is answered by the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The call asks for the code the account was shown (Twilio).
    Keyed,
    /// The call speaks a code the account submits (Telnyx).
    Spoken,
}

/// A spoken code not yet submitted.
struct Pending {
    v: Verification,
    code: String,
    expires: Instant,
    tries_left: u8,
}

/// Why a submitted code verified nothing.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    #[error("no verification of this number is awaiting a code")]
    NotPending,
    #[error("the code is not the one spoken")]
    WrongCode,
    #[error("the caller ID could not be stored")]
    Store,
}

/// A verification to run: whose, which number, and how.
#[derive(Debug, Clone)]
pub struct Verification {
    pub account: String,
    /// E.164.
    pub phone_number: String,
    pub friendly_name: Option<String>,
    /// How long to wait before ringing (the account shows the code first).
    pub call_delay: Duration,
    /// Digits sent once the call is answered (an extension behind a switchboard).
    pub extension: Option<String>,
    pub ring_timeout: Duration,
    pub proof: Proof,
}

/// A verification under way: its call (once placed) and the code to key.
#[derive(Debug, Clone)]
pub struct Started {
    /// `None` while a delayed call waits to be placed.
    pub call: Option<String>,
    pub code: String,
}

/// How a verification ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub account: String,
    pub phone_number: String,
    /// The call, if one was placed, and how it ended.
    pub call: Option<String>,
    pub call_status: CallStatus,
    /// The caller ID, when the right code was keyed.
    pub verified: Option<VerifiedCallerIdRow>,
}

/// Why a verification is not started.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0} is not a phone number in E.164 form")]
    NotANumber(String),
    #[error("the account holds {MAX_PER_ACCOUNT} caller IDs, its most")]
    TooMany,
    #[error("too many verifications are awaiting their codes")]
    TooManyPending,
    #[error("too many wrong codes were submitted for this number; try again later")]
    TooManyFailures,
    #[error(transparent)]
    Call(#[from] CallError),
}

impl VerifiedCallerIds {
    pub async fn open(store: Store) -> Result<Self, StoreError> {
        let rows = store.verified_caller_ids().await?;
        Ok(Self {
            store,
            rows: RwLock::new(rows),
            pending: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Wrong submissions counted for the number now.
    fn failures_of(&self, key: &(String, String), now: Instant) -> u8 {
        (self.failures.lock().expect("not poisoned").get(key))
            .filter(|(_, since)| now.duration_since(*since) < FAILURE_WINDOW)
            .map_or(0, |(n, _)| *n)
    }

    fn count_failure(&self, key: &(String, String), now: Instant) {
        let mut failures = self.failures.lock().expect("not poisoned");
        if !failures.contains_key(key) && failures.len() >= MAX_PENDING {
            failures.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
            if failures.len() >= MAX_PENDING
                && let Some(oldest) = (failures.iter())
                    .min_by_key(|(_, (_, s))| *s)
                    .map(|(k, _)| k.clone())
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(key.clone()).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// Holds a spoken code for the account to submit (replacing an earlier one for the
    /// number); past the bounds, expired codes go first, then the request is refused.
    fn expect_code(&self, v: &Verification, code: &str) -> Result<(), VerifyError> {
        let now = Instant::now();
        let key = (v.account.clone(), v.phone_number.clone());
        if self.failures_of(&key, now) >= MAX_FAILURES_PER_NUMBER {
            return Err(VerifyError::TooManyFailures);
        }
        let mut pending = self.pending.lock().expect("not poisoned");
        if !pending.contains_key(&key) {
            pending.retain(|_, p| p.expires > now);
            let of_account = pending.keys().filter(|(a, _)| *a == v.account).count();
            if of_account >= MAX_PENDING_PER_ACCOUNT || pending.len() >= MAX_PENDING {
                return Err(VerifyError::TooManyPending);
            }
        }
        pending.insert(
            key,
            Pending {
                v: v.clone(),
                code: code.to_owned(),
                expires: now + SPOKEN_CODE_LIFE,
                tries_left: SUBMISSIONS,
            },
        );
        Ok(())
    }

    /// The code the account heard on a [`Proof::Spoken`] call: the right one makes the number
    /// its caller ID; a wrong one counts against the code's tries.
    pub async fn confirm(
        &self,
        account: &str,
        number: &str,
        code: &str,
    ) -> Result<VerifiedCallerIdRow, ConfirmError> {
        let number = as_number(number).ok_or(ConfirmError::NotPending)?;
        let v = {
            let mut pending = self.pending.lock().expect("not poisoned");
            let key = (account.to_owned(), number);
            let p = pending
                .get_mut(&key)
                .filter(|p| p.expires > Instant::now())
                .ok_or(ConfirmError::NotPending)?;
            if p.code != code.trim() {
                p.tries_left -= 1;
                if p.tries_left == 0 {
                    pending.remove(&key);
                }
                drop(pending);
                self.count_failure(&key, Instant::now());
                return Err(ConfirmError::WrongCode);
            }
            pending.remove(&key).expect("found").v
        };
        let row = self.add(&v).await.map_err(|e| {
            warn!(error = %e, "a verified caller ID could not be stored");
            ConfirmError::Store
        })?;
        info!(number = %v.phone_number, sid = %row.sid, "caller ID verified by its spoken code");
        Ok(row)
    }

    /// The account's caller ID of `number` (E.164).
    pub fn by_number(&self, account: &str, number: &str) -> Option<VerifiedCallerIdRow> {
        let number = as_number(number)?;
        (self.rows.read().expect("not poisoned").iter())
            .find(|r| r.account_sid == account && r.phone_number == number)
            .cloned()
    }

    /// Whether `account` verified `number` (E.164, as [`as_number`] gives it).
    pub fn is_verified(&self, account: &str, number: &str) -> bool {
        (self.rows.read().expect("not poisoned").iter())
            .any(|r| r.account_sid == account && r.phone_number == number)
    }

    /// An account's caller IDs, oldest first.
    pub fn of_account(&self, account: &str) -> Vec<VerifiedCallerIdRow> {
        (self.rows.read().expect("not poisoned").iter())
            .filter(|r| r.account_sid == account)
            .cloned()
            .collect()
    }

    pub fn get(&self, account: &str, sid: &str) -> Option<VerifiedCallerIdRow> {
        (self.rows.read().expect("not poisoned").iter())
            .find(|r| r.account_sid == account && r.sid == sid)
            .cloned()
    }

    pub async fn rename(
        &self,
        account: &str,
        sid: &str,
        friendly_name: &str,
    ) -> Result<Option<VerifiedCallerIdRow>, StoreError> {
        let now = crate::infra::clock::now_ms();
        if !(self.store)
            .rename_verified_caller_id(account, sid, friendly_name, now)
            .await?
        {
            return Ok(None);
        }
        let renamed = {
            let mut rows = self.rows.write().expect("not poisoned");
            let row = rows.iter_mut().find(|r| r.sid == sid);
            row.map(|r| {
                r.friendly_name = friendly_name.to_owned();
                r.updated_at = now;
                r.clone()
            })
        };
        self.store.announce(Changed::CallerIds).await;
        Ok(renamed)
    }

    /// Reads every verified caller ID again (another node changed one).
    pub async fn reload(&self) -> Result<(), StoreError> {
        let rows = self.store.verified_caller_ids().await?;
        *self.rows.write().expect("not poisoned") = rows;
        Ok(())
    }

    pub async fn delete(&self, account: &str, sid: &str) -> Result<bool, StoreError> {
        let deleted = self.store.delete_verified_caller_id(account, sid).await?;
        if deleted {
            let mut rows = self.rows.write().expect("not poisoned");
            rows.retain(|r| !(r.account_sid == account && r.sid == sid));
        }
        if deleted {
            self.store.announce(Changed::CallerIds).await;
        }
        Ok(deleted)
    }

    async fn add(&self, v: &Verification) -> Result<VerifiedCallerIdRow, StoreError> {
        let now = crate::infra::clock::now_ms();
        let row = VerifiedCallerIdRow {
            sid: new_sid("PN"),
            account_sid: v.account.clone(),
            phone_number: v.phone_number.clone(),
            friendly_name: (v.friendly_name.clone())
                .unwrap_or_else(|| formatted_number(&v.phone_number)),
            created_at: now,
            updated_at: now,
        };
        let stored = self.store.insert_verified_caller_id(&row).await?;
        {
            let mut rows = self.rows.write().expect("not poisoned");
            if !rows.iter().any(|r| r.sid == stored.sid) {
                rows.push(stored.clone());
            }
        }
        self.store.announce(Changed::CallerIds).await;
        Ok(stored)
    }

    /// Starts verifying `v.phone_number` for `v.account`: rings it (after the delay) and asks
    /// for the code returned; `done` is told how it ended.
    pub async fn verify(
        self: &Arc<Self>,
        control: &CallControl,
        prompts: &Arc<Prompts>,
        v: Verification,
        done: impl FnOnce(Finished) + Send + 'static,
    ) -> Result<Started, VerifyError> {
        let number = as_number(&v.phone_number)
            .filter(|n| *n == v.phone_number.trim())
            .ok_or_else(|| VerifyError::NotANumber(v.phone_number.clone()))?;
        let v = Verification {
            phone_number: number,
            ..v
        };
        if !self.is_verified(&v.account, &v.phone_number)
            && self.of_account(&v.account).len() >= MAX_PER_ACCOUNT
        {
            return Err(VerifyError::TooMany);
        }
        let code = format!("{:06}", rand::random::<u32>() % 1_000_000);
        if v.proof == Proof::Spoken {
            self.expect_code(&v, &code)?;
        }
        let flow = Flow {
            ids: self.clone(),
            control: control.clone(),
            prompts: prompts.clone(),
            code: code.clone(),
            v,
        };
        if flow.v.call_delay.is_zero() {
            let (call, events) = flow.place().await?;
            let call_id = call.clone();
            tokio::spawn(async move { done(flow.run(Some(call), events).await) });
            Ok(Started {
                call: Some(call_id),
                code,
            })
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(flow.v.call_delay).await;
                let finished = match flow.place().await {
                    Ok((call, events)) => flow.run(Some(call), events).await,
                    Err(e) => {
                        warn!(error = %e, "the verification call could not be placed");
                        flow.finished(None, CallStatus::Failed, None)
                    }
                };
                done(finished)
            });
            Ok(Started { call: None, code })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ids_in(dir: &tempfile::TempDir) -> VerifiedCallerIds {
        let store = Store::open(&format!("sqlite://{}/ids.db", dir.path().display()))
            .await
            .unwrap();
        VerifiedCallerIds::open(store).await.unwrap()
    }

    fn verification(account: &str, number: &str) -> Verification {
        Verification {
            account: account.into(),
            phone_number: number.into(),
            friendly_name: None,
            call_delay: Duration::ZERO,
            extension: None,
            ring_timeout: Duration::from_secs(30),
            proof: Proof::Spoken,
        }
    }

    #[tokio::test]
    async fn a_verified_number_is_its_accounts_alone_stored_renamed_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ids_in(&dir).await;
        let row = ids.add(&verification("AC1", "+14155550100")).await.unwrap();
        assert!(row.sid.starts_with("PN") && row.friendly_name == "(415) 555-0100");
        assert!(ids.is_verified("AC1", "+14155550100"));
        assert!(!ids.is_verified("AC2", "+14155550100"), "another account's");
        // Verified twice: the same caller ID.
        let again = ids.add(&verification("AC1", "+14155550100")).await.unwrap();
        assert_eq!(
            (again.sid.as_str(), ids.of_account("AC1").len()),
            (row.sid.as_str(), 1)
        );
        // Another account cannot rename or delete it.
        assert_eq!(ids.rename("AC2", &row.sid, "Mine").await.unwrap(), None);
        assert!(!ids.delete("AC2", &row.sid).await.unwrap());
        let renamed = ids.rename("AC1", &row.sid, "Desk").await.unwrap().unwrap();
        assert_eq!(renamed.friendly_name, "Desk");
        // Read again from the database, as after a restart.
        let reopened = ids_in(&dir).await;
        assert_eq!(reopened.get("AC1", &row.sid).unwrap().friendly_name, "Desk");
        assert!(reopened.delete("AC1", &row.sid).await.unwrap());
        assert!(!reopened.is_verified("AC1", "+14155550100"));
        assert!(ids_in(&dir).await.of_account("AC1").is_empty());
    }

    #[tokio::test]
    async fn a_spoken_code_verifies_once_within_its_tries_and_for_its_account_only() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ids_in(&dir).await;
        let v = verification("AC1", "+14155550101");
        ids.expect_code(&v, "123456").unwrap();
        assert_eq!(
            ids.confirm("AC2", "+14155550101", "123456").await,
            Err(ConfirmError::NotPending),
            "another account's"
        );
        for _ in 0..SUBMISSIONS - 1 {
            assert_eq!(
                ids.confirm("AC1", "+14155550101", "000000").await,
                Err(ConfirmError::WrongCode)
            );
        }
        let row = ids.confirm("AC1", "+14155550101", "123456").await.unwrap();
        assert_eq!(row.phone_number, "+14155550101");
        assert!(ids.is_verified("AC1", "+14155550101"));
        assert_eq!(ids.by_number("AC1", "+14155550101").unwrap().sid, row.sid);
        // Used: it does not verify again.
        assert_eq!(
            ids.confirm("AC1", "+14155550101", "123456").await,
            Err(ConfirmError::NotPending)
        );
        // Guessing voids the code after its tries.
        let w = verification("AC1", "+14155550102");
        ids.expect_code(&w, "654321").unwrap();
        for _ in 0..SUBMISSIONS {
            assert_eq!(
                ids.confirm("AC1", "+14155550102", "111111").await,
                Err(ConfirmError::WrongCode)
            );
        }
        assert_eq!(
            ids.confirm("AC1", "+14155550102", "654321").await,
            Err(ConfirmError::NotPending)
        );
        // Asking again gives a fresh code with its own tries, but not fresh tries for the
        // number: after MAX_FAILURES_PER_NUMBER wrong codes in all, it is refused.
        let mut failed = usize::from(SUBMISSIONS);
        while failed < usize::from(MAX_FAILURES_PER_NUMBER) {
            ids.expect_code(&w, "777777").unwrap();
            assert_eq!(
                ids.confirm("AC1", "+14155550102", "111111").await,
                Err(ConfirmError::WrongCode)
            );
            failed += 1;
        }
        assert!(matches!(
            ids.expect_code(&w, "888888"),
            Err(VerifyError::TooManyFailures)
        ));
        assert!(
            ids.expect_code(&verification("AC1", "+14155550103"), "1")
                .is_ok(),
            "another number is not held back"
        );
        // An account holds a bounded number of codes awaiting submission.
        for n in 0..MAX_PENDING_PER_ACCOUNT {
            ids.expect_code(&verification("AC3", &format!("+1415555{n:04}")), "1")
                .unwrap();
        }
        assert!(matches!(
            ids.expect_code(&verification("AC3", "+14155559999"), "1"),
            Err(VerifyError::TooManyPending)
        ));
    }
}
