//! Requests to applications in the Twilio dialect: form-encoded parameters (POST body, or the
//! query string for GET), `X-Twilio-Signature` over the URL and parameters with the account's
//! auth token, Twilio's User-Agent, and a fresh idempotency token. An account with a SignalWire
//! signing key is signed with that key instead, in `X-SignalWire-Signature` and (as SignalWire
//! does, for Twilio-based validators) `X-Twilio-Signature`.

use super::signature::{Algorithm, sign};
use crate::accounts::{Account, HttpMethod};
use std::time::Duration;

/// Twilio gives up on a TwiML fetch after 15 s (error 11200).
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Larger documents are refused, as Twilio refuses them (error 11750).
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct WebhookError {
    pub url: String,
    /// Twilio's error code: 11200 (HTTP retrieval failure), 11205 (connection), 11750
    /// (response too large).
    pub code: u32,
    pub reason: String,
}

#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
}

impl Default for WebhookClient {
    fn default() -> Self {
        Self {
            http: crate::http_client::client(),
        }
    }
}

impl WebhookClient {
    /// Sends a signed request and returns the body of a 2xx answer.
    pub async fn request(
        &self,
        account: &Account,
        url: &str,
        method: HttpMethod,
        params: &[(String, String)],
    ) -> Result<String, WebhookError> {
        let fail = |code, reason: String| WebhookError {
            url: url.to_owned(),
            code,
            reason,
        };
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let key = account
            .signing_key
            .as_deref()
            .unwrap_or(&account.auth_token);
        let (target, signature, body) = match method {
            HttpMethod::Post => (
                url.to_owned(),
                sign(key, url, params, Algorithm::HmacSha1),
                Some(encoded),
            ),
            HttpMethod::Get => {
                let sep = if url.contains('?') { '&' } else { '?' };
                let full = format!("{url}{sep}{encoded}");
                let signature = sign(key, &full, &[], Algorithm::HmacSha1);
                (full, signature, None)
            }
        };
        let mut request = match method {
            HttpMethod::Post => self.http.post(&target),
            HttpMethod::Get => self.http.get(&target),
        }
        .timeout(FETCH_TIMEOUT)
        .header("X-Twilio-Signature", &signature)
        .header("I-Twilio-Idempotency-Token", uuid_like())
        .header("User-Agent", "TwilioProxy/1.1");
        if account.signing_key.is_some() {
            request = request.header("X-SignalWire-Signature", &signature);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| fail(11205, e.to_string()))?;
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

/// A random token in UUID form, as Twilio's idempotency tokens look.
fn uuid_like() -> String {
    let h = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
