//! Forking: a leg placed to a registered user (an application's call, or the callee of a
//! route to a user) rings every device the user has registered (up to [`MAX_DEVICES`]) at
//! once, as a registrar's proxy does (RFC 3261 §16.6) and as Twilio's `client:` calls and
//! Telnyx's calls to a credential do. The devices share the leg's one offer and media
//! endpoint: only the device that answers ever uses them. The first answer makes its dialog
//! the leg's and the others are cancelled with RFC
//! 3326's "call completed elsewhere", so a device that rang sees why it stopped. A device
//! that fails drops out; the call fails only when the last one has, with the best of their
//! responses (§16.7).

use super::context::CallContext;
use super::model::Call;
use crate::rows::SipTags;
use std::time::Instant;
use switchboard_sip::ua::{LegEvent, LegId, UserAgent};
use tracing::info;

/// The devices of one user a call rings at most (Twilio rings up to ten clients).
pub(super) const MAX_DEVICES: usize = 10;

/// The devices still ringing besides the forking leg's own dialog, and the best failure so
/// far.
pub(super) struct Forking {
    /// The leg's place in the call (0 for an application's call, the callee's for a route).
    pub(super) leg: usize,
    pub(super) others: Vec<Device>,
    pub(super) failure: Option<u16>,
}

/// A device being rung: its dialog, Contact URI and Call-ID.
pub(super) struct Device {
    dialog: LegId,
    uri: String,
    sip_call_id: Option<String>,
    sip_tags: SipTags,
}

/// RFC 3326: why a ringing device was cancelled.
fn elsewhere() -> Vec<(String, String)> {
    vec![(
        "Reason".to_owned(),
        "SIP;cause=200;text=\"Call completed elsewhere\"".to_owned(),
    )]
}

/// The better of two final failures for the caller to see (RFC 3261 §16.7): a 6xx over
/// anything, then the lower class, and within 4xx a busy over an absence.
fn better(a: Option<u16>, b: u16) -> u16 {
    let Some(a) = a else { return b };
    let rank = |c: u16| match c {
        600..=699 => (0, 0),
        486 => (1, 0),
        _ => (2 + c / 100, u16::from(c == 408 || c == 487)),
    };
    if rank(b) < rank(a) { b } else { a }
}

impl Call {
    /// Makes a ringing device leg `index`'s dialog (and, for the call's own leg, the one its
    /// record names).
    fn take_device(&mut self, index: usize, device: Device) {
        let leg = &mut self.legs[index];
        leg.dialog = Some(device.dialog);
        leg.first_dialog = device.dialog;
        leg.sip_call_id = device.sip_call_id.clone();
        leg.sip_tags = device.sip_tags.clone();
        if index == 0 {
            self.record.to_uri = device.uri;
            self.record.sip_call_id = device.sip_call_id.unwrap_or_default();
            self.record.sip_tags = device.sip_tags;
        }
    }

    /// The call's own leg, or a device it rings, has this SIP Call-ID.
    pub(super) fn has_sip_call_id(&self, sip_call_id: &str) -> bool {
        let own = self.legs.iter().map(|l| l.sip_call_id.as_deref());
        let ringing = (self.forking.iter())
            .flat_map(|f| &f.others)
            .map(|d| d.sip_call_id.as_deref());
        own.chain(ringing).any(|id| id == Some(sip_call_id))
    }
}

/// Where `user`'s devices past its first are (in the registrar's order, to ten in all).
pub(super) fn other_devices(
    ua: &UserAgent,
    now: Instant,
    user: &str,
) -> Vec<super::admission::Destination> {
    let devices = ua.lookup(now, user).len().min(MAX_DEVICES);
    (1..devices)
        .filter_map(|i| super::admission::resolve_user_at(ua, now, user, i).ok())
        .collect()
}

impl Call {
    /// Rings the other devices of leg `index`'s user: `invites` are their INVITEs, made like
    /// the leg's.
    pub(super) fn ring_devices(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        index: usize,
        invites: Vec<switchboard_sip::ua::InviteParams>,
    ) {
        if invites.is_empty() {
            return;
        }
        let mut forking = Forking {
            leg: index,
            others: Vec::new(),
            failure: None,
        };
        for invite in invites {
            let uri = invite.uri.to_string();
            let dialog = cx.ua.invite(now, invite);
            cx.dialogs.insert(dialog, (cx.key, index));
            let (sip_call_id, sip_tags) = super::model::dialog_name(cx.ua, dialog);
            forking.others.push(Device {
                dialog,
                uri,
                sip_call_id,
                sip_tags,
            });
        }
        let _span = self.span.clone().entered();
        info!(devices = forking.others.len() + 1, "ringing every device");
        self.forking = Some(forking);
    }

    /// An event of a forking call's dialog `leg`: what becomes of the devices, and the event
    /// the call is to take as its own leg's, if any.
    pub(super) fn on_fork_event(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        leg: LegId,
        event: LegEvent,
    ) -> Option<LegEvent> {
        let call = self;
        let Some(index) = call.forking.as_ref().map(|f| f.leg) else {
            return Some(event);
        };
        let own = call.legs[index].dialog;
        let forking = call.forking.as_mut()?;
        let is_own = own == Some(leg);
        let position = forking.others.iter().position(|d| d.dialog == leg);
        if !is_own && position.is_none() {
            return None;
        }
        match event {
            LegEvent::Answered { .. } => {
                let _span = call.span.clone().entered();
                if let Some(i) = position {
                    let winner = forking.others.swap_remove(i);
                    if let Some(dialog) = own {
                        forking.others.push(Device {
                            dialog,
                            uri: String::new(),
                            sip_call_id: None,
                            sip_tags: SipTags::default(),
                        });
                    }
                    call.take_device(index, winner);
                }
                info!(leg = call.legs[index].name, "a device answered");
                let losers = call.forking.take().map(|f| f.others).unwrap_or_default();
                let reason = elsewhere();
                for loser in losers {
                    cx.ua.hangup_with(now, loser.dialog, 487, &reason);
                    cx.dialogs.remove(&loser.dialog);
                }
                Some(event)
            }
            LegEvent::Failed { code } => {
                let best = better(forking.failure, code);
                forking.failure = Some(best);
                cx.dialogs.remove(&leg);
                if let Some(i) = position {
                    forking.others.remove(i);
                    return None;
                }
                if forking.others.is_empty() {
                    call.forking = None;
                    return Some(LegEvent::Failed { code: best });
                }
                // The call's own device failed: the next one still ringing takes its place.
                let next = forking.others.remove(0);
                call.take_device(index, next);
                None
            }
            // Any device ringing rings the call; early media is the own leg's alone, since
            // the devices share one media endpoint.
            LegEvent::Progress { code, body } => Some(LegEvent::Progress {
                code: if is_own { code } else { 180 },
                body: if is_own { body } else { None },
            }),
            event if is_own => Some(event),
            _ => None,
        }
    }

    /// The call ended while devices still rang: they are cancelled.
    pub(super) fn stop_ringing(&mut self, cx: &mut CallContext, now: Instant) {
        let Some(forking) = self.forking.take() else {
            return;
        };
        for device in forking.others {
            cx.ua.hangup(now, device.dialog, 487);
            cx.dialogs.remove(&device.dialog);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::better;

    #[test]
    fn the_caller_sees_the_best_failure() {
        assert_eq!(better(None, 480), 480);
        assert_eq!(better(Some(480), 486), 486, "busy over absent");
        assert_eq!(better(Some(486), 480), 486);
        assert_eq!(better(Some(486), 603), 603, "a decline over anything");
        assert_eq!(better(Some(503), 480), 480, "the lower class");
        assert_eq!(better(Some(408), 480), 480, "a timeout is the weakest 4xx");
        assert_eq!(better(Some(487), 404), 404);
    }
}
