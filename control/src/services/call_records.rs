//! Stored calls (the CDRs) as the dialects' APIs read them: an account's own only (another
//! account's call is as unknown), after the rows queued before the read are written.

use crate::infra::store::sip_trace::SipRow;
use crate::infra::store::{CallFilter, CallRecord, EventRow, Store, StoreError, StoreReader};

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

    /// Call `sid`'s stored events in order, if it is `account`'s.
    pub async fn events(
        &self,
        account: &str,
        sid: &str,
    ) -> Result<Option<Vec<EventRow>>, StoreError> {
        if self.find(account, sid).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.store.call_events(sid).await?))
    }

    /// The SIP messages of call `sid`'s dialogs (its own and its legs'), in the order they
    /// went, if it is `account`'s.
    pub async fn sip_messages(
        &self,
        account: &str,
        sid: &str,
    ) -> Result<Option<Vec<SipRow>>, StoreError> {
        let Some(call) = self.find(account, sid).await? else {
            return Ok(None);
        };
        let mut dialogs: Vec<String> = std::iter::once(call.sip_call_id)
            .chain(call.legs.into_iter().filter_map(|l| l.sip_call_id))
            .filter(|id| !id.is_empty())
            .collect();
        dialogs.sort();
        dialogs.dedup();
        Ok(Some(self.store.sip_messages(&dialogs).await?))
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
