//! The packet path of a worker: RTP relayed from socket to socket in the buffer it arrived
//! in (rewritten in place, sealed or opened for SRTP), RTCP forwarded, and a browser leg's
//! STUN and DTLS handed to its transport.

use super::*;

impl Worker {
    /// The hot path: take one packet from an RTP socket, rewrite it in the buffer it arrived
    /// in, and send it from the bridged endpoint's socket.
    pub(super) fn relay_rtp(&mut self, index: usize) {
        let Some(slot) = self.slots.get(index).and_then(Option::as_ref) else {
            return;
        };
        let Some(pair) = &slot.pair else {
            return;
        };
        let Some(src) = self.packet.recv(pair.rtp.as_raw_fd()) else {
            return;
        };
        self.on_rtp(index, src);
    }

    /// What waits on this worker's browser socket, a bounded batch at a time: unlike a leg's
    /// own socket, it holds every browser's datagrams, so one per readiness event would
    /// cost an `epoll_wait` per datagram. Level-triggered epoll reports it again if more
    /// is queued, after the other sockets have had their turn.
    pub(super) fn relay_browsers(&mut self) {
        const BATCH: usize = 64;
        for _ in 0..BATCH {
            let socket = &self.browsers.sockets[self.me];
            let Some(src) = self.packet.recv(socket.as_raw_fd()) else {
                return;
            };
            self.relay_browser(src);
        }
    }

    /// The datagram in the buffer, from `src` on this worker's browser socket, for the leg
    /// whose checks proved its source (or whose ufrag a check names): handled here if the leg
    /// lives here, passed to its worker if it moved (a copy, for a leg bridged or mixed away
    /// from the socket its browser was told of), dropped if it is nobody's.
    fn relay_browser(&mut self, src: SocketAddr) {
        let Some(id) = self.routes.route(src, self.packet.packet_mut()) else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Some(&index) = self.index.get(&id) {
            return self.on_rtp(index, src);
        }
        let data: Box<[u8]> = self.packet.packet_mut().into();
        let home = self.browsers.home(id);
        let datagram = Command::Datagram {
            id,
            from: src,
            data,
            passed_on: home != self.me,
        };
        if home == self.me {
            // On its way here: held until it arrives.
            self.handle(datagram);
            return;
        }
        let queued = &self.browsers.passed_on[home];
        if queued.load(Ordering::Relaxed) >= Browsers::MAX_PASSED_ON {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Counted before it is sent: the other worker may take it at once.
        queued.fetch_add(1, Ordering::Relaxed);
        let mailbox = &self.mailboxes[home];
        match mailbox.commands.send(datagram) {
            Ok(()) => mailbox.wake.signal(),
            Err(_) => {
                queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// The datagram in the buffer, from `src`, for endpoint `index`.
    pub(super) fn on_rtp(&mut self, index: usize, src: SocketAddr) {
        let Some(slot) = self.slots.get(index).and_then(Option::as_ref) else {
            return;
        };
        // Opus between two Opus peers passes untouched when nothing listens in.
        let opus_to_opus = slot.opus.is_some()
            && slot.media.is_none()
            && slot
                .peer
                .and_then(|p| self.slots.get(p))
                .and_then(Option::as_ref)
                .is_some_and(|o| o.opus.is_some() && o.media.is_none());
        let slot = self.slots[index].as_mut().expect("checked");
        let packet = self.packet.packet_mut();
        if slot.webrtc.is_some() {
            // A browser sends everything to this one socket (RFC 7983, RFC 5761).
            match crate::webrtc::Demux::of(packet) {
                crate::webrtc::Demux::Media if crate::rtp::is_rtcp(packet) => {
                    return self.forward_rtcp(index, src);
                }
                crate::webrtc::Demux::Media if slot.srtp.is_some() => {}
                crate::webrtc::Demux::Stun | crate::webrtc::Demux::Dtls => {
                    return self.on_webrtc(index, src);
                }
                _ => return self.drop_packet(index, "not media before its keys"),
            }
        }
        if !crate::rtp::is_rtp(packet) || crate::rtp::is_rtcp(packet) {
            return self.drop_packet(index, "not RTP");
        }
        // The kernel relays this peer's stream, and the peer began another: the relay
        // takes the direction back to renumber it.
        if let Some(off) = &slot.offload
            && src == SocketAddr::V4(off.flow.from)
            && crate::rtp::ssrc(packet) != off.flow.ssrc_in
        {
            self.take_back(index);
            return self.on_rtp(index, src);
        }
        // An SRTP peer's packet is authenticated before anything trusts it, its source
        // included: a forged packet cannot latch or keep the call alive.
        if let Some(srtp) = &mut slot.srtp
            && !self
                .packet
                .rewrite(|buf, len| srtp.rx.unprotect_rtp(&mut buf[..len]).ok())
        {
            self.counters.srtp_rejected.fetch_add(1, Ordering::Relaxed);
            return self.drop_packet(index, "failed SRTP authentication");
        }
        let packet = self.packet.packet_mut();
        // Only a negotiated payload type may latch a source; once latched, the peer's other
        // RTP (comfort noise, say) still counts as alive, and the relay decides what to forward.
        let negotiated = slot.config.payload.knows(crate::rtp::payload_type(packet));
        if !slot.accept_media(src, negotiated, self.now, self.learn_window) {
            return self.drop_packet(index, "from a source the leg does not take");
        }
        if slot.stats.packets_in == 0 {
            tracing::debug!(endpoint = slot.id.0, %src, "first media in");
        }
        slot.stats.packets_in += 1;
        slot.stats.bytes_in += packet.len() as u64;
        let ssrc = crate::rtp::ssrc(packet);
        slot.sequence.update(ssrc, crate::rtp::sequence(packet));
        slot.last_rx = self.now;
        // An Opus peer's audio takes the engine's 8 kHz μ-law form on arrival.
        let opus_audio = slot.is_opus_audio(packet);
        let mut still_opus = false;
        if let Some(opus) = &mut slot.opus {
            if opus_audio && !opus_to_opus {
                if !self.packet.rewrite(|buf, len| opus.ingress(buf, len)) {
                    return self.drop_packet(index, "undecodable Opus");
                }
            } else {
                opus.clock_in(packet);
                still_opus = opus_audio;
            }
        }
        let packet = self.packet.packet_mut();
        let from = slot.config.payload;
        let consumed = match &mut slot.media {
            Some(m) => {
                m.on_inbound(packet, &from, self.now);
                true
            }
            None => false,
        };
        let out = slot
            .peer
            .and_then(|p| self.slots.get_mut(p))
            .and_then(Option::as_mut);
        let Some((out, dest)) = out.and_then(|o| o.rtp_dest.target.map(|d| (o, d))) else {
            if !consumed {
                self.drop_packet(index, "no one to relay to");
            }
            return;
        };
        // Audio we generate toward that peer takes the place of relayed audio; a peer that
        // holds the call takes none.
        if out.config.held || out.media.as_ref().is_some_and(|m| m.generating()) {
            return;
        }
        if relay::prepare(packet, &from, &out.config.payload, &mut out.outbound).is_err() {
            return self.drop_packet(index, "not relayable to the peer's payload");
        }
        if let Some(m) = &mut out.media {
            m.on_relayed_outbound(packet, &out.config.payload, self.now);
        }
        if !to_peer_codec(&mut self.packet, out, still_opus) || !protect(&mut self.packet, out) {
            return self.drop_packet(index, "not sealable for the peer");
        }
        let sent = (out.media_socket())
            .is_some_and(|socket| self.packet.send(socket.as_raw_fd(), dest.send_addr()));
        if !sent {
            return self.drop_packet(index, "not sent");
        }
        if out.stats.packets_out == 0 {
            tracing::debug!(endpoint = out.id.0, "first media relayed out");
        }
        out.stats.packets_out += 1;
        out.stats.bytes_out += self.packet.len() as u64;
        self.counters.relayed.fetch_add(1, Ordering::Relaxed);
        self.consider_offload(index, ssrc);
    }

    /// Counts a packet not relayed; the first of each endpoint is a debug line with `why`
    /// (what a call that goes quiet shows first).
    pub(super) fn drop_packet(&mut self, index: usize, why: &'static str) {
        if let Some(slot) = self.slots[index].as_mut() {
            if slot.stats.dropped == 0 {
                tracing::debug!(endpoint = slot.id.0, why, "first packet dropped");
            }
            slot.stats.dropped += 1;
        }
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// RTCP is forwarded unchanged from one endpoint's RTCP socket to the other's peer.
    pub(super) fn relay_rtcp(&mut self, index: usize) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let Some(pair) = &slot.pair else {
            return;
        };
        if let Some(src) = self.packet.recv(pair.rtcp.as_raw_fd()) {
            self.forward_rtcp(index, src);
        }
    }

    /// The RTCP packet in the buffer, from `src`, goes to the other endpoint's peer: its
    /// RTCP socket, or for a browser (`rtcp-mux`) its RTP socket.
    pub(super) fn forward_rtcp(&mut self, index: usize, src: SocketAddr) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let valid = crate::rtp::is_rtcp(self.packet.packet_mut())
            && match &mut slot.srtp {
                Some(s) => {
                    let opened = self
                        .packet
                        .rewrite(|buf, len| s.rx.unprotect_rtcp(&mut buf[..len]).ok());
                    if !opened {
                        self.counters.srtp_rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    opened
                }
                None => true,
            };
        let accepted = match slot.webrtc {
            // A browser's RTCP shares its media's address (rtcp-mux).
            Some(_) => slot.accept_media(src, valid, self.now, self.learn_window),
            None => slot.rtcp_dest.accept(src, valid, self.now, None),
        };
        if !accepted || !valid {
            return;
        }
        let out = slot
            .peer
            .and_then(|p| self.slots.get_mut(p))
            .and_then(Option::as_mut);
        let Some(out) = out else {
            return;
        };
        let (socket, target) = match (&out.webrtc, &out.pair) {
            (Some(_), _) => (out.media_socket(), out.rtp_dest.target),
            (None, pair) => (pair.as_ref().map(|p| &p.rtcp), out.rtcp_dest.target),
        };
        let Some(socket) = socket.map(AsRawFd::as_raw_fd) else {
            return;
        };
        let Some(dest) = target else {
            return;
        };
        let sealed = match &mut out.srtp {
            Some(s) => self
                .packet
                .rewrite(|buf, len| s.tx.protect_rtcp(buf, len).ok()),
            None => out.webrtc.is_none(),
        };
        if sealed {
            self.packet.send(socket, Some(&dest.raw));
        }
    }

    /// A browser's STUN or DTLS datagram, in the buffer, from `src`.
    pub(super) fn on_webrtc(&mut self, index: usize, src: SocketAddr) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let Some(transport) = slot.webrtc.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        let event = transport.handle(self.now, src, self.packet.packet_mut(), &mut out);
        for (to, datagram) in out {
            if let Some(socket) = slot.media_socket() {
                let _ = socket.send_to(&datagram, to);
            }
        }
        if let Some(event) = event {
            self.on_transport_event(index, event);
        }
    }

    pub(super) fn on_transport_event(&mut self, index: usize, event: crate::webrtc::Event) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        if tracing::enabled!(tracing::Level::DEBUG) {
            // (Never the keys themselves.)
            let told = match &event {
                crate::webrtc::Event::Selected(addr) => format!("selected {addr}"),
                crate::webrtc::Event::Secured(_) => "secured".to_owned(),
                crate::webrtc::Event::Lost(reason) => format!("lost: {reason}"),
            };
            tracing::debug!(endpoint = slot.id.0, event = told, "browser leg");
        }
        match event {
            crate::webrtc::Event::Selected(addr) => {
                // Media goes to the address the browser chose; it is taken from there, and
                // from any other its checks proved (`Slot::accept_media`).
                let strict = (SourcePolicy::Strict, None);
                let (window, now) = (self.learn_window, self.now);
                slot.rtp_dest
                    .configure(Some(addr), strict, window, now, None);
            }
            crate::webrtc::Event::Secured(keys) => slot.srtp = Srtp::rekey(None, Some(keys)),
            crate::webrtc::Event::Lost(reason) => {
                let id = slot.id;
                let _ = self.events.send(MediaEvent::TransportLost { id, reason });
            }
        }
    }
}
