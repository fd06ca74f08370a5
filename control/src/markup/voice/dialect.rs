//! Whose markup a session runs. Twilio's TwiML (and SignalWire's LaML, which differs only in
//! keys and headers) and Telnyx's TeXML are one language run by one interpreter; TeXML's
//! differences are at the edge (reference §4): its requests show the call as Telnyx does
//! (`CallSid` is the call control id, `AccountSid` the account's UUID, recordings by UUID,
//! `ConnectionId` and the `…Legacy` twins added), carry RFC 3339 timestamps, and are signed
//! with the account's Ed25519 key instead of `X-Twilio-Signature`. The session builds its
//! parameters with the stored ids; [`Dialect::present`] turns them into the dialect's just
//! before a request is made, so no verb knows which provider it speaks for.

use super::rfc2822;
use crate::call::ids::{CallId, sid_as_uuid};
use crate::infra::accounts::{Account, HttpMethod};
use crate::infra::webhook::request::{Signer, WebhookRequest};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dialect {
    #[default]
    Twilio,
    /// Telnyx's TeXML, for a call of the TeXML application `connection_id`.
    Texml { connection_id: String },
}

impl Dialect {
    fn texml(&self) -> Option<&str> {
        match self {
            Self::Twilio => None,
            Self::Texml { connection_id } => Some(connection_id),
        }
    }

    /// A request to an application: the parameters presented, signed as the dialect signs.
    pub fn request(
        &self,
        account: &Account,
        url: &str,
        method: HttpMethod,
        params: &[(String, String)],
    ) -> WebhookRequest {
        self.signed(url, method, &self.present(account, params))
    }

    /// A request of parameters presented already, signed as the dialect signs.
    pub fn signed(
        &self,
        url: &str,
        method: HttpMethod,
        params: &[(String, String)],
    ) -> WebhookRequest {
        let signer = match self {
            Self::Twilio => Signer::Twilio,
            Self::Texml { .. } => Signer::Texml,
        };
        WebhookRequest::form(url, method, params, signer)
    }

    /// The parameters as the dialect shows them (Twilio's: as they are).
    pub fn present(&self, account: &Account, params: &[(String, String)]) -> Vec<(String, String)> {
        let Some(connection_id) = self.texml() else {
            return params.to_vec();
        };
        let mut out = Vec::with_capacity(params.len() + 4);
        for (k, v) in params {
            if k == "ConnectionId" || k.ends_with("Legacy") {
                // Added once, below (or beside their call id).
                continue;
            }
            let v = if k == "AccountSid" {
                account_uuid(&account.sid).unwrap_or_else(|| v.clone())
            } else if k.ends_with("CallSid") {
                CallId::from_sid(v).map_or_else(|| v.clone(), CallId::control_id)
            } else if k.ends_with("RecordingSid") {
                sid_as_uuid(v, "RE").unwrap_or_else(|| v.clone())
            } else {
                v.clone()
            };
            // Telnyx repeats each call id under its legacy name.
            let legacy = matches!(k.as_str(), "CallSid" | "ParentCallSid")
                .then(|| (format!("{k}Legacy"), v.clone()));
            out.push((k.clone(), v));
            out.extend(legacy);
        }
        out.push(("ConnectionId".into(), connection_id.to_owned()));
        out
    }

    /// A time as the dialect writes it in callbacks: Twilio's RFC 2822, Telnyx's RFC 3339.
    pub fn timestamp(&self, unix_ms: i64) -> String {
        match self {
            Self::Twilio => rfc2822(unix_ms),
            Self::Texml { .. } => crate::services::stream::iso8601(unix_ms),
        }
    }

    /// Where a recording is fetched from (`RecordingUrl`): Twilio's Recordings resource, or
    /// Telnyx's download URL (a capability URL, as Telnyx's are).
    pub fn recording_url(&self, public_url: &str, account: &Account, sid: &str) -> String {
        match self {
            Self::Twilio => format!(
                "{public_url}/2010-04-01/Accounts/{}/Recordings/{sid}",
                account.api_sid()
            ),
            Self::Texml { .. } => format!(
                "{public_url}/v2/recording_files/{}.wav",
                sid_as_uuid(sid, "RE").unwrap_or_default()
            ),
        }
    }
}

/// The account as Telnyx names it (`AccountSid`, a stream's `user_id`): the account SID's 32
/// hex digits as a UUID.
pub fn account_uuid(account_sid: &str) -> Option<String> {
    sid_as_uuid(account_sid, "AC")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account::for_test(&format!("AC{}", "ab".repeat(16)))
    }

    fn get<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
        p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// TeXML shows the stored ids Telnyx's way and adds what Telnyx adds; Twilio's requests
    /// are untouched.
    #[test]
    fn texml_presents_ids_as_telnyx_does() {
        let call = CallId::random();
        let parent = CallId::random();
        let recording = format!("RE{}", "0f".repeat(16));
        let params: Vec<(String, String)> = [
            ("CallSid", call.sid()),
            ("ParentCallSid", parent.sid()),
            ("DialCallSid", "not-a-sid".to_owned()),
            ("AccountSid", account().sid),
            ("RecordingSid", recording.clone()),
            ("Digits", "12#".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec();
        let acc = account();
        assert_eq!(Dialect::Twilio.present(&acc, &params), params);
        let texml = Dialect::Texml {
            connection_id: "1494404757140276705".into(),
        };
        let p = texml.present(&acc, &params);
        assert_eq!(get(&p, "CallSid"), Some(call.control_id().as_str()));
        assert_eq!(get(&p, "CallSidLegacy"), Some(call.control_id().as_str()));
        assert_eq!(get(&p, "ParentCallSid"), Some(parent.control_id().as_str()));
        assert_eq!(
            get(&p, "ParentCallSidLegacy"),
            Some(parent.control_id().as_str())
        );
        assert_eq!(get(&p, "DialCallSid"), Some("not-a-sid"));
        assert_eq!(
            get(&p, "AccountSid"),
            Some("abababab-abab-abab-abab-abababababab")
        );
        assert_eq!(
            get(&p, "RecordingSid"),
            Some("0f0f0f0f-0f0f-0f0f-0f0f-0f0f0f0f0f0f")
        );
        assert_eq!(get(&p, "Digits"), Some("12#"));
        assert_eq!(get(&p, "ConnectionId"), Some("1494404757140276705"));
        // Presenting twice changes nothing more (a context stored presented is rendered
        // through the dialect again).
        assert_eq!(texml.present(&acc, &p), p);
        let request = texml.request(&acc, "http://app/t", HttpMethod::Post, &params);
        assert_eq!(request.signer, Signer::Texml);
        assert_eq!(request.form_params(), p);
        assert_eq!(
            texml.timestamp(1_438_705_516_000),
            "2015-08-04T16:25:16.000Z"
        );
    }
}
