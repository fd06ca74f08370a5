//! Plain relays handed to the kernel ([`crate::kernel`]) and taken back. A direction (the
//! packets arriving at one endpoint, sent on from its bridged peer's socket) goes to the
//! kernel once it has relayed a settled stream in userspace and nothing about either end needs
//! the packets; it comes back, with the counters and sequence state the kernel kept, before
//! any command touches either end, and when its peer starts another stream.

use super::*;
use crate::kernel::{Flow, FlowCounters};
use std::net::SocketAddr;

/// Packets of one stream a direction relays in userspace before it is handed over (again):
/// the stream has settled after a start or a change of source.
pub(in crate::engine) const SETTLE_PACKETS: u64 = 25;
/// How long (in packets) a direction the kernel cannot take waits before it is looked at
/// again: the check stays off the packet path.
const RECHECK_PACKETS: u64 = 250;
/// Hand-overs of one endpoint: a peer that keeps changing streams stays in userspace.
const MAX_HANDOVERS: u8 = 16;

/// A direction the kernel relays.
#[derive(Clone, Copy)]
pub(in crate::engine) struct Offloaded {
    pub(in crate::engine) flow: Flow,
    /// The flow's counters as last added to the endpoints'.
    seen: FlowCounters,
}

impl Worker {
    /// Endpoint `index` just relayed a packet of `ssrc` in userspace: its direction goes to
    /// the kernel if the kernel can do all that the relay does for it.
    pub(super) fn consider_offload(&mut self, index: usize, ssrc: u32) {
        // On the packet path: a few comparisons, nothing more, until a hand-over is due.
        let Some(slot) = self.slots[index].as_ref() else {
            return;
        };
        if self.kernel.is_none()
            || slot.offload.is_some()
            || slot.stats.packets_in < slot.offload_after
            || slot.handovers >= MAX_HANDOVERS
        {
            return;
        }
        let flow = self.flow_of(index, ssrc);
        let installed = match (&flow, &self.kernel) {
            (Some(flow), Some(kernel)) => kernel
                .install(flow)
                .map_err(|e| tracing::debug!(error = %e, "the kernel relay did not take a flow"))
                .is_ok(),
            _ => false,
        };
        let slot = self.slots[index].as_mut().expect("checked");
        match flow {
            Some(flow) if installed => {
                slot.offload = Some(Offloaded {
                    flow,
                    seen: FlowCounters::default(),
                });
                slot.handovers += 1;
            }
            _ => slot.offload_after = slot.stats.packets_in + RECHECK_PACKETS,
        }
    }

    /// The kernel's rules for the packets of `ssrc` arriving at endpoint `index`, if the
    /// kernel can relay them exactly as [`crate::relay::prepare`] would.
    fn flow_of(&self, index: usize, ssrc: u32) -> Option<Flow> {
        let x = self.slots.get(index)?.as_ref()?;
        let y = self.slots.get(x.peer?)?.as_ref()?;
        let plain = |s: &Slot| {
            s.media.is_none()
                && s.conference.is_none()
                && s.opus.is_none()
                && s.srtp.is_none()
                && s.webrtc.is_none()
                && s.browser.is_none()
        };
        if !plain(x) || !plain(y) || y.config.held {
            return None;
        }
        // Both sources latched for good: the sockets are connected to them.
        let (xt, yt) = (x.rtp_dest.target?, y.rtp_dest.target?);
        if !xt.connected || !yt.connected {
            return None;
        }
        let (pt_in, law_in) = x.config.payload.audio?;
        let (pt_out, law_out) = y.config.payload.audio?;
        if law_in != law_out {
            return None;
        }
        let (ssrc_out, seq_offset, ts_offset) = y.outbound.steady(ssrc)?;
        let v4 = |a: SocketAddr| match a {
            SocketAddr::V4(a) => Some(a),
            SocketAddr::V6(_) => None,
        };
        let out_to = v4(y.rtp_dest.latch.destination()?)?;
        Some(Flow {
            to: v4(x.pair.as_ref()?.rtp.local_addr().ok()?)?,
            from: v4(x.rtp_dest.latch.destination()?)?,
            out_from: v4(y.pair.as_ref()?.rtp.local_addr().ok()?)?,
            out_to,
            audio: (pt_in, pt_out),
            event: x
                .config
                .payload
                .telephone_event
                .zip(y.config.payload.telephone_event),
            ssrc_in: ssrc,
            ssrc_out,
            seq_offset,
            ts_offset,
        })
    }

    /// Takes endpoint `index`'s direction back from the kernel, with what it did.
    pub(super) fn take_back(&mut self, index: usize) {
        let Some(kernel) = self.kernel.clone() else {
            return;
        };
        let Some(off) = self.slots[index].as_mut().and_then(|s| s.offload.take()) else {
            return;
        };
        let last = match kernel.remove(off.flow.to) {
            Ok(Some(c)) => c,
            Ok(None) => off.seen,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take a flow back from the kernel relay");
                off.seen
            }
        };
        self.account(index, &off, last, true);
        if let Some(slot) = self.slots[index].as_mut() {
            slot.offload_after = slot.stats.packets_in + SETTLE_PACKETS;
        }
    }

    /// Both directions of endpoint `index`'s bridge come back from the kernel.
    pub(super) fn take_back_bridge(&mut self, index: usize) {
        let peer = self.slots[index].as_ref().and_then(|s| s.peer);
        self.take_back(index);
        if let Some(p) = peer {
            self.take_back(p);
        }
    }

    /// Adds what the kernel relayed since the last look to the endpoints' counters, and
    /// when it last heard each peer to their timeouts.
    pub(super) fn sync_offloaded(&mut self) {
        let Some(kernel) = self.kernel.clone() else {
            return;
        };
        for index in 0..self.slots.len() {
            let Some(off) = self.slots[index].as_ref().and_then(|s| s.offload) else {
                continue;
            };
            if let Ok(Some(now)) = kernel.counters(off.flow.to) {
                self.account(index, &off, now, false);
                if let Some(o) = self.slots[index].as_mut().and_then(|s| s.offload.as_mut()) {
                    o.seen = now;
                }
            }
        }
    }

    /// The counters `now` of a flow, less those already counted, added to its endpoints';
    /// `resume` carries its last sequence number and timestamp into the userspace relay.
    fn account(&mut self, index: usize, off: &Offloaded, now: FlowCounters, resume: bool) {
        let packets = now.packets.saturating_sub(off.seen.packets);
        let bytes = now.bytes.saturating_sub(off.seen.bytes);
        let at_ns = crate::kernel::monotonic_ns().saturating_sub(now.last_ns);
        let heard = self.now.checked_sub(Duration::from_nanos(at_ns));
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        if packets > 0 {
            slot.stats.packets_in += packets;
            slot.stats.bytes_in += bytes;
            slot.sequence
                .update_many(off.flow.ssrc_in, now.last_in_seq, packets);
            if let Some(heard) = heard
                && heard > slot.last_rx
            {
                slot.last_rx = heard;
            }
            self.counters.relayed.fetch_add(packets, Ordering::Relaxed);
            self.counters
                .relayed_in_kernel
                .fetch_add(packets, Ordering::Relaxed);
        }
        let Some(out) = slot.peer.and_then(|p| self.slots[p].as_mut()) else {
            return;
        };
        out.stats.packets_out += packets;
        out.stats.bytes_out += bytes;
        if resume && now.packets > 0 {
            out.outbound.resume(now.last_out_seq, now.last_out_ts);
        }
    }
}
