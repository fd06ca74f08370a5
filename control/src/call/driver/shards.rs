//! The front of a node's call-core shards: each shard's [`Driver`](super::Driver) runs on a
//! thread of its own with its own core, and the task here hands it its share of what the
//! media engine reports: an event goes to the shard that reserved its endpoint, or whose
//! number its recording or mixer carries ([`crate::call::shard_of_media_number`]). A SIP
//! message is put in its shard's queue by the transport task that parsed it
//! ([`switchboard_sip::transport::bind_sharded`]); the applications' requests are routed by
//! [`CallControl`](super::CallControl) itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use switchboard_media::{EndpointId, MediaEvent};
use tokio::sync::mpsc;
use tracing::warn;

/// Which shard reserved each endpoint of the shared media engine that is still in use: its
/// driver enters it when it reserves the pair (before any event about it can come), the
/// front takes it out at the endpoint's last event.
#[derive(Clone, Default)]
pub struct EndpointShards(Arc<Mutex<HashMap<EndpointId, u16>>>);

impl EndpointShards {
    pub(crate) fn insert(&self, id: EndpointId, shard: u16) {
        self.lock().insert(id, shard);
    }

    fn shard_of(&self, event: &MediaEvent, count: u16) -> usize {
        let shard = match event {
            MediaEvent::Released { id, .. } => self.lock().remove(id),
            MediaEvent::RecordingSaved(saved) => {
                Some(crate::call::shard_of_media_number(saved.recording, count))
            }
            MediaEvent::AnnouncementEnded { conference, .. } => {
                Some(crate::call::shard_of_media_number(conference.0, count))
            }
            other => (other.endpoint()).and_then(|id| self.lock().get(&id).copied()),
        };
        // An endpoint no shard reserved (a browser gateway's own) is news to no core: the
        // first hears it, as a lone core would, and passes it over.
        usize::from(shard.unwrap_or(0))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, u16>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hands each event of the media engine to the shard it is about, until the engine stops.
pub async fn route_media(
    mut events: mpsc::UnboundedReceiver<MediaEvent>,
    shards: Vec<mpsc::UnboundedSender<MediaEvent>>,
    endpoints: EndpointShards,
) {
    let count = shards.len() as u16;
    while let Some(event) = events.recv().await {
        let shard = endpoints.shard_of(&event, count);
        if shards[shard].send(event).is_err() {
            warn!(shard, "a call-core shard stopped before the media engine");
        }
    }
}
