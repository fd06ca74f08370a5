//! What Switchboard's own APIs for frontends (the live socket, calls' histories, the console
//! they serve) share: who is reading — an account, with its REST credentials, or the operator,
//! with the admin token — and an event as a page is shown it.

use crate::infra::accounts::{Account, Directory};
use crate::operator::admin::error;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

/// Who reads: an account (its own calls) or the operator (every call).
pub enum Viewer {
    Account(Box<Account>),
    Operator,
}

impl Viewer {
    /// The account whose calls it sees; `None`: every call.
    pub fn scope(&self) -> Option<&str> {
        match self {
            Self::Account(a) => Some(&a.sid),
            Self::Operator => None,
        }
    }

    /// From the request's credentials: the admin token as a Bearer (when one is configured),
    /// or an account's Basic credentials.
    pub fn of(
        directory: &Directory,
        admin_token: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<Self> {
        let bearer = crate::infra::http::bearer_token(headers);
        if let (Some(token), Some(given)) = (admin_token, bearer) {
            return crate::infra::secret::matches(token, given).then_some(Self::Operator);
        }
        crate::infra::http::basic_credentials(headers)
            .and_then(|(user, password)| directory.by_credentials(&user, &password))
            .map(|(account, _)| Self::Account(Box::new(account)))
    }
}

/// The answer to a request that is neither an account's nor the operator's.
pub(crate) fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "an account's Basic credentials or the admin token are required",
    )
}

/// An event as a page sees it: the call core's event without what is the server's own (where
/// a recording's file lies on its disk; the page fetches recordings through the API).
pub(crate) fn shown(event: &impl serde::Serialize) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        fields.remove("path");
    }
    value
}
