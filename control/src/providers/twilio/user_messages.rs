//! User-defined messages between a call's Voice SDK device and its application (Twilio's
//! "Call Message Events"): `Calls/{CA}/UserDefinedMessages` sends one to the device over its
//! signalling socket (a `message` frame), and what the device sends (`call.sendMessage`) goes
//! to each of the call's `UserDefinedMessageSubscriptions` as a signed request. Only calls a
//! device on this node's signalling sockets holds have them; the registry forgets a call when
//! its device hangs up or signs out, its subscriptions with it.

use crate::infra::accounts::HttpMethod;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Subscriptions a call may have at once.
pub const MAX_SUBSCRIPTIONS: usize = 10;
/// The longest message, either way, in bytes of its JSON.
pub const MAX_CONTENT: usize = 10 * 1024;
/// `IdempotencyKey`s of a call's messages remembered, the latest.
const KEYS_KEPT: usize = 64;
/// The longest `IdempotencyKey`.
pub const MAX_KEY: usize = 128;
/// A call whose device has been away this long is forgotten: its device did not come back
/// within the SDK's reconnection time (30 s at most), so the call is over for it, and no
/// socket is left to say so.
const AWAY_AT_MOST: Duration = Duration::from_secs(60);

/// A message for a device's socket: the call's SID, the message's SID (`KX…`) and content.
#[derive(Debug)]
pub struct ToDevice {
    pub call: String,
    pub sid: String,
    pub content: Value,
}

/// A subscription of a call's (`ZY…`).
#[derive(Debug, Clone)]
pub struct Subscription {
    pub sid: String,
    /// The `IdempotencyKey` it was made with: the same again answers it.
    pub key: Option<String>,
    pub callback: String,
    pub method: HttpMethod,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Why a message or subscription was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No device on this node holds the call (not a Voice SDK call, or over).
    NoDevice,
    /// [`MAX_SUBSCRIPTIONS`] already.
    TooMany,
    /// The device's socket does not take messages now (full, or gone).
    Busy,
}

struct DeviceCall {
    account: String,
    /// The socket's session; `None` while its device is away (reconnecting).
    device: Option<mpsc::Sender<ToDevice>>,
    subscriptions: Vec<Subscription>,
    /// The latest messages' `IdempotencyKey`s and SIDs.
    sent: std::collections::VecDeque<(String, String)>,
    /// Since when its device is away (its socket dropped).
    away_since: Option<Instant>,
}

/// The calls devices hold, by call SID.
#[derive(Default)]
pub struct UserMessages {
    calls: Mutex<HashMap<String, DeviceCall>>,
}

impl UserMessages {
    /// A device's socket holds call `call` of `account` (again, after a reconnection: its
    /// subscriptions are kept).
    pub fn attach(&self, call: &str, account: &str, device: mpsc::Sender<ToDevice>) {
        self.forget_away(Instant::now());
        let mut calls = self.calls.lock().expect("not poisoned");
        let entry = calls.entry(call.to_owned()).or_insert_with(|| DeviceCall {
            account: account.to_owned(),
            device: None,
            subscriptions: Vec::new(),
            sent: Default::default(),
            away_since: None,
        });
        entry.device = Some(device);
        entry.away_since = None;
    }

    /// The device's socket went away but may come back for the call (for a while: see
    /// [`AWAY_AT_MOST`]).
    pub fn detach(&self, call: &str) {
        if let Some(c) = self.calls.lock().expect("not poisoned").get_mut(call) {
            c.device = None;
            c.away_since.get_or_insert_with(Instant::now);
        }
    }

    /// Forgets the calls whose device has been away longer than [`AWAY_AT_MOST`] at `now`.
    fn forget_away(&self, now: Instant) {
        let mut calls = self.calls.lock().expect("not poisoned");
        calls.retain(|_, c| {
            c.away_since
                .is_none_or(|since| now.saturating_duration_since(since) <= AWAY_AT_MOST)
        });
    }

    /// The call is over for its device: forgotten, subscriptions and all.
    pub fn forget(&self, call: &str) {
        self.calls.lock().expect("not poisoned").remove(call);
    }

    /// Subscribes `callback` to what the device of `account`'s call `call` sends.
    pub fn subscribe(
        &self,
        account: &str,
        call: &str,
        callback: String,
        method: HttpMethod,
        key: Option<String>,
        now_ms: i64,
    ) -> Result<Subscription, Refusal> {
        let mut calls = self.calls.lock().expect("not poisoned");
        let c = (calls.get_mut(call))
            .filter(|c| c.account == account)
            .ok_or(Refusal::NoDevice)?;
        if let Some(made) = c
            .subscriptions
            .iter()
            .find(|s| key.is_some() && s.key == key)
        {
            return Ok(made.clone());
        }
        if c.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return Err(Refusal::TooMany);
        }
        let subscription = Subscription {
            sid: crate::infra::sid::new_sid("ZY"),
            key,
            callback,
            method,
            created_at: now_ms,
        };
        c.subscriptions.push(subscription.clone());
        Ok(subscription)
    }

    /// Removes subscription `sid` of the call; false when it has none of that SID.
    pub fn unsubscribe(&self, account: &str, call: &str, sid: &str) -> bool {
        let mut calls = self.calls.lock().expect("not poisoned");
        let Some(c) = calls.get_mut(call).filter(|c| c.account == account) else {
            return false;
        };
        let before = c.subscriptions.len();
        c.subscriptions.retain(|s| s.sid != sid);
        c.subscriptions.len() < before
    }

    /// Hands a message to the device holding `account`'s call `call`; its SID (`KX…`). A
    /// message with the `key` of one of the latest is that one again, not sent twice.
    pub fn to_device(
        &self,
        account: &str,
        call: &str,
        content: Value,
        key: Option<String>,
    ) -> Result<String, Refusal> {
        let mut calls = self.calls.lock().expect("not poisoned");
        let c = (calls.get_mut(call))
            .filter(|c| c.account == account)
            .ok_or(Refusal::NoDevice)?;
        if let Some((_, sid)) = (c.sent.iter()).find(|(k, _)| Some(k) == key.as_ref()) {
            return Ok(sid.clone());
        }
        let device = c.device.as_ref().ok_or(Refusal::Busy)?;
        let sid = crate::infra::sid::new_sid("KX");
        let message = ToDevice {
            call: call.to_owned(),
            sid: sid.clone(),
            content,
        };
        device.try_send(message).map_err(|_| Refusal::Busy)?;
        if let Some(key) = key {
            if c.sent.len() == KEYS_KEPT {
                c.sent.pop_front();
            }
            c.sent.push_back((key, sid.clone()));
        }
        Ok(sid)
    }

    /// Where what the device of call `call` sends goes: its account and subscriptions.
    pub fn subscribers(&self, call: &str) -> Option<(String, Vec<Subscription>)> {
        let calls = self.calls.lock().expect("not poisoned");
        let c = calls.get(call)?;
        Some((c.account.clone(), c.subscriptions.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_calls_messages_reach_its_device_and_its_subscriptions_are_its_accounts() {
        let messages = UserMessages::default();
        let (tx, mut rx) = mpsc::channel(1);
        messages.attach("CA1", "AC1", tx);
        let sid = messages
            .to_device("AC1", "CA1", json!({"a": 1}), Some("k".into()))
            .unwrap();
        assert!(sid.starts_with("KX"));
        let got = rx.try_recv().unwrap();
        assert_eq!((got.call.as_str(), got.content), ("CA1", json!({"a": 1})));
        // The same key again is the same message, not sent twice.
        assert_eq!(
            messages.to_device("AC1", "CA1", json!({"a": 1}), Some("k".into())),
            Ok(sid)
        );
        assert!(rx.try_recv().is_err());
        // Another account reaches neither the device nor the subscriptions.
        assert_eq!(
            messages.to_device("AC2", "CA1", json!(1), None),
            Err(Refusal::NoDevice)
        );
        let sub = |account| {
            messages.subscribe(
                account,
                "CA1",
                "http://a/".into(),
                HttpMethod::Post,
                None,
                0,
            )
        };
        assert_eq!(sub("AC2").unwrap_err(), Refusal::NoDevice);
        let first = sub("AC1").unwrap();
        assert!(first.sid.starts_with("ZY"));
        let keyed = |key: &str| {
            let key = Some(key.to_owned());
            messages.subscribe("AC1", "CA1", "http://b/".into(), HttpMethod::Get, key, 0)
        };
        let again = keyed("x").unwrap();
        assert_eq!(
            keyed("x").unwrap().sid,
            again.sid,
            "the same key, the same subscription"
        );
        assert!(messages.unsubscribe("AC1", "CA1", &again.sid));
        for _ in 1..MAX_SUBSCRIPTIONS {
            sub("AC1").unwrap();
        }
        assert_eq!(sub("AC1").unwrap_err(), Refusal::TooMany);
        assert!(!messages.unsubscribe("AC2", "CA1", &first.sid));
        assert!(messages.unsubscribe("AC1", "CA1", &first.sid));
        // A full socket takes no more; a device away none; a call forgotten is gone.
        messages.to_device("AC1", "CA1", json!(2), None).unwrap();
        assert_eq!(
            messages.to_device("AC1", "CA1", json!(3), None),
            Err(Refusal::Busy)
        );
        messages.detach("CA1");
        assert_eq!(
            messages.to_device("AC1", "CA1", json!(4), None),
            Err(Refusal::Busy)
        );
        assert_eq!(
            messages.subscribers("CA1").unwrap().1.len(),
            MAX_SUBSCRIPTIONS - 1
        );
        messages.forget("CA1");
        assert!(messages.subscribers("CA1").is_none());
        // A device that does not come back: its call is forgotten once it has been away too
        // long; one that is back is kept.
        let (tx, _rx) = mpsc::channel(1);
        messages.attach("CA2", "AC1", tx.clone());
        messages.attach("CA3", "AC1", tx);
        messages.detach("CA2");
        messages.forget_away(Instant::now() + AWAY_AT_MOST / 2);
        assert!(messages.subscribers("CA2").is_some(), "away a little while");
        messages.forget_away(Instant::now() + AWAY_AT_MOST * 2);
        assert!(messages.subscribers("CA2").is_none(), "away too long");
        assert!(messages.subscribers("CA3").is_some(), "its device is here");
    }
}
