//! Stored calls (the CDRs) as the dialects' APIs read them: an account's own only (another
//! account's call is as unknown), after the rows queued before the read are written.

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
