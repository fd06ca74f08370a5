//! What TeXML's REST resources share: the account a path names (it must be the caller's),
//! the account's UUID as TeXML shows it, and a page of a list in Twilio's envelope.

use super::errors::ApiError;
use super::{Telnyx, authenticate};
use crate::infra::accounts::Account;
use crate::markup::voice::account_uuid;
use crate::providers::twilio::rest::json as rest_json;
use axum::http::HeaderMap;
use serde_json::Value;

/// The caller's account, which the path's `{account}` must name (by its UUID or SID).
pub(super) fn texml_account(
    api: &Telnyx,
    headers: &HeaderMap,
    named: &str,
) -> Result<Account, ApiError> {
    let account = authenticate(api, headers)?.clone();
    own_account(&account, named)?;
    Ok(account)
}

/// The account a path names must be the key's own (by its UUID, as Telnyx shows it, or its
/// SID); another's is as unknown.
fn own_account(account: &Account, named: &str) -> Result<(), ApiError> {
    let named = named.trim_end_matches(".json");
    if named == account.sid || account_uuid(&account.sid).as_deref() == Some(named) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("No account {named}.")))
    }
}

/// The account as TeXML names it: its UUID.
pub(super) fn account_id(account: &Account) -> String {
    account_uuid(&account.sid).unwrap_or_else(|| account.sid.clone())
}

/// A request's query as name–value pairs.
pub(super) fn query(query: Option<&str>) -> Vec<(String, String)> {
    rest_json::form(query.unwrap_or_default())
}

/// `Page` and `PageSize` (Twilio's bounds), refused in Telnyx's words.
pub(super) fn paging(q: &[(String, String)]) -> Result<(i64, i64), ApiError> {
    rest_json::paging(q).map_err(|e| ApiError::param("10015", "Invalid value", "query", e))
}

/// The page `q` asks for of `items` (all of them, in order), under `key` in Twilio's envelope
/// for `path`.
pub(super) fn page_of<T>(
    q: &[(String, String)],
    key: &str,
    path: &str,
    items: Vec<T>,
    sid: impl Fn(&T) -> String,
    render: impl Fn(&T) -> Value,
) -> Result<Value, ApiError> {
    let (page, size) = paging(q)?;
    let offset = usize::try_from(page * size).unwrap_or(usize::MAX);
    let items: Vec<T> = (items.into_iter())
        .skip(offset)
        .take(size as usize + 1)
        .collect();
    Ok(rest_json::envelope(
        key,
        path,
        q,
        (page, size),
        items,
        sid,
        render,
    ))
}
