//! Caller IDs an account proved it answers: a verification call rings the number, asks for a
//! six-digit code the account was shown, and on the right digits the number becomes one of the
//! account's caller IDs (Twilio's OutgoingCallerIds and validation requests). Beside the numbers
//! an account owns and those the operator allows it, these are what its calls may present (see
//! [`crate::caller_id`]). The flow is the core's commands — dial, play, gather, hang up — so a
//! dialect only translates the request and the outcome.
//!
//! The rows are held in memory for the caller-ID check, which runs on the call core's thread and
//! cannot wait for the database; a verification made on another node sharing the database is
//! seen here after a restart.

use crate::accounts::formatted_number;
use crate::call::{
    CallCommand, CallControl, CallError, CallStatus, EventKind, GatherSpec, Originate, Target,
};
use crate::caller_id::as_number;
use crate::prompts::Prompts;
use crate::sid::new_sid;
use crate::store::{Store, StoreError, VerifiedCallerIdRow};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// The most caller IDs one account may hold (each placed call checks them).
pub const MAX_PER_ACCOUNT: usize = 1000;
/// Tries the person called gets to key the code.
const ATTEMPTS: usize = 3;
/// The longest a verification call may last once answered.
const CALL_LIMIT: Duration = Duration::from_secs(180);

pub struct VerifiedCallerIds {
    store: Store,
    rows: RwLock<Vec<VerifiedCallerIdRow>>,
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
    #[error(transparent)]
    Call(#[from] CallError),
}

impl VerifiedCallerIds {
    pub async fn open(store: Store) -> Result<Self, StoreError> {
        let rows = store.verified_caller_ids().await?;
        Ok(Self {
            store,
            rows: RwLock::new(rows),
        })
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
        let now = crate::clock::now_ms();
        if !(self.store)
            .rename_verified_caller_id(account, sid, friendly_name, now)
            .await?
        {
            return Ok(None);
        }
        let mut rows = self.rows.write().expect("not poisoned");
        let row = rows.iter_mut().find(|r| r.sid == sid);
        Ok(row.map(|r| {
            r.friendly_name = friendly_name.to_owned();
            r.updated_at = now;
            r.clone()
        }))
    }

    pub async fn delete(&self, account: &str, sid: &str) -> Result<bool, StoreError> {
        let deleted = self.store.delete_verified_caller_id(account, sid).await?;
        if deleted {
            let mut rows = self.rows.write().expect("not poisoned");
            rows.retain(|r| !(r.account_sid == account && r.sid == sid));
        }
        Ok(deleted)
    }

    async fn add(&self, v: &Verification) -> Result<VerifiedCallerIdRow, StoreError> {
        let now = crate::clock::now_ms();
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
        let mut rows = self.rows.write().expect("not poisoned");
        if !rows.iter().any(|r| r.sid == stored.sid) {
            rows.push(stored.clone());
        }
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

/// One verification call.
struct Flow {
    ids: Arc<VerifiedCallerIds>,
    control: CallControl,
    prompts: Arc<Prompts>,
    code: String,
    v: Verification,
}

impl Flow {
    /// Dials the number from itself (the number being proved is the caller ID it will be).
    async fn place(&self) -> Result<(String, mpsc::Receiver<crate::call::CallEvent>), CallError> {
        let (tx, events) = mpsc::channel(64);
        let call = (self.control)
            .originate(Originate {
                to: Target::Number(self.v.phone_number.clone()),
                from: self.v.phone_number.clone(),
                display_name: None,
                headers: Vec::new(),
                ring_timeout: self.v.ring_timeout,
                parent: None,
                events: tx,
                // The account's call, held to its limits, but not to the caller-ID rule it
                // is proving.
                account: Some(self.v.account.clone()),
                system: true,
            })
            .await?;
        info!(%call, number = %self.v.phone_number, "verification call placed");
        Ok((call, events))
    }

    fn finished(
        &self,
        call: Option<String>,
        call_status: CallStatus,
        verified: Option<VerifiedCallerIdRow>,
    ) -> Finished {
        Finished {
            account: self.v.account.clone(),
            phone_number: self.v.phone_number.clone(),
            call,
            call_status,
            verified,
        }
    }

    async fn run(
        &self,
        call: Option<String>,
        mut events: mpsc::Receiver<crate::call::CallEvent>,
    ) -> Finished {
        let sid = call.clone().unwrap_or_default();
        let verified = match tokio::time::timeout(
            self.v.ring_timeout + CALL_LIMIT,
            self.converse(&sid, &mut events),
        )
        .await
        {
            Ok(Ok(verified)) => verified,
            Ok(Err(status)) => return self.finished(call, status, None),
            Err(_) => None,
        };
        let _ = self.control.command(&sid, CallCommand::Hangup).await;
        // The call's own end gives its status.
        let mut status = CallStatus::Completed;
        while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            if let EventKind::Hangup { status: s, .. } = e.kind {
                status = s;
                break;
            }
        }
        self.finished(call, status, verified)
    }

    /// The conversation: answered, the code asked for up to [`ATTEMPTS`] times. `Ok` with the
    /// caller ID when the code was keyed; `Err` with the status when the call ended first.
    async fn converse(
        &self,
        sid: &str,
        events: &mut mpsc::Receiver<crate::call::CallEvent>,
    ) -> Result<Option<VerifiedCallerIdRow>, CallStatus> {
        loop {
            match events.recv().await.map(|e| e.kind) {
                Some(EventKind::Answered { .. }) => break,
                Some(EventKind::Hangup { status, .. }) => return Err(status),
                Some(_) => {}
                None => return Err(CallStatus::Failed),
            }
        }
        if let Some(digits) = &self.v.extension {
            let _ = (self.control)
                .command(sid, CallCommand::SendDigits(digits.clone()))
                .await;
        }
        for attempt in 0..ATTEMPTS {
            let ask = if attempt == 0 {
                "Hello. To verify this number as your caller ID, please enter the six digit code shown on your screen."
            } else {
                "That code is not correct. Please enter the six digit code again."
            };
            self.say(sid, ask).await;
            let gather = GatherSpec {
                timeout: Duration::from_secs(10),
                first_timeout: None,
                total_timeout: None,
                finish_on_key: Some('#'),
                num_digits: Some(self.code.len()),
                after_playback: true,
            };
            if self
                .control
                .command(sid, CallCommand::Gather(gather))
                .await
                .is_err()
            {
                return Ok(None);
            }
            let digits = loop {
                match events.recv().await.map(|e| e.kind) {
                    Some(EventKind::GatherEnded { digits, .. }) => break digits,
                    Some(EventKind::Hangup { status, .. }) => return Err(status),
                    Some(_) => {}
                    None => return Err(CallStatus::Failed),
                }
            };
            if digits == self.code {
                let row = match self.ids.add(&self.v).await {
                    Ok(row) => row,
                    Err(e) => {
                        warn!(error = %e, "a verified caller ID could not be stored");
                        return Ok(None);
                    }
                };
                info!(number = %self.v.phone_number, sid = %row.sid, "caller ID verified");
                self.say(sid, "Thank you. Your number is verified. Goodbye.")
                    .await;
                self.until_played(events).await?;
                return Ok(Some(row));
            }
        }
        self.say(sid, "Sorry, the number could not be verified. Goodbye.")
            .await;
        self.until_played(events).await?;
        Ok(None)
    }

    /// Plays `text` on the call (a failure to render is logged: the gather still runs).
    async fn say(&self, sid: &str, text: &str) {
        match (self.prompts)
            .say(text, None, Some("en-US"), &self.v.account)
            .await
        {
            Ok(spoken) => {
                let play = CallCommand::Play {
                    clip: switchboard_media::Prompt::new(vec![spoken.part(1)]),
                    loops: 1,
                    barge_in: true,
                };
                let _ = self.control.command(sid, play).await;
            }
            Err(e) => warn!(error = %e, "the verification prompt could not be rendered"),
        }
    }

    async fn until_played(
        &self,
        events: &mut mpsc::Receiver<crate::call::CallEvent>,
    ) -> Result<(), CallStatus> {
        loop {
            match events.recv().await.map(|e| e.kind) {
                Some(EventKind::PlaybackEnded { .. }) => return Ok(()),
                Some(EventKind::Hangup { status, .. }) => return Err(status),
                Some(_) => {}
                None => return Err(CallStatus::Failed),
            }
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
}
