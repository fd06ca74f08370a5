//! The verification call: dialled from the number itself, answered, the extension keyed, and
//! then either the code asked for (the person called keys the code the account was shown) or
//! spoken (the account submits the code it heard).

use super::{ATTEMPTS, CALL_LIMIT, Finished, Proof, Verification, VerifiedCallerIds};
use crate::call::{
    CallCommand, CallControl, CallError, CallStatus, EventKind, GatherSpec, Originate, Target,
};
use crate::infra::store::VerifiedCallerIdRow;
use crate::services::prompts::Prompts;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// One verification call.
pub(super) struct Flow {
    pub(super) ids: Arc<VerifiedCallerIds>,
    pub(super) control: CallControl,
    pub(super) prompts: Arc<Prompts>,
    pub(super) code: String,
    pub(super) v: Verification,
}

impl Flow {
    /// Dials the number from itself (the number being proved is the caller ID it will be).
    pub(super) async fn place(
        &self,
    ) -> Result<(String, mpsc::Receiver<crate::call::CallEvent>), CallError> {
        let (tx, events) = mpsc::channel(64);
        let call = (self.control)
            .originate(
                Originate {
                    to: Target::Number(self.v.phone_number.clone()),
                    from: self.v.phone_number.clone(),
                    display_name: None,
                    headers: Vec::new(),
                    ring_timeout: self.v.ring_timeout,
                    parent: None,
                    // The account's call, held to its limits, but not to the caller-ID rule it
                    // is proving.
                    account: Some(self.v.account.clone()),
                    system: true,
                    channels: Vec::new(),
                    credentials: None,
                },
                tx,
            )
            .await?;
        info!(%call, number = %self.v.phone_number, "verification call placed");
        Ok((call, events))
    }

    pub(super) fn finished(
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

    pub(super) async fn run(
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

    /// The conversation: answered, the extension keyed, then the code asked for or spoken.
    /// `Ok` with the caller ID when the code was keyed; `Err` with the status when the call
    /// ended first.
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
        match self.v.proof {
            Proof::Keyed => self.ask_for_code(sid, events).await,
            Proof::Spoken => self.speak_code(sid, events).await.map(|()| None),
        }
    }

    /// Speaks the code twice, digit by digit; the account submits it (see
    /// [`VerifiedCallerIds::confirm`]).
    async fn speak_code(
        &self,
        sid: &str,
        events: &mut mpsc::Receiver<crate::call::CallEvent>,
    ) -> Result<(), CallStatus> {
        let digits: Vec<String> = self.code.chars().map(String::from).collect();
        let digits = digits.join(", ");
        let text = format!(
            "Hello. Your verification code is: {digits}. Once again, your code is: {digits}. Goodbye."
        );
        self.say(sid, &text).await;
        self.until_played(events).await
    }

    /// Asks for the code up to [`ATTEMPTS`] times.
    async fn ask_for_code(
        &self,
        sid: &str,
        events: &mut mpsc::Receiver<crate::call::CallEvent>,
    ) -> Result<Option<VerifiedCallerIdRow>, CallStatus> {
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
                    // A code spoken is heard out; a question may be answered early.
                    barge_in: self.v.proof == Proof::Keyed,
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
