//! One UDP socket for many browser legs: which leg a datagram on it is for. Every leg's
//! connectivity checks name its own ufrag (USERNAME "ours:theirs", RFC 8445 §7.2.2), so a
//! check authenticated with that leg's password tells which leg its source address belongs
//! to; the DTLS and SRTP that follow from that address are the same leg's (RFC 7983 puts
//! them all on one 5-tuple). This is how ICE-lite servers serve every browser on one port
//! (LiveKit's and Janus's single-port modes): an operator opens one UDP port per media
//! worker for browsers instead of the RTP range.
//!
//! Sans-IO: fed datagrams and their sources, it answers with a leg's key. Only an
//! authenticated check teaches an address, so a stranger who learned a ufrag cannot steer
//! a leg's datagrams, and each leg keeps at most [`MAX_ADDRESSES`] of them (a browser tries a
//! handful of candidate pairs).

use super::{Demux, WebRtcConfig, ice};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;

/// Addresses remembered per leg; the oldest gives way.
pub const MAX_ADDRESSES: usize = 8;

struct Leg {
    config: WebRtcConfig,
    addresses: VecDeque<SocketAddr>,
}

/// The legs served by one socket, by ufrag and by the addresses their checks proved.
pub struct Routes<K> {
    legs: HashMap<K, Leg>,
    by_ufrag: HashMap<String, K>,
    by_address: HashMap<SocketAddr, K>,
}

impl<K> Default for Routes<K> {
    fn default() -> Self {
        Self {
            legs: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_address: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> Routes<K> {
    /// A leg served here, or new credentials for it (an ICE restart): checks with the new
    /// ufrag reach it, and the addresses it proved stay its own until others replace them.
    pub fn register(&mut self, key: K, config: WebRtcConfig) {
        let ufrag = config.ice.local_ufrag.clone();
        match self.legs.get_mut(&key) {
            Some(leg) => {
                self.by_ufrag.remove(&leg.config.ice.local_ufrag);
                leg.config = config;
            }
            None => {
                let addresses = VecDeque::new();
                self.legs.insert(key, Leg { config, addresses });
            }
        }
        // Ufrags are 8 random ice-chars (47 bits): another leg holding this one would be a
        // leg that ended without being forgotten, which the newer one replaces.
        if let Some(old) = self.by_ufrag.insert(ufrag, key)
            && old != key
        {
            self.forget(old);
        }
    }

    /// The leg ended or left this socket: nothing is routed to it any more.
    pub fn forget(&mut self, key: K) {
        let Some(leg) = self.legs.remove(&key) else {
            return;
        };
        if self.by_ufrag.get(&leg.config.ice.local_ufrag) == Some(&key) {
            self.by_ufrag.remove(&leg.config.ice.local_ufrag);
        }
        for address in leg.addresses {
            if self.by_address.get(&address) == Some(&key) {
                self.by_address.remove(&address);
            }
        }
    }

    /// The leg a datagram from `src` is for. A connectivity check goes to the leg whose ufrag
    /// it names, and when it is authentic its source becomes that leg's (taken from any leg
    /// that had it: a browser's new peer connection may reuse a port); anything else goes to
    /// the leg its source belongs to, or nowhere.
    pub fn route(&mut self, src: SocketAddr, datagram: &[u8]) -> Option<K> {
        if Demux::of(datagram) == Demux::Stun
            && let Some(ufrag) = ice::addressed_ufrag(datagram)
        {
            let key = *self.by_ufrag.get(&ufrag)?;
            if self.by_address.get(&src) != Some(&key) {
                let leg = self.legs.get(&key)?;
                let crypto = leg.config.identity.crypto.crypto();
                ice::authentic_check(&leg.config.ice, datagram, crypto)?;
                self.learn(key, src);
            }
            return Some(key);
        }
        self.by_address.get(&src).copied()
    }

    fn learn(&mut self, key: K, src: SocketAddr) {
        if let Some(previous) = self.by_address.insert(src, key)
            && let Some(leg) = self.legs.get_mut(&previous)
        {
            leg.addresses.retain(|a| *a != src);
        }
        let Some(leg) = self.legs.get_mut(&key) else {
            return;
        };
        leg.addresses.push_back(src);
        if leg.addresses.len() > MAX_ADDRESSES
            && let Some(oldest) = leg.addresses.pop_front()
            && self.by_address.get(&oldest) == Some(&key)
        {
            self.by_address.remove(&oldest);
        }
    }

    /// Legs served.
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webrtc::{Credentials, Fingerprint, Identity};
    use std::sync::Arc;

    fn config(identity: &Arc<Identity>) -> WebRtcConfig {
        let hex = vec!["AB"; 32].join(":");
        WebRtcConfig {
            identity: identity.clone(),
            ice: Credentials::generate("brws"),
            remote_fingerprint: Fingerprint::parse(&format!("sha-256 {hex}")).unwrap(),
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 7], port))
    }

    /// Where a browser's connectivity check from `port` to the leg whose credentials are
    /// `ours` is routed.
    fn check(
        routes: &mut Routes<u32>,
        port: u16,
        ours: &Credentials,
        nominate: bool,
    ) -> Option<u32> {
        routes.route(addr(port), &ice::browser_check(ours, nominate))
    }

    /// A DTLS record's first bytes (a ClientHello's content type and version).
    const DTLS: &[u8] = &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    /// An SRTP packet's first bytes.
    const SRTP: &[u8] = &[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];

    #[test]
    fn each_legs_checks_teach_its_addresses_and_what_follows_from_them_is_its_own() {
        let identity = Identity::generate().unwrap();
        let (a, b) = (config(&identity), config(&identity));
        let mut routes = Routes::default();
        routes.register(1, a.clone());
        routes.register(2, b.clone());
        // Nothing from an address no check proved.
        assert_eq!(routes.route(addr(5000), DTLS), None);
        assert_eq!(routes.route(addr(5000), SRTP), None);
        assert_eq!(check(&mut routes, 5000, &a.ice, true), Some(1));
        assert_eq!(check(&mut routes, 6000, &b.ice, false), Some(2));
        assert_eq!(routes.route(addr(5000), DTLS), Some(1));
        assert_eq!(routes.route(addr(6000), SRTP), Some(2));
        assert_eq!(routes.route(addr(7000), SRTP), None);
        assert_eq!(routes.len(), 2);
        routes.forget(1);
        assert_eq!(routes.route(addr(5000), SRTP), None);
        assert_eq!(check(&mut routes, 5000, &a.ice, true), None);
        assert_eq!(routes.route(addr(6000), SRTP), Some(2));
        routes.forget(2);
        assert!(routes.is_empty());
        assert!(routes.by_address.is_empty() && routes.by_ufrag.is_empty());
    }

    #[test]
    fn a_check_that_names_a_ufrag_without_its_password_teaches_nothing() {
        let identity = Identity::generate().unwrap();
        let leg = config(&identity);
        let mut routes = Routes::default();
        routes.register(1, leg.clone());
        let mut forged = leg.ice.clone();
        forged.local_pwd = "not-the-password-of-the-leg".into();
        assert_eq!(check(&mut routes, 5000, &forged, true), None);
        assert_eq!(routes.route(addr(5000), SRTP), None);
        // A check naming nobody's ufrag is nobody's.
        let stranger = config(&identity);
        assert_eq!(check(&mut routes, 5001, &stranger.ice, true), None);
    }

    #[test]
    fn an_ice_restart_routes_the_new_ufrag_and_keeps_the_proved_addresses() {
        let identity = Identity::generate().unwrap();
        let first = config(&identity);
        let mut routes = Routes::default();
        routes.register(1, first.clone());
        assert_eq!(check(&mut routes, 5000, &first.ice, true), Some(1));
        let mut restarted = first.clone();
        restarted.ice = Credentials::generate("brw2");
        routes.register(1, restarted.clone());
        assert_eq!(routes.route(addr(5000), SRTP), Some(1));
        assert_eq!(check(&mut routes, 5000, &first.ice, true), None);
        assert_eq!(check(&mut routes, 5002, &restarted.ice, true), Some(1));
        assert_eq!(routes.route(addr(5002), DTLS), Some(1));
    }

    #[test]
    fn an_address_another_leg_proves_becomes_that_legs() {
        let identity = Identity::generate().unwrap();
        let (a, b) = (config(&identity), config(&identity));
        let mut routes = Routes::default();
        routes.register(1, a.clone());
        routes.register(2, b.clone());
        assert_eq!(check(&mut routes, 5000, &a.ice, true), Some(1));
        assert_eq!(check(&mut routes, 5000, &b.ice, true), Some(2));
        assert_eq!(routes.route(addr(5000), SRTP), Some(2));
        routes.forget(1);
        assert_eq!(routes.route(addr(5000), SRTP), Some(2));
    }

    #[test]
    fn a_leg_keeps_its_last_eight_addresses() {
        let identity = Identity::generate().unwrap();
        let leg = config(&identity);
        let mut routes = Routes::default();
        routes.register(1, leg.clone());
        let check = ice::browser_check(&leg.ice, false);
        for port in 5000..5020 {
            assert_eq!(routes.route(addr(port), &check), Some(1));
        }
        assert_eq!(routes.by_address.len(), MAX_ADDRESSES);
        assert_eq!(routes.route(addr(5011), SRTP), None);
        assert_eq!(routes.route(addr(5012), SRTP), Some(1));
        assert_eq!(routes.route(addr(5019), SRTP), Some(1));
    }
}
