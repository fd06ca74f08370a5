//! Stored calls (the CDRs) as the APIs read them: an account's own only (another account's
//! call is as unknown), or every call for the operator, after the rows queued before the read
//! are written.

use crate::infra::store::sip_trace::{Dialog, SipRow};
use crate::infra::store::{
    CallFilter, CallRecord, EventRow, RecordingRow, Store, StoreError, StoreReader,
};

pub struct CallRecords {
    store: Store,
    writer: StoreReader,
}

impl CallRecords {
    pub fn new(store: Store, writer: StoreReader) -> Self {
        Self { store, writer }
    }

    /// Call `sid` (`CA…`) if it is `account`'s.
    pub async fn find(&self, account: &str, sid: &str) -> Result<Option<CallRecord>, StoreError> {
        self.writer.sync().await;
        Ok((self.store.get_call(sid).await?).filter(|c| c.account_sid.as_deref() == Some(account)))
    }

    /// Call `sid` if `scope` sees it: an account sees its own calls, the operator (`None`)
    /// every call.
    pub async fn seen(
        &self,
        scope: Option<&str>,
        sid: &str,
    ) -> Result<Option<CallRecord>, StoreError> {
        match scope {
            Some(account) => self.find(account, sid).await,
            None => {
                self.writer.sync().await;
                self.store.get_call(sid).await
            }
        }
    }

    /// The latest calls `scope` sees, newest first.
    pub async fn recent(
        &self,
        scope: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CallRecord>, StoreError> {
        match scope {
            Some(account) => self.list(account, &CallFilter::default(), 0, limit).await,
            None => {
                self.writer.sync().await;
                self.store.list_calls(limit).await
            }
        }
    }

    /// Call `sid`'s stored events in order, if `scope` sees it.
    pub async fn events(
        &self,
        scope: Option<&str>,
        sid: &str,
    ) -> Result<Option<Vec<EventRow>>, StoreError> {
        if self.seen(scope, sid).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.store.call_events(sid).await?))
    }

    /// Call `sid`'s recordings, oldest first (the call seen by `scope` first).
    pub async fn recordings(&self, sid: &str) -> Result<Vec<RecordingRow>, StoreError> {
        self.store.recordings_of(sid).await
    }

    /// The SIP messages of call `sid`'s dialogs (its own and its legs'), in the order they
    /// went, if `scope` sees it.
    pub async fn sip_messages(
        &self,
        scope: Option<&str>,
        sid: &str,
    ) -> Result<Option<Vec<SipRow>>, StoreError> {
        let Some(call) = self.seen(scope, sid).await? else {
            return Ok(None);
        };
        Ok(Some(self.store.sip_messages(&dialogs(&call, scope)).await?))
    }

    /// `account`'s calls that pass `filter`, newest first: `limit` of them from `offset`.
    pub async fn list(
        &self,
        account: &str,
        filter: &CallFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.writer.sync().await;
        self.store
            .account_calls(account, filter, offset, limit)
            .await
    }
}

/// The dialogs of a call's ladder: its own and its legs'. A call recorded before dialogs
/// kept their tags is found by its Call-ID alone, for the operator only: a tenant could have
/// chosen that Call-ID for a call of its own.
fn dialogs(call: &CallRecord, scope: Option<&str>) -> Vec<Dialog> {
    let own = std::iter::once((Some(&call.sip_call_id), &call.sip_tags));
    let legs = (call.legs.iter()).map(|l| (l.sip_call_id.as_ref(), &l.sip_tags));
    let mut dialogs: Vec<Dialog> = (own.chain(legs))
        .filter_map(|(id, tags)| {
            let id = id.filter(|id| !id.is_empty())?.clone();
            match tags.local {
                Some(_) => Some(Dialog::new(id, tags)),
                None if scope.is_none() => Some(Dialog {
                    call_id: id,
                    tags: None,
                }),
                None => None,
            }
        })
        .collect();
    dialogs.sort();
    dialogs.dedup();
    dialogs
}
