//! A webhook request as it will be sent — method, URL (with its query for GET), content type
//! and body — and who signs it. The outbox stores this, so one outbox delivers every
//! dialect's webhooks: the dialect encodes the body when the webhook is made, the signature is
//! computed at send time with the account's keys of that moment (a rotated token signs the
//! retries).

use crate::infra::accounts::HttpMethod;

pub const FORM: &str = "application/x-www-form-urlencoded";

/// How a request is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// Twilio's `X-Twilio-Signature` (HMAC-SHA1 of the URL and the sorted form parameters)
    /// with the account's auth token; an account with a SignalWire signing key signs with it,
    /// in `X-SignalWire-Signature` as well.
    Twilio,
    /// Telnyx's: the body is an event's `data` object; at send time it is wrapped in the
    /// envelope with `meta` (the attempt, where it was delivered) and signed with the
    /// account's Ed25519 key over `"{timestamp}|{body}"` (`telnyx-signature-ed25519`,
    /// `telnyx-timestamp`).
    Telnyx,
    /// TeXML's: the body (form-encoded, as Twilio's) sent as it is and signed as Telnyx signs
    /// its events, Ed25519 over `"{timestamp}|{body}"` (a GET's empty body signs as `""`).
    Texml,
}

impl Signer {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Telnyx => "telnyx",
            Self::Texml => "texml",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "twilio" => Some(Self::Twilio),
            "telnyx" => Some(Self::Telnyx),
            "texml" => Some(Self::Texml),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub method: HttpMethod,
    /// The URL requested: for a GET, with the parameters in its query.
    pub url: String,
    /// `None` for a request without a body.
    pub content_type: Option<String>,
    pub body: String,
    pub signer: Signer,
    /// Tried in the same attempt when `url` fails (Telnyx's `webhook_event_failover_url`).
    pub failover_url: Option<String>,
    /// How long an attempt waits for the answer, when not the node's own wait (Telnyx's
    /// `webhook_timeout_secs`).
    pub timeout_secs: Option<u32>,
}

impl WebhookRequest {
    /// A Twilio-dialect request: the parameters form-encoded, in the body of a POST or the
    /// query of a GET.
    pub fn twilio(url: &str, method: HttpMethod, params: &[(String, String)]) -> Self {
        Self::form(url, method, params, Signer::Twilio)
    }

    /// The parameters form-encoded, in the body of a POST or the query of a GET, signed by
    /// `signer`.
    pub fn form(
        url: &str,
        method: HttpMethod,
        params: &[(String, String)],
        signer: Signer,
    ) -> Self {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        match method {
            HttpMethod::Post => Self {
                method,
                url: url.to_owned(),
                content_type: Some(FORM.to_owned()),
                body: encoded,
                signer,
                failover_url: None,
                timeout_secs: None,
            },
            HttpMethod::Get => {
                let url = if encoded.is_empty() {
                    url.to_owned()
                } else {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{sep}{encoded}")
                };
                Self {
                    method,
                    url,
                    content_type: None,
                    body: String::new(),
                    signer,
                    failover_url: None,
                    timeout_secs: None,
                }
            }
        }
    }

    /// A Telnyx event: `data` is the event object (`record_type`, `event_type`, `id`,
    /// `occurred_at`, `payload`), POSTed as JSON inside the envelope made at send time.
    pub fn telnyx(url: &str, data: &serde_json::Value) -> Self {
        Self {
            method: HttpMethod::Post,
            url: url.to_owned(),
            content_type: Some("application/json".to_owned()),
            body: data.to_string(),
            signer: Signer::Telnyx,
            failover_url: None,
            timeout_secs: None,
        }
    }

    /// The request, with `failover` tried when its URL fails.
    pub fn with_failover(mut self, failover: Option<String>) -> Self {
        self.failover_url = failover;
        self
    }

    /// The request, waited for `secs` at most on each attempt (none: the node's own wait).
    pub fn with_timeout(mut self, secs: Option<u32>) -> Self {
        self.timeout_secs = secs;
        self
    }

    /// The body sent on attempt `attempt` (from 1): Telnyx's envelope around its event,
    /// the stored body for everything else.
    pub fn body_for(&self, attempt: u32, delivered_to: &str) -> String {
        match self.signer {
            Signer::Twilio | Signer::Texml => self.body.clone(),
            Signer::Telnyx => {
                let meta = serde_json::json!({"attempt": attempt, "delivered_to": delivered_to});
                format!("{{\"data\":{},\"meta\":{meta}}}", self.body)
            }
        }
    }

    /// The form parameters of the body (none unless it is form-encoded).
    pub fn form_params(&self) -> Vec<(String, String)> {
        if self.content_type.as_deref() != Some(FORM) {
            return Vec::new();
        }
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    /// The first form parameter named `name`.
    pub fn form_param(&self, name: &str) -> Option<String> {
        (self.form_params().into_iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<(String, String)> {
        [("CallSid", "CA1"), ("To", "+1 555"), ("Digits", "1&2")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec()
    }

    /// A POST keeps its parameters (order and all) in the body they are signed from; a GET
    /// carries them in the URL it signs.
    #[test]
    fn twilio_requests_carry_their_parameters_as_sent() {
        let post = WebhookRequest::twilio("http://app/s", HttpMethod::Post, &params());
        assert_eq!(post.body, "CallSid=CA1&To=%2B1+555&Digits=1%262");
        assert_eq!(post.form_params(), params());
        let get = WebhookRequest::twilio("http://app/s?a=1", HttpMethod::Get, &params());
        assert_eq!(
            get.url,
            "http://app/s?a=1&CallSid=CA1&To=%2B1+555&Digits=1%262"
        );
        assert_eq!((get.content_type.as_deref(), get.body.as_str()), (None, ""));
        assert!(get.form_params().is_empty());
        let bare = WebhookRequest::twilio("http://app/s", HttpMethod::Get, &[]);
        assert_eq!(bare.url, "http://app/s");
    }
}
