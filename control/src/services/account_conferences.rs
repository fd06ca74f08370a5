//! An account's conferences as every dialect lists them: the core names a room
//! `{account}:{room}`, so one account's rooms are one namespace whichever dialect (Twilio's
//! `<Conference>` and Participants, Telnyx's `/v2/conferences`) opened them — a Telnyx call and
//! a Twilio call naming the same room meet. Those in progress are the core's; all of them,
//! over ones too, are the store's.

use crate::call::{CallControl, CallError, ConferenceSnapshot};
use crate::infra::store::{ConferenceRow, Store, StoreError, StoreReader};

/// The core's name of `account`'s room `name`.
pub fn room(account: &str, name: &str) -> String {
    format!("{account}:{name}")
}

/// The room's name as its application gave it.
pub fn room_name(room: &str) -> &str {
    room.split_once(':').map_or(room, |(_, name)| name)
}

/// `account`'s conferences in progress.
pub async fn in_progress(
    control: &CallControl,
    account: &str,
) -> Result<Vec<ConferenceSnapshot>, CallError> {
    let prefix = room(account, "");
    let all = control.conferences().await?;
    Ok(all
        .into_iter()
        .filter(|c| c.name.starts_with(&prefix))
        .collect())
}

/// `account`'s conferences as stored (in progress and over), newest first, once what the
/// core wrote so far is in the store.
pub async fn stored(
    store: &Store,
    writer: &StoreReader,
    account: &str,
) -> Result<Vec<ConferenceRow>, StoreError> {
    writer.sync().await;
    store.conferences(&room(account, "")).await
}

/// `account`'s conference `sid` as stored, once what the core wrote so far is in the store;
/// `None` for another account's or none.
pub async fn stored_one(
    store: &Store,
    writer: &StoreReader,
    account: &str,
    sid: &str,
) -> Result<Option<ConferenceRow>, StoreError> {
    writer.sync().await;
    store.conference(&room(account, ""), sid).await
}
