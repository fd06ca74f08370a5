//! `<Dial>`: the nouns ring in parallel as child calls (direction `outbound-dial`), the first
//! to answer is bridged with the caller and the others are cancelled; `<Conference>` joins a
//! room instead. When the dialed party or the room is done, the caller goes on with the
//! `action` (with `DialCallStatus` and friends) or with the next verb.

use super::application_dials::{AppDial, AppDialError, AppLeg};
use super::dial_legs::LegOptions;
use super::recordings::StatusHook;
use super::{Call, Fetch, Flow, Session, http_method, resolve};
use crate::call::{Beep, CallCommand, CallEvent, EventKind, JoinSpec, Originate, Target};
use crate::call::{RecordOptions, RecordingOrigin};
use crate::infra::store::CallStatus;
use crate::markup::twiml::{ConferenceNoun, Dial, DialNoun};
use crate::services::cluster::rooms::{Joined, Visiting};
use crate::services::directory::sip_domains::SipDomains;
use std::time::{Duration, Instant};
use switchboard_media::record::{Channels, RecordFormat};
use switchboard_media::{TapTracks, tone};
use tokio::sync::mpsc;
use tracing::warn;

/// How a dial ended, for the action's parameters.
pub(super) struct Outcome {
    /// `completed`, `answered`, `busy`, `no-answer`, `failed`, `canceled`.
    pub status: &'static str,
    pub child: Option<String>,
    pub seconds: u64,
    pub bridged: bool,
    /// The bridged call's recording (`record`): its URL and SID.
    pub recording: Option<(String, String)>,
    /// What a dialed App's `<Hangup>`/`<Reject>` gave back (`ReturnParam_<name>`).
    pub returned: Vec<(String, String)>,
}

impl Outcome {
    /// A dial that bridged nobody.
    pub(super) fn failed(status: &'static str) -> Self {
        Self {
            status,
            child: None,
            seconds: 0,
            bridged: false,
            recording: None,
            returned: Vec::new(),
        }
    }
}

impl Session {
    pub(super) async fn dial(&mut self, dial: &Dial, base: &str) -> Result<Option<Fetch>, Flow> {
        if let Some(DialNoun::Conference(room)) = dial.nouns.first() {
            self.conference(room, base).await?;
            return action(dial, base, None);
        }
        let from = dial
            .caller_id
            .clone()
            .unwrap_or_else(|| self.call.from.clone());
        // An App is dialed alone (the parser sees to it), through a leg readied first.
        let app = match dial.nouns.first() {
            Some(noun @ DialNoun::Application { .. }) => match self.app_leg(noun, &from).await {
                Some(leg) => Some(leg),
                None => return action(dial, base, Some(Outcome::failed("failed"))),
            },
            _ => None,
        };
        let outcome = self.ring_and_bridge(dial, base, &from, app.as_ref()).await;
        let returned = match (&app, self.apps.application_dials.get()) {
            (Some(leg), Some(dials)) => dials.finish(&leg.token),
            _ => Vec::new(),
        };
        let mut outcome = outcome?;
        outcome.returned = returned;
        action(dial, base, Some(outcome))
    }

    /// The leg a `<Dial><Application>` places, ready; `None` (with Twilio's 21218 among the
    /// call's notifications, or a log of why) when the App cannot be dialed.
    async fn app_leg(&self, noun: &DialNoun, from: &str) -> Option<AppLeg> {
        let DialNoun::Application {
            sid,
            parameters,
            customer_id,
            copy_parent_to,
            ..
        } = noun
        else {
            return None;
        };
        let dials = self.apps.application_dials.get()?;
        let asked = AppDial {
            account: &self.account,
            sid,
            from,
            parent_to: &self.call.to,
            parameters,
            customer_id: customer_id.as_deref(),
            copy_parent_to: *copy_parent_to,
        };
        match dials.dial(asked) {
            Ok(leg) => Some(leg),
            Err(e @ AppDialError::NoApp(_)) => {
                let message = format!("Dial: {e}");
                let notice = super::Notice {
                    code: 21218,
                    warning: false,
                    message: &message,
                    url: "",
                    method: super::HttpMethod::Post,
                };
                (self.apps)
                    .notify(&self.account, &self.call.sid, notice)
                    .await;
                None
            }
            Err(e) => {
                warn!(error = %e, "<Dial><Application> cannot be placed");
                None
            }
        }
    }

    /// Rings every noun; bridges the first to answer; returns when the bridged call ends.
    async fn ring_and_bridge(
        &mut self,
        dial: &Dial,
        base: &str,
        from: &str,
        app: Option<&AppLeg>,
    ) -> Result<Outcome, Flow> {
        if !dial.answer_on_bridge {
            self.answer().await?;
        }
        let (tx, mut children) = mpsc::channel::<CallEvent>(256);
        let from = from.to_owned();
        let mut ringing = Vec::new();
        // Every noun is one call (a <Client> rings each device its identity is signed in
        // on: the core forks it); the first to answer takes the call.
        let mut targets = Vec::new();
        for noun in &dial.nouns {
            let target = match (noun, app) {
                (DialNoun::Application { .. }, Some(leg)) => Some(leg.target.clone()),
                _ => target(noun, &self.account.sid, &self.apps.sip_domains).await,
            };
            match (target, noun) {
                (Some(target), _) => targets.push((noun, target)),
                (None, DialNoun::Sip { uri, .. }) => self.sip_domain_refused(uri).await,
                (None, _) => {}
            }
        }
        for (noun, target) in targets {
            let (leg_tx, leg_events) = mpsc::channel::<CallEvent>(64);
            // A client's <Parameter>s travel with its INVITE to the browser's session; an
            // App's leg carries its seal.
            let headers = match noun {
                DialNoun::Client { parameters, .. } if !parameters.is_empty() => {
                    let encoded = url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(parameters.iter())
                        .finish();
                    vec![(super::CLIENT_PARAMS_HEADER.to_owned(), encoded)]
                }
                DialNoun::Application { .. } => app.map(|a| a.header.clone()).into_iter().collect(),
                _ => Vec::new(),
            };
            // `<Sip username password>`: what the far end's challenge is answered with.
            let credentials = match noun {
                DialNoun::Sip {
                    username: Some(user),
                    password,
                    ..
                } => Some((user.clone(), password.clone().unwrap_or_default())),
                _ => None,
            };
            let originated = self
                .apps
                .control
                .originate(
                    Originate {
                        to: target,
                        from: from.clone(),
                        display_name: None,
                        headers,
                        ring_timeout: Duration::from_secs(dial.timeout_secs.max(1) as u64),
                        parent: Some(self.call.sid.clone()),
                        account: Some(self.account.sid.clone()),
                        system: false,
                        channels: Vec::new(),
                        credentials,
                    },
                    leg_tx,
                )
                .await;
            match originated {
                Ok(sid) => {
                    let leg = Call {
                        sid: sid.clone(),
                        from: from.clone(),
                        to: address(noun),
                        direction: "outbound-dial",
                        extra: Vec::new(),
                    };
                    self.follow_leg(leg, LegOptions::of(noun), base, leg_events, tx.clone());
                    ringing.push(sid);
                }
                Err(crate::call::CallError::CallerIdNotAllowed(id)) => {
                    // Twilio's 13214: the callerId is not one the account may present; the
                    // <Dial> fails (DialCallStatus=failed) and the document goes on.
                    let message = format!("Dial: Invalid callerId value {id}");
                    let notice = super::Notice {
                        code: 13214,
                        warning: true,
                        message: &message,
                        url: "",
                        method: super::HttpMethod::Post,
                    };
                    self.apps
                        .notify(&self.account, &self.call.sid, notice)
                        .await;
                    warn!(caller_id = %id, "<Dial callerId> refused: not the account's");
                }
                Err(e) => warn!(error = %e, "a <Dial> noun cannot be called"),
            }
        }
        drop(tx);
        if ringing.is_empty() {
            return Ok(Outcome::failed("failed"));
        }
        // The caller hears ringback while the callees ring (once answered, or with
        // answerOnBridge, it hears their early media instead).
        if self.answered() {
            self.command(CallCommand::Play {
                clip: tone::ringback(6000).into(),
                loops: 0,
                barge_in: false,
            })
            .await?;
        }
        let mut last_failure = "no-answer";
        let winner = loop {
            tokio::select! {
                event = children.recv() => {
                    let Some(event) = event else { break None };
                    match &event.kind {
                        EventKind::Answered { .. } => break Some(event.call.clone()),
                        EventKind::Hangup { status, .. } => {
                            ringing.retain(|c| *c != event.call);
                            last_failure = dial_status(*status);
                            if ringing.is_empty() {
                                break None;
                            }
                        }
                        _ => {}
                    }
                }
                // The caller hung up while they rang.
                event = self.events.recv() => if self.caller_ended(event).await {
                    for c in &ringing {
                        let _ = self.apps.control.command(c, CallCommand::Hangup).await;
                    }
                    return Err(Flow::Ended);
                },
            }
        };
        if self.answered() {
            self.command(CallCommand::StopPlayback).await?;
        }
        let Some(child) = winner else {
            return Ok(Outcome::failed(last_failure));
        };
        for other in ringing.iter().filter(|c| **c != child) {
            let _ = self.apps.control.command(other, CallCommand::Hangup).await;
        }
        self.answer().await?;
        self.command(CallCommand::Bridge(child.clone())).await?;
        let recording = if dial.record != "do-not-record" {
            let sid = self.record_dial(dial, base).await?;
            Some((self.recording_url(&sid), sid))
        } else {
            None
        };
        let bridged_at = Instant::now();
        // The core hangs the dialed call up at the limit; its hangup ends the dial.
        let limit = Duration::from_secs(dial.time_limit_secs as u64);
        let _ = (self.apps.control)
            .command(&child, CallCommand::LimitDuration(limit))
            .await;
        // Until one side hangs up (the losers' hang-ups, which come on the same channel, do
        // not end the dial), or the caller presses `*` with `hangupOnStar`: the dialed call
        // is hung up and the caller goes on.
        loop {
            tokio::select! {
                event = children.recv() => match event {
                    Some(e) if e.call != child => {}
                    Some(CallEvent { kind: EventKind::Hangup { .. }, .. }) | None => break,
                    Some(CallEvent { kind: EventKind::ReferRequested { target }, .. }) => {
                        if let Some(next) = self.referred(dial, base, &child, &target).await {
                            return Err(Flow::Next(next));
                        }
                    }
                    Some(_) => {}
                },
                event = self.events.recv() => {
                    let star = dial.hangup_on_star
                        && matches!(&event, Some(CallEvent { kind: EventKind::Dtmf { digit: '*', .. }, .. }));
                    if self.caller_ended(event).await {
                        let _ = self.apps.control.command(&child, CallCommand::Hangup).await;
                        return Err(Flow::Ended);
                    }
                    if star {
                        let _ = self.apps.control.command(&child, CallCommand::Hangup).await;
                        break;
                    }
                }
            }
        }
        Ok(Outcome {
            status: "completed",
            child: Some(child),
            seconds: bridged_at.elapsed().as_secs(),
            bridged: true,
            recording,
            returned: Vec::new(),
        })
    }

    /// The room's recording `recording` began (`record="record-from-start"`): its
    /// `recordingStatusCallback` (with its method and events) follows it, as the conference's.
    async fn follow_room_recording(&mut self, room: &ConferenceNoun, base: &str, recording: &str) {
        let (Some(url), true) = (
            room.recording_status_callback.as_deref(),
            room.record_from_start,
        ) else {
            return;
        };
        let Ok(url) = resolve(base, url) else {
            return;
        };
        let conference = self.conference.as_ref().and_then(|p| p.sid.clone());
        let callback = crate::markup::voice::RecordingCallback {
            url,
            method: http_method(room.recording_status_callback_method),
            origin: RecordingOrigin::Conference,
            events: room.recording_status_callback_event.clone(),
            track: "both",
        };
        let (account, call, dialect) = (
            self.account.clone(),
            self.call.sid.clone(),
            self.app.dialect.clone(),
        );
        (self.apps)
            .follow_recording(
                &account,
                &call,
                recording,
                callback,
                &dialect,
                conference.as_deref(),
            )
            .await;
        // It began before the subscription: its start is reported now (`in-progress`).
        let started = CallEvent {
            call,
            seq: 0,
            at: crate::infra::clock::now_ms(),
            kind: EventKind::RecordingStarted {
                recording: recording.to_owned(),
            },
        };
        self.apps.subject_event(&started).await;
    }

    /// The dialed party REFERs (`<Dial referUrl>`, Twilio's inbound REFER): the REFER is
    /// taken (202, NOTIFYs 100 and 200), the dialed party hung up, and the caller goes on with
    /// the `referUrl`'s document, asked with `ReferTransferTarget`. Without a `referUrl` the
    /// REFER is refused (603) and the call's notifications get Twilio's 13802.
    async fn referred(
        &mut self,
        dial: &Dial,
        base: &str,
        child: &str,
        target: &str,
    ) -> Option<Fetch> {
        let control = self.apps.control.clone();
        let url = dial
            .refer_url
            .as_deref()
            .and_then(|u| resolve(base, u).ok());
        let Some(url) = url else {
            let _ = control.command(child, CallCommand::AnswerRefer(603)).await;
            let notice = super::Notice {
                code: 13802,
                warning: false,
                message: "Dial: No referUrl attribute specified",
                url: "",
                method: super::HttpMethod::Post,
            };
            self.apps
                .notify(&self.account, &self.call.sid, notice)
                .await;
            return None;
        };
        for command in [
            CallCommand::AnswerRefer(202),
            CallCommand::NotifyRefer(100),
            CallCommand::NotifyRefer(200),
            CallCommand::Hangup,
        ] {
            let _ = control.command(child, command).await;
        }
        // The Refer-To's URI as written (its headers kept), without a name-addr's brackets.
        let uri = match (target.find('<'), target.rfind('>')) {
            (Some(open), Some(close)) if open < close => &target[open + 1..close],
            _ => target.split(';').next().unwrap_or(target),
        };
        let extra = vec![("ReferTransferTarget".to_owned(), uri.trim().to_owned())];
        Some(Fetch::url(url, http_method(dial.refer_method), extra))
    }

    /// Takes one of the caller's own events while it dials; true when it is the call's end
    /// (kept for the session's finish, as every event is observed).
    pub(super) async fn caller_ended(&mut self, event: Option<CallEvent>) -> bool {
        let Some(event) = event else {
            return true;
        };
        self.observe(&event).await;
        if matches!(event.kind, EventKind::Hangup { .. }) {
            self.ended = Some(event);
            return true;
        }
        false
    }

    /// Records the bridged call (`record`), its `recordingStatusCallback` told when it is
    /// saved; returns the recording's SID.
    async fn record_dial(&mut self, dial: &Dial, base: &str) -> Result<String, Flow> {
        let hook = (dial.recording_status_callback.as_deref()).map(|url| StatusHook {
            url,
            method: dial.recording_status_callback_method,
            events: &dial.recording_status_callback_event,
        });
        let channels = if dial.record.ends_with("-dual") {
            Channels::Dual
        } else {
            Channels::Mono
        };
        let options = RecordOptions {
            channels,
            format: RecordFormat::Pcm16,
            tracks: TapTracks::Both,
            trim_silence: dial.trim_silence,
            sid: None,
            origin: RecordingOrigin::Dial,
            stop: Default::default(),
        };
        self.start_recording(base, hook, options).await
    }

    /// `<Dial><Conference>`: joins the room and stays until the call leaves it.
    async fn conference(&mut self, room: &ConferenceNoun, base: &str) -> Result<(), Flow> {
        self.answer().await?;
        // The wait URL's audio (Twilio's default hold music is not ours to ship: silence).
        let wait_music = match room.wait_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => match resolve(base, url) {
                Ok(url) => self.apps.prompts.url(&url, self.account.reach).await.ok(),
                Err(_) => None,
            },
            None => None,
        };
        let wait_url = (room.wait_url.as_deref())
            .filter(|u| !u.is_empty())
            .and_then(|u| resolve(base, u).ok());
        self.conference = Some(super::conference_events::Participation {
            noun: room.clone(),
            sid: None,
        });
        let spec = JoinSpec {
            name: crate::services::account_conferences::room(&self.account.sid, &room.name),
            muted: room.muted,
            start_on_enter: room.start_conference_on_enter,
            end_on_exit: room.end_conference_on_exit,
            wait_music,
            record: room.record_from_start.then_some(RecordFormat::Pcm16),
            trim_silence: room.trim_silence,
            beep: Beep::of_twiml(&room.beep),
            label: room.participant_label.clone(),
            sid: None,
            shown_as: None,
            coach: room.coach.clone(),
        };
        let visiting = Visiting {
            account: &self.account.sid,
            from: &self.call.from,
            wait_url: wait_url.as_deref(),
            reports: None,
        };
        let joined = self.apps.rooms.join(&self.call.sid, spec, visiting).await;
        match joined {
            Ok(Joined::Here) => loop {
                match self.next_event().await?.kind {
                    EventKind::ConferenceLeft { .. } => break,
                    // The room's recording, started by this participant's coming.
                    EventKind::RecordingStarted { recording } => {
                        self.follow_room_recording(room, base, &recording).await;
                    }
                    _ => {}
                }
            },
            // In a room another node holds, through a leg bridged with this call: its stay
            // ends with the bridge (the leg hangs up then, whoever broke it).
            Ok(Joined::There { leg, conference }) => {
                let hooks = &self.apps.conference_hooks;
                hooks.register_visit(self, &conference, room).await;
                let stay = self
                    .until(|e| matches!(e, EventKind::Unbridged { .. }))
                    .await;
                let _ = self.apps.control.command(&leg, CallCommand::Hangup).await;
                stay?;
            }
            // The room's home elsewhere could not be reached: the dial fails, the document
            // goes on.
            Err(crate::call::CallError::NoRoute(_)) => {
                warn!(room = room.name, "the room's home did not take the call");
            }
            // A `coach` of someone not in the room: the dial fails, the document goes on.
            Err(crate::call::CallError::BadArgument(why)) => {
                warn!(room = room.name, %why, "the conference was not joined");
            }
            Err(e) => {
                // The call is gone, or the core refused: the document cannot go on.
                tracing::info!(error = %e, "joining the room was refused; the document ends");
                return Err(Flow::Ended);
            }
        }
        Ok(())
    }
}

/// Twilio's `DialCallStatus` for a child that ended without being bridged.
fn dial_status(status: CallStatus) -> &'static str {
    match status {
        CallStatus::Busy => "busy",
        CallStatus::NoAnswer => "no-answer",
        CallStatus::Canceled => "canceled",
        CallStatus::Completed => "completed",
        _ => "failed",
    }
}

/// The action to fetch after the dial, if the `<Dial>` has one.
pub(super) fn action(
    dial: &Dial,
    base: &str,
    outcome: Option<Outcome>,
) -> Result<Option<Fetch>, Flow> {
    let Some(url) = &dial.action else {
        return Ok(None);
    };
    let url = resolve(base, url).map_err(Flow::Failed)?;
    let extra = match outcome {
        Some(o) => {
            let mut extra = vec![
                ("DialCallStatus".into(), o.status.to_owned()),
                ("DialCallSid".into(), o.child.unwrap_or_default()),
                ("DialCallDuration".into(), o.seconds.to_string()),
                ("DialBridged".into(), o.bridged.to_string()),
            ];
            if let Some((url, sid)) = o.recording {
                extra.push(("RecordingUrl".into(), url));
                extra.push(("RecordingSid".into(), sid));
                extra.push(("RecordingDuration".into(), o.seconds.to_string()));
            }
            let returned = o.returned.into_iter();
            extra.extend(returned.map(|(k, v)| (format!("ReturnParam_{k}"), v)));
            extra
        }
        None => Vec::new(),
    };
    Ok(Some(Fetch::url(url, http_method(dial.method), extra)))
}

/// The `To` of a noun's leg, as Twilio shows it.
impl Session {
    /// A `<Sip>` at a SIP domain that was not dialed: Twilio's warning 32214 for another
    /// account's domain, 32223 for the domain itself with no user (a domain's user rings its
    /// registrations; nothing else at a domain is dialed).
    async fn sip_domain_refused(&self, uri: &str) {
        let Ok(parsed) = switchboard_sip::message::Uri::try_from(uri) else {
            return;
        };
        let host = parsed.host_with_port.host.to_string();
        let Some(domain) = self.apps.sip_domains.any_domain_named(&host) else {
            return;
        };
        let (code, message) = if parsed.user().is_none() {
            (
                32223,
                format!("Dial: {uri} names no user of the SIP domain"),
            )
        } else if domain.account_sid != self.account.sid {
            (
                32214,
                format!("Dial: {uri} is a SIP domain of another account"),
            )
        } else {
            return;
        };
        let notice = super::Notice {
            code,
            warning: true,
            message: &message,
            url: "",
            method: super::HttpMethod::Post,
        };
        (self.apps)
            .notify(&self.account, &self.call.sid, notice)
            .await;
    }
}

fn address(noun: &DialNoun) -> String {
    match noun {
        DialNoun::Number { number, .. } => number.clone(),
        DialNoun::Sip { uri, .. } => uri.clone(),
        DialNoun::Client { identity, .. } => format!("client:{identity}"),
        DialNoun::Application { sid, .. } => sid.clone(),
        DialNoun::Conference(c) => c.name.clone(),
        DialNoun::Queue { name, .. } => name.clone(),
    }
}

/// Where a noun is called: a number through the routes, a registered user, or a SIP URI
/// (sent to its host).
async fn target(noun: &DialNoun, account: &str, domains: &SipDomains) -> Option<Target> {
    match noun {
        DialNoun::Number { number, .. } => Some(Target::Number(number.clone())),
        DialNoun::Client { identity, .. } => Some(Target::User(identity.clone())),
        // A SIP URI at one of the account's SIP domains rings the domain's user.
        DialNoun::Sip { uri, .. } => {
            match crate::services::dial_targets::resolve_for(account, domains, uri).await? {
                t @ (Target::Uri { .. } | Target::User(_)) => Some(t),
                _ => None,
            }
        }
        // Placed through its readied leg (see `app_leg`).
        DialNoun::Application { .. } | DialNoun::Conference(_) | DialNoun::Queue { .. } => None,
    }
}
