//! Rooms' homes: which node holds each open room, so that several nodes hold a room name as
//! one room (see [`crate::call::visit`]). The first node to claim a name is its home until
//! the room ends (the writer drops the claim with the conference's end), or until that node
//! is taken for dead, when the next claimant takes the name over with a new conference.

use super::{Store, StoreError};
use sqlx::Row;

/// Where a room is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHome {
    /// The node holding it (perhaps this one).
    pub node: String,
    /// Its conference's SID.
    pub sid: String,
    /// Where that node's SIP is reached (`host:port`; empty if it never said).
    pub sip: String,
}

impl Store {
    /// The home of room `name`: this node with `sid` if the room has none, or has one on a
    /// node taken for dead at `now_ms`; otherwise the home it has.
    pub async fn claim_room(
        &self,
        name: &str,
        sid: &str,
        now_ms: i64,
    ) -> Result<RoomHome, StoreError> {
        sqlx::query(
            "INSERT INTO room_homes (name, node, sid, claimed_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET node = excluded.node, sid = excluded.sid, \
             claimed_at = excluded.claimed_at \
             WHERE room_homes.node <> excluded.node \
             AND room_homes.node NOT IN (SELECT id FROM nodes WHERE seen_at >= $5)",
        )
        .bind(name.to_owned())
        .bind(self.node.to_string())
        .bind(sid.to_owned())
        .bind(now_ms)
        .bind(now_ms.saturating_sub(self.dead_after_ms))
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(
            "SELECT h.node, h.sid, COALESCE(n.sip, '') AS sip FROM room_homes h \
             LEFT JOIN nodes n ON n.id = h.node WHERE h.name = $1",
        )
        .bind(name.to_owned())
        .fetch_one(&self.pool)
        .await?;
        Ok(RoomHome {
            node: row.try_get("node")?,
            sid: row.try_get("sid")?,
            sip: row.try_get("sip")?,
        })
    }

    /// The node holding the open conference `sid`, when it is another live node: where that
    /// node's API is reached (requests about the conference are forwarded there).
    pub async fn room_elsewhere(
        &self,
        sid: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT n.url FROM room_homes h JOIN nodes n ON n.id = h.node \
             WHERE h.sid = $1 AND h.node <> $2 AND n.seen_at >= $3 AND n.url <> ''",
        )
        .bind(sid.to_owned())
        .bind(self.node.to_string())
        .bind(now_ms.saturating_sub(self.dead_after_ms))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("url")).transpose()?)
    }

    /// Where this node's SIP is reached by the others (`host:port`).
    pub async fn node_sip(&self, sip: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE nodes SET sip = $1 WHERE id = $2")
            .bind(sip.to_owned())
            .bind(self.node.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Where node `node` is reached over SIP, if it is alive at `now_ms` and said.
    pub async fn live_node_sip(
        &self,
        node: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT sip FROM nodes WHERE id = $1 AND seen_at >= $2 AND sip <> ''")
                .bind(node.to_owned())
                .bind(now_ms.saturating_sub(self.dead_after_ms))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get("sip")).transpose()?)
    }

    /// At start-up: the rooms this node's last run held are gone with it.
    pub(super) async fn drop_own_rooms(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM room_homes WHERE node = $1")
            .bind(self.node.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
