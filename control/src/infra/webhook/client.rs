//! Requests to applications, signed as their dialect signs. Twilio's: form-encoded parameters
//! (POST body, or the query string for GET), `X-Twilio-Signature` over the URL and parameters
//! with the account's auth token, Twilio's User-Agent, and an idempotency token (the same on
//! every retry of one webhook). An account with a SignalWire signing key is signed with that
//! key instead, in `X-SignalWire-Signature` and (as SignalWire does, for Twilio-based
//! validators) `X-Twilio-Signature`. Telnyx's: a JSON envelope signed with the account's
//! Ed25519 key; TeXML's: the form body as it is, signed with that key the same way.

use super::request::{Signer, WebhookRequest};
use super::signature::{Algorithm, sign};
use crate::infra::accounts::{Account, HttpMethod};
use crate::infra::egress::Clients;
use std::time::Duration;

/// Twilio gives up on a TwiML fetch after 15 s (error 11200).
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Larger documents are refused, as Twilio refuses them (error 11750).
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", crate::infra::secret::redact_url(url))]
pub struct WebhookError {
    pub url: String,
    /// Twilio's error code: 11200 (HTTP retrieval failure), 11205 (connection), 11750
    /// (response too large).
    pub code: u32,
    pub reason: String,
}

#[derive(Clone, Default)]
pub struct WebhookClient {
    http: Clients,
}

impl WebhookClient {
    /// Requests go through `clients`, as far as each account's reach allows.
    pub fn new(clients: Clients) -> Self {
        Self { http: clients }
    }
}

impl WebhookClient {
    /// Sends a Twilio-dialect request (a TwiML fetch) and returns the body of a 2xx answer.
    pub async fn request(
        &self,
        account: &Account,
        url: &str,
        method: HttpMethod,
        params: &[(String, String)],
        idempotency_token: &str,
    ) -> Result<String, WebhookError> {
        let request = WebhookRequest::twilio(url, method, params);
        self.send(account, &request, idempotency_token, 1).await
    }

    /// Sends `request` (its `attempt`th try, from 1), signed as its signer signs with the
    /// account's current keys, and returns the body of a 2xx answer.
    pub async fn send(
        &self,
        account: &Account,
        request: &WebhookRequest,
        idempotency_token: &str,
        attempt: u32,
    ) -> Result<String, WebhookError> {
        let target = request.url.as_str();
        let fail = |code, reason: String| WebhookError {
            url: target.to_owned(),
            code,
            reason,
        };
        let body = request.body_for(attempt, target);
        let signed: Vec<(&str, String)> = match request.signer {
            Signer::Twilio => {
                let key = account
                    .signing_key
                    .as_deref()
                    .unwrap_or(&account.auth_token);
                let signature = sign(key, target, &request.form_params(), Algorithm::HmacSha1);
                let mut h = vec![
                    ("X-Twilio-Signature", signature.clone()),
                    ("I-Twilio-Idempotency-Token", idempotency_token.to_owned()),
                    ("User-Agent", "TwilioProxy/1.1".to_owned()),
                ];
                if account.signing_key.is_some() {
                    h.push(("X-SignalWire-Signature", signature));
                }
                h
            }
            Signer::Telnyx | Signer::Texml => {
                let timestamp = crate::infra::clock::now_ms().div_euclid(1000).to_string();
                let signature = telnyx_signature(account, &timestamp, &body);
                vec![
                    ("telnyx-signature-ed25519", signature),
                    ("telnyx-timestamp", timestamp),
                    (
                        "User-Agent",
                        crate::services::stream::wire::TELNYX_USER_AGENT.to_owned(),
                    ),
                ]
            }
        };
        // A URL the account may not reach fails as one that cannot be connected does.
        let http = (self.http)
            .for_url(target, account.reach)
            .map_err(|e| fail(11205, e))?;
        let mut http_request = match request.method {
            HttpMethod::Post => http.post(target),
            HttpMethod::Get => http.get(target),
        }
        .timeout(
            (request.timeout_secs).map_or(FETCH_TIMEOUT, |s| Duration::from_secs(u64::from(s))),
        );
        for (name, value) in signed {
            http_request = http_request.header(name, value);
        }
        if let Some(content_type) = &request.content_type {
            // Twilio names the charset of its forms (tests/fixtures/real/twilio).
            let content_type = match (&request.signer, content_type.as_str()) {
                (Signer::Twilio, super::request::FORM) => {
                    "application/x-www-form-urlencoded; charset=UTF-8"
                }
                (_, other) => other,
            };
            http_request = http_request.header("Content-Type", content_type).body(body);
        }
        let mut response = http_request
            .send()
            .await
            .map_err(|e| fail(11205, error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(11200, format!("HTTP {status}")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(11200, e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(fail(
                    11750,
                    format!("the response is over {MAX_BODY} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| fail(11200, "the response is not UTF-8".into()))
    }
}

/// Telnyx's webhook signature: standard base64 of the Ed25519 signature (RFC 8032, no
/// prehash) of `"{timestamp}|{body}"`.
pub fn telnyx_signature(account: &Account, timestamp: &str, body: &str) -> String {
    use base64::Engine;
    use ed25519_dalek::Signer as _;
    let message = format!("{timestamp}|{body}");
    let signature = account.telnyx_signing_key().sign(message.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
}

/// An error with its causes: reqwest's own message omits them, and they hold the reason
/// (refused, timed out, an address the policy denies).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The idempotency token of the webhook or request `id` (an id ending in 32 hex digits, as
/// every sid does), in UUID form as Twilio's tokens look: the same id gives the same token.
pub fn idempotency_token(id: &str) -> String {
    let hex = id.get(id.len().saturating_sub(32)..).unwrap_or("");
    let bits = u128::from_str_radix(hex, 16)
        .ok()
        .filter(|_| hex.len() == 32)
        .unwrap_or_else(rand::random);
    crate::call::ids::uuid(bits)
}

#[cfg(test)]
mod tests {
    use super::{idempotency_token, telnyx_signature};
    use crate::infra::accounts::Account;

    /// The vector of the reference (../shared/reference/telnyx-signalwire.md §2.4), verified
    /// there by three Telnyx SDKs.
    #[test]
    fn telnyx_signatures_match_the_sdk_verified_vector() {
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = i as u8;
        }
        let account = Account {
            sid: "AC1".into(),
            auth_token: "t".into(),
            signing_key: None,
            project_id: None,
            api_keys: Vec::new(),
            number_ranges: Vec::new(),
            caller_ids: Vec::new(),
            reach: Default::default(),
            telnyx_api_keys: Vec::new(),
            telnyx_seed: seed,
            speech_providers: Default::default(),
        };
        assert_eq!(
            account.telnyx_public_key(),
            "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
        );
        let body = r#"{"data":{"event_type":"call.answered","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2030-01-01T00:00:00.000000Z","payload":{"call_control_id":"v3:abc","call_leg_id":"leg-1","call_session_id":"sess-1","client_state":null,"connection_id":"conn-1","from":"+15550002222","to":"+15550001111","state":"answered"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"http://127.0.0.1:3000/webhooks"}}"#;
        assert_eq!(
            telnyx_signature(&account, "1893456000", body),
            "wixi0U8lh20EW0WZzqFL579hXoOmC+bJpCFWb39x3ExOjO5KPN5vMzSKG0z1hLbu6hpHfMrFSydz0aVexIdoBQ=="
        );
    }

    #[test]
    fn a_webhook_keeps_its_token() {
        let id = "WH0123456789abcdef0123456789ABCDEF";
        assert_eq!(
            idempotency_token(id),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
        assert_eq!(idempotency_token(id), idempotency_token(id));
        // Not an id: a random token, still UUID-shaped.
        let t = idempotency_token("x");
        assert_eq!((t.len(), t.matches('-').count()), (36, 4));
        assert_ne!(t, idempotency_token("x"));
    }
}
