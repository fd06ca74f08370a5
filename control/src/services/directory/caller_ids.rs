//! The caller-ID policy the call core asks ([`crate::call::caller_id::CallerIdPolicy`]):
//! a number is presented only if the account owns it (one of its phone numbers), verified it
//! ([`crate::services::directory::verified_caller_ids`]), the operator allows it for the account, or it
//! is the number of the call being forwarded.

use crate::call::caller_id::{CallerIdPolicy, as_number};
use crate::infra::accounts::Directory;
use crate::services::directory::phone_numbers::PhoneNumbers;
use crate::services::directory::verified_caller_ids::VerifiedCallerIds;
use std::sync::Arc;

/// The policy, over the account directory, the numbers table and the verified caller IDs.
pub struct CallerIds {
    directory: Arc<Directory>,
    numbers: Arc<PhoneNumbers>,
    verified: Arc<VerifiedCallerIds>,
}

impl std::fmt::Debug for CallerIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallerIds")
    }
}

impl CallerIds {
    pub fn new(
        directory: Arc<Directory>,
        numbers: Arc<PhoneNumbers>,
        verified: Arc<VerifiedCallerIds>,
    ) -> Self {
        Self {
            directory,
            numbers,
            verified,
        }
    }
}

impl CallerIdPolicy for CallerIds {
    fn allows(&self, account: &str, from: &str, forwarded: &[&str]) -> bool {
        let Some(number) = as_number(from) else {
            return true;
        };
        if forwarded
            .iter()
            .filter_map(|f| as_number(f))
            .any(|f| f == number)
        {
            return true;
        }
        if self
            .numbers
            .by_number(&number)
            .is_some_and(|r| r.number.account_sid == account)
        {
            return true;
        }
        if self.verified.is_verified(account, &number) {
            return true;
        }
        self.directory
            .account(account)
            .is_some_and(|a| a.caller_ids.iter().any(|r| r.contains(&number)))
    }
}
