//! Which source an endpoint accepts media from: the defence against RTP hijacking ("RTP
//! bleed"). Sans-IO: fed with the source and validity of each packet and `now`.
//!
//! A relay that latches onto whatever sends to a port first gives a call's audio to anyone who
//! sprays packets at its port range. Here the peer's SDP address is the authority: packets from
//! it are accepted and latch at once. A peer behind NAT sends from another address than its SDP
//! names, so for a short window after the address is learnt from SDP (or after the call is
//! answered, when it starts to send) another source may latch, limited by the policy — and only
//! with a packet that is valid media for this endpoint. Once latched, the endpoint accepts that
//! source alone until the peer's SDP names a new address — or until valid media comes from a
//! source the signalling vouches for more: the SDP address itself, or the IP the peer's SIP
//! came from. So a stranger who sprays the port range and wins the learning window holds the
//! call only until the real peer's first packet, and the relay never connects its socket to
//! such a learnt source (the kernel would then hide the real peer's packets from it).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How far a source may differ from the peer's SDP address and still be learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourcePolicy {
    /// Only the SDP address, exactly (carriers that send from where they say).
    Strict,
    /// The SDP address, or during the learning window another port of the same IP (a NAT
    /// that rewrites ports) or of the IP the peer's signalling came from.
    #[default]
    LearnIp,
    /// During the learning window, any source (phones behind NAT whose SDP holds a private
    /// address). Whoever sends valid media first in the window latches, but gives way to the
    /// SDP address or the signalling source as soon as either sends.
    LearnAny,
}

impl SourcePolicy {
    /// The configuration name: "strict", "learn-ip" or "learn-any".
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "strict" => Some(Self::Strict),
            "learn-ip" => Some(Self::LearnIp),
            "learn-any" => Some(Self::LearnAny),
            _ => None,
        }
    }
}

/// The source-acceptance state of one socket (RTP or RTCP) of an endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Latch {
    policy: SourcePolicy,
    window: Duration,
    /// The address the peer's SDP gave.
    expected: Option<SocketAddr>,
    /// The IP the peer's signalling came from (its NAT's public address, for a phone).
    signal: Option<IpAddr>,
    /// The source accepted from now on.
    latched: Option<SocketAddr>,
    /// Until when a source other than `expected` may latch.
    learn_until: Option<Instant>,
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the latched source.
    Accept,
    /// The first packet from a source that now becomes the latched one.
    Latched(SocketAddr),
    Reject,
}

impl Latch {
    pub fn new(policy: SourcePolicy, window: Duration) -> Self {
        Self {
            policy,
            window,
            expected: None,
            signal: None,
            latched: None,
            learn_until: None,
        }
    }

    /// The peer's SDP named `expected`. A new address forgets the latched source and opens a
    /// learning window; the same address again (a re-INVITE) keeps it.
    pub fn set_expected(&mut self, expected: Option<SocketAddr>, now: Instant) {
        if expected == self.expected {
            return;
        }
        self.expected = expected;
        self.latched = None;
        self.learn_until = now.checked_add(self.window);
    }

    /// The peer is now expected to send (the call was answered): if nothing latched yet, the
    /// learning window opens again, since peers often send nothing before the answer.
    pub fn reopen(&mut self, now: Instant) {
        if self.latched.is_none() {
            self.learn_until = now.checked_add(self.window);
        }
    }

    /// The policy, its window, and the IP the peer's signalling comes from.
    pub fn set_policy(&mut self, policy: SourcePolicy, window: Duration, signal: Option<IpAddr>) {
        self.policy = policy;
        self.window = window;
        self.signal = signal;
    }

    /// How far the signalling vouches for `src`: its SDP address most, then the IP its SIP
    /// came from, then nothing.
    fn trust(&self, src: SocketAddr) -> u8 {
        if Some(src) == self.expected {
            2
        } else if self.signal == Some(src.ip()) {
            1
        } else {
            0
        }
    }

    /// The latched source can no longer be displaced (nothing the signalling vouches for more
    /// could send): a socket may then be connected to it.
    pub fn is_settled(&self) -> bool {
        let best = if self.expected.is_some() {
            2
        } else if self.signal.is_some() {
            1
        } else {
            0
        };
        self.latched.is_some_and(|l| self.trust(l) == best)
    }

    /// Where packets for the peer go: the latched source, else the SDP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.expected)
    }

    pub fn is_latched(&self) -> bool {
        self.latched.is_some()
    }

    /// Judges a packet from `src`; `valid` says whether it is well-formed media this endpoint
    /// negotiated (junk never latches).
    pub fn check(&mut self, src: SocketAddr, valid: bool, now: Instant) -> Verdict {
        if let Some(latched) = self.latched {
            if latched == src {
                return Verdict::Accept;
            }
            // Only towards what the signalling vouches for more, and only with real media.
            if valid && self.trust(src) > self.trust(latched) {
                self.latched = Some(src);
                return Verdict::Latched(src);
            }
            return Verdict::Reject;
        }
        if !valid {
            return Verdict::Reject;
        }
        let learning = self.learn_until.is_some_and(|t| now < t);
        let allowed = Some(src) == self.expected
            || (learning
                && match self.policy {
                    SourcePolicy::Strict => false,
                    SourcePolicy::LearnIp => {
                        self.expected.is_some_and(|e| e.ip() == src.ip())
                            || self.signal == Some(src.ip())
                    }
                    SourcePolicy::LearnAny => true,
                });
        if allowed {
            self.latched = Some(src);
            Verdict::Latched(src)
        } else {
            Verdict::Reject
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(3);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn latch(policy: SourcePolicy, now: Instant) -> Latch {
        let mut l = Latch::new(policy, WINDOW);
        l.set_expected(Some(addr("203.0.113.5:4000")), now);
        l
    }

    #[test]
    fn the_sdp_address_latches_and_then_nobody_else_is_accepted() {
        let now = Instant::now();
        for policy in [
            SourcePolicy::Strict,
            SourcePolicy::LearnIp,
            SourcePolicy::LearnAny,
        ] {
            let mut l = latch(policy, now);
            let peer = addr("203.0.113.5:4000");
            assert_eq!(l.check(peer, true, now), Verdict::Latched(peer));
            assert_eq!(l.check(peer, true, now), Verdict::Accept);
            for other in ["198.51.100.9:4000", "203.0.113.5:4002"] {
                assert_eq!(
                    l.check(addr(other), true, now),
                    Verdict::Reject,
                    "{policy:?}"
                );
            }
            assert_eq!(l.destination(), Some(peer));
        }
    }

    #[test]
    fn strict_accepts_only_the_sdp_address() {
        let now = Instant::now();
        let mut l = latch(SourcePolicy::Strict, now);
        assert_eq!(
            l.check(addr("203.0.113.5:4002"), true, now),
            Verdict::Reject
        );
        assert_eq!(l.destination(), Some(addr("203.0.113.5:4000")));
    }

    #[test]
    fn learn_ip_takes_another_port_of_the_same_ip_only_within_the_window() {
        let now = Instant::now();
        let mut l = latch(SourcePolicy::LearnIp, now);
        assert_eq!(
            l.check(addr("198.51.100.9:4000"), true, now),
            Verdict::Reject
        );
        let nat = addr("203.0.113.5:31000");
        assert_eq!(l.check(nat, true, now), Verdict::Latched(nat));
        assert_eq!(l.destination(), Some(nat));

        let mut late = latch(SourcePolicy::LearnIp, now);
        assert_eq!(late.check(nat, true, now + WINDOW), Verdict::Reject);
    }

    #[test]
    fn learn_any_takes_any_source_within_the_window_and_none_after() {
        let now = Instant::now();
        let stranger = addr("198.51.100.9:5000");
        let mut l = latch(SourcePolicy::LearnAny, now);
        assert_eq!(l.check(stranger, true, now), Verdict::Latched(stranger));
        let mut late = latch(SourcePolicy::LearnAny, now);
        assert_eq!(late.check(stranger, true, now + WINDOW), Verdict::Reject);
        // The answer reopens the window while nothing latched.
        late.reopen(now + WINDOW);
        assert_eq!(
            late.check(stranger, true, now + WINDOW),
            Verdict::Latched(stranger)
        );
    }

    #[test]
    fn a_stranger_who_latched_first_gives_way_to_the_sdp_address_and_never_takes_it_back() {
        let now = Instant::now();
        let (peer, stranger) = (addr("203.0.113.5:4000"), addr("198.51.100.9:5000"));
        let mut l = latch(SourcePolicy::LearnAny, now);
        assert_eq!(l.check(stranger, true, now), Verdict::Latched(stranger));
        assert!(!l.is_settled(), "a learnt stranger is never connected to");
        // Junk from the SDP address displaces nothing; its media does, even after the window.
        let late = now + WINDOW * 5;
        assert_eq!(l.check(peer, false, late), Verdict::Reject);
        assert_eq!(l.check(peer, true, late), Verdict::Latched(peer));
        assert!(l.is_settled());
        assert_eq!(l.destination(), Some(peer));
        assert_eq!(l.check(stranger, true, late), Verdict::Reject);
        assert_eq!(l.check(peer, true, late), Verdict::Accept);
    }

    #[test]
    fn the_signalling_source_displaces_a_stranger_but_not_the_sdp_address() {
        let now = Instant::now();
        let nat: IpAddr = "192.0.2.44".parse().unwrap();
        let (stranger, phone) = (addr("198.51.100.9:5000"), addr("192.0.2.44:35000"));
        // A phone behind NAT: its SDP names a private address, its SIP came from the NAT.
        let mut l = Latch::new(SourcePolicy::LearnAny, WINDOW);
        l.set_policy(SourcePolicy::LearnAny, WINDOW, Some(nat));
        l.set_expected(Some(addr("10.0.0.7:4000")), now);
        assert_eq!(l.check(stranger, true, now), Verdict::Latched(stranger));
        assert_eq!(l.check(phone, true, now), Verdict::Latched(phone));
        assert_eq!(l.check(stranger, true, now), Verdict::Reject);
        assert_eq!(
            l.check(addr("192.0.2.44:35002"), true, now),
            Verdict::Reject,
            "another port of the same NAT is no more trusted than the latched one"
        );
        assert!(!l.is_settled(), "the SDP address could still send");
        let sdp = addr("10.0.0.7:4000");
        assert_eq!(l.check(sdp, true, now), Verdict::Latched(sdp));
        assert_eq!(l.check(phone, true, now), Verdict::Reject);
        assert!(l.is_settled());

        // Without an SDP address the signalling source is the best there is.
        let mut l = Latch::new(SourcePolicy::LearnAny, WINDOW);
        l.set_policy(SourcePolicy::LearnAny, WINDOW, Some(nat));
        l.reopen(now);
        assert_eq!(l.check(phone, true, now), Verdict::Latched(phone));
        assert!(l.is_settled());
    }

    #[test]
    fn learn_ip_also_learns_the_signalling_sources_ip() {
        let now = Instant::now();
        let mut l = Latch::new(SourcePolicy::LearnIp, WINDOW);
        l.set_policy(
            SourcePolicy::LearnIp,
            WINDOW,
            Some("192.0.2.44".parse().unwrap()),
        );
        l.set_expected(Some(addr("10.0.0.7:4000")), now);
        assert_eq!(
            l.check(addr("198.51.100.9:5000"), true, now),
            Verdict::Reject
        );
        let phone = addr("192.0.2.44:35000");
        assert_eq!(l.check(phone, true, now), Verdict::Latched(phone));
    }

    #[test]
    fn invalid_packets_never_latch() {
        let now = Instant::now();
        let mut l = latch(SourcePolicy::LearnAny, now);
        let peer = addr("203.0.113.5:4000");
        assert_eq!(l.check(peer, false, now), Verdict::Reject);
        assert_eq!(l.check(addr("1.2.3.4:5"), false, now), Verdict::Reject);
        assert!(!l.is_latched());
        assert_eq!(l.check(peer, true, now), Verdict::Latched(peer));
    }

    #[test]
    fn a_reinvite_with_the_same_address_keeps_the_latch_and_a_new_address_relearns() {
        let now = Instant::now();
        let mut l = latch(SourcePolicy::LearnIp, now);
        let nat = addr("203.0.113.5:31000");
        l.check(nat, true, now);
        l.set_expected(Some(addr("203.0.113.5:4000")), now + WINDOW * 10);
        assert_eq!(l.check(nat, true, now + WINDOW * 10), Verdict::Accept);
        assert_eq!(
            l.check(addr("203.0.113.5:31002"), true, now + WINDOW * 10),
            Verdict::Reject
        );

        let moved = addr("203.0.113.77:6000");
        l.set_expected(Some(moved), now + WINDOW * 20);
        assert_eq!(l.destination(), Some(moved));
        assert_eq!(l.check(nat, true, now + WINDOW * 20), Verdict::Reject);
        assert_eq!(
            l.check(moved, true, now + WINDOW * 20),
            Verdict::Latched(moved)
        );
    }

    #[test]
    fn without_an_sdp_address_only_learn_any_accepts() {
        let now = Instant::now();
        for (policy, accepted) in [
            (SourcePolicy::Strict, false),
            (SourcePolicy::LearnIp, false),
            (SourcePolicy::LearnAny, true),
        ] {
            let mut l = Latch::new(policy, WINDOW);
            l.reopen(now);
            let v = l.check(addr("198.51.100.9:5000"), true, now);
            assert_eq!(matches!(v, Verdict::Latched(_)), accepted, "{policy:?}");
        }
    }
}
