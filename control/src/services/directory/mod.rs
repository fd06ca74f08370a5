//! The directory: what an account owns and who may act for it — its phone numbers, its
//! connections (Telnyx's credential and IP connections, applications), its API keys, its SIP
//! logins, the caller IDs it verified and the ones it may present. The accounts themselves and
//! their credentials are the store's ([`crate::infra::accounts`]), which the layers below the
//! services name too.

pub mod api_keys;
pub mod available_numbers;
pub mod caller_ids;
pub mod connections;
pub mod phone_numbers;
pub mod sip_domains;
pub mod sip_logins;
pub mod sip_trunks;
pub mod subaccounts;
pub mod verified_caller_ids;
