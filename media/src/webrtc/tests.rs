//! A leg's transport against a browser's part played by webrtc-rs: its STUN checks and its
//! DTLS client (`rtc-dtls` in the client role, with a certificate of its own).

use super::*;
use crate::srtp::{Context, MasterKey, Suite};
use bytes::BytesMut;
use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::endpoint::Endpoint;
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{BINDING_SUCCESS, Getter, Message};
use rtc_stun::xoraddr::XorMappedAddress;

const SERVER: &str = "127.0.0.1:40000";
const BROWSER: &str = "127.0.0.1:50000";

fn addr(a: &str) -> SocketAddr {
    a.parse().unwrap()
}

struct Browser {
    dtls: Endpoint,
    certificate: Certificate,
    ice: Credentials,
}

impl Browser {
    fn new(ice: &Credentials) -> Self {
        let crypto = rtc_dtls::crypto_provider::default_provider().unwrap();
        let certificate =
            Certificate::generate_self_signed(vec!["browser".into()], crypto.crypto()).unwrap();
        Self {
            dtls: Endpoint::new(addr(BROWSER), rtc_shared::TransportProtocol::UDP, None),
            certificate,
            ice: ice.clone(),
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        let der = self.certificate.certificate[0].as_ref();
        Fingerprint::parse(&format!("sha-256 {}", colon_hex(&sha256(der)))).unwrap()
    }

    /// A Binding request as a browser sends it, with `password` for its integrity.
    fn check(&self, password: &str, nominate: bool) -> Vec<u8> {
        let ice = Credentials {
            local_pwd: password.to_owned(),
            ..self.ice.clone()
        };
        ice::browser_check(&ice, nominate)
    }

    fn connect(&mut self, now: Instant, profiles: Vec<SrtpProtectionProfile>) {
        let crypto = rtc_dtls::crypto_provider::default_provider().unwrap();
        let config = ConfigBuilder::default()
            .with_crypto_provider(crypto)
            .with_certificates(vec![self.certificate.clone()])
            .with_srtp_protection_profiles(profiles)
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_insecure_skip_verify(true)
            .build(true, None)
            .unwrap();
        self.dtls
            .connect(now, addr(SERVER), Arc::new(config), None)
            .unwrap();
    }

    fn sent(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.dtls.poll_transmit())
            .map(|t| t.message.to_vec())
            .collect()
    }

    fn keys(&self) -> (MasterKey, MasterKey) {
        let state = self.dtls.get_connection_state(addr(SERVER)).unwrap();
        let suite = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => Suite::AeadAes128Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => Suite::AesCm128HmacSha1_80,
            other => panic!("{other:?}"),
        };
        let salt = suite.material_len() - 16;
        let m = state
            .export_keying_material("EXTRACTOR-dtls_srtp", &[], 2 * (16 + salt))
            .unwrap();
        let m = m.as_ref();
        let key = |k: &[u8], s: &[u8]| MasterKey::new(suite, &[k, s].concat()).unwrap();
        let (client, server) = (
            key(&m[..16], &m[32..32 + salt]),
            key(&m[16..32], &m[32 + salt..]),
        );
        (client, server)
    }
}

fn leg(browser_fingerprint: Fingerprint) -> (Transport, Credentials) {
    let ours = Credentials::generate("brws");
    let config = WebRtcConfig {
        identity: Identity::generate().unwrap(),
        ice: ours.clone(),
        remote_fingerprint: browser_fingerprint,
    };
    let browser_view = Credentials {
        local_ufrag: ours.local_ufrag.clone(),
        local_pwd: ours.local_pwd.clone(),
        remote_ufrag: "brws".into(),
    };
    (Transport::new(addr(SERVER), config).unwrap(), browser_view)
}

/// Runs the handshake between the browser and the leg; the leg's events.
fn handshake(browser: &mut Browser, leg: &mut Transport, now: Instant) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..16 {
        let mut out = Vec::new();
        for datagram in browser.sent() {
            events.extend(leg.handle(now, addr(BROWSER), &datagram, &mut out));
        }
        if out.is_empty() {
            break;
        }
        for (to, datagram) in out {
            assert_eq!(to, addr(BROWSER));
            let _ = browser
                .dtls
                .read(now, addr(SERVER), None, BytesMut::from(&datagram[..]));
        }
    }
    events
}

#[test]
fn a_browsers_checks_are_answered_and_its_nomination_selects_its_address() {
    let mut browser = Browser::new(&Credentials::generate(""));
    let (mut leg, ice) = leg(browser.fingerprint());
    browser.ice = ice.clone();
    let now = Instant::now();
    let mut out = Vec::new();
    // Not nominating: answered, and the address serves until a nomination.
    let first = leg.handle(
        now,
        addr(BROWSER),
        &browser.check(&ice.local_pwd, false),
        &mut out,
    );
    assert_eq!(first, Some(Event::Selected(addr(BROWSER))));
    let (to, response) = out.pop().unwrap();
    assert_eq!(to, addr(BROWSER));
    let mut m = Message::new();
    m.unmarshal_binary(&response).unwrap();
    assert_eq!(m.typ, BINDING_SUCCESS);
    let crypto = rtc_dtls::crypto_provider::default_provider().unwrap();
    FINGERPRINT.check(&m).unwrap();
    MessageIntegrity::check(&mut m, ice.local_pwd.as_bytes(), crypto.crypto()).unwrap();
    let mut mapped = XorMappedAddress {
        ip: "0.0.0.0".parse().unwrap(),
        port: 0,
    };
    mapped.get_from(&m).unwrap();
    assert_eq!((mapped.ip, mapped.port), (addr(BROWSER).ip(), 50000));
    // Nominating another address moves media there.
    let other = addr("127.0.0.1:50002");
    let moved = leg.handle(now, other, &browser.check(&ice.local_pwd, true), &mut out);
    assert_eq!(moved, Some(Event::Selected(other)));
}

#[test]
fn checks_without_our_password_or_ufrag_get_no_answer() {
    let mut browser = Browser::new(&Credentials::generate(""));
    let (mut leg, ice) = leg(browser.fingerprint());
    let now = Instant::now();
    let mut out = Vec::new();
    browser.ice = ice.clone();
    let forged = browser.check("not-the-password-at-all!", true);
    assert_eq!(leg.handle(now, addr(BROWSER), &forged, &mut out), None);
    browser.ice.local_ufrag = "someone-else".into();
    let stranger = browser.check(&ice.local_pwd, true);
    assert_eq!(leg.handle(now, addr(BROWSER), &stranger, &mut out), None);
    for junk in [&[0u8, 1, 0, 0][..], &[1u8; 300], &[]] {
        assert_eq!(leg.handle(now, addr(BROWSER), junk, &mut out), None);
    }
    assert!(out.is_empty(), "nothing is answered");
}

#[test]
fn dtls_keys_srtp_both_ways_with_the_browser_whose_fingerprint_the_sdp_gave() {
    for profile in [
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
    ] {
        let mut browser = Browser::new(&Credentials::generate(""));
        let (mut leg, ice) = leg(browser.fingerprint());
        browser.ice = ice.clone();
        let now = Instant::now();
        let mut out = Vec::new();
        leg.handle(
            now,
            addr(BROWSER),
            &browser.check(&ice.local_pwd, true),
            &mut out,
        );
        browser.connect(now, vec![profile]);
        let events = handshake(&mut browser, &mut leg, now);
        let Some(Event::Secured(keys)) = events.into_iter().next() else {
            panic!("no keys");
        };
        assert!(leg.is_secured());
        let (client, server) = browser.keys();
        assert_eq!((keys.inbound, keys.outbound), (client, server));
        // What the browser seals opens with the leg's inbound key, and the reverse.
        let mut packet = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7];
        packet.extend_from_slice(&[0xd5; 160]);
        let plain = packet.clone();
        packet.resize(plain.len() + 32, 0);
        let len = Context::new(&client)
            .protect_rtp(&mut packet, plain.len())
            .unwrap();
        let opened = Context::new(&keys.inbound)
            .unprotect_rtp(&mut packet[..len])
            .unwrap();
        assert_eq!(&packet[..opened], &plain[..]);
    }
}

#[test]
fn a_handshake_that_moves_to_another_candidate_pair_midway_completes() {
    let mut browser = Browser::new(&Credentials::generate(""));
    let (mut leg, ice) = leg(browser.fingerprint());
    browser.ice = ice.clone();
    let now = Instant::now();
    let (first, second) = (addr(BROWSER), addr("192.0.2.9:50004"));
    let mut out = Vec::new();
    leg.handle(now, first, &browser.check(&ice.local_pwd, false), &mut out);
    leg.handle(now, second, &browser.check(&ice.local_pwd, false), &mut out);
    out.clear();
    browser.connect(
        now,
        vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80],
    );
    // The ClientHello comes over the first pair; then the browser nominates the second and
    // the rest of the handshake runs there, replies included.
    let mut events = Vec::new();
    for datagram in browser.sent() {
        events.extend(leg.handle(now, first, &datagram, &mut out));
    }
    let nominated = leg.handle(now, second, &browser.check(&ice.local_pwd, true), &mut out);
    assert_eq!(nominated, Some(Event::Selected(second)));
    for _ in 0..16 {
        let replies: Vec<_> = out
            .drain(..)
            .filter(|(_, d)| Demux::of(d) == Demux::Dtls)
            .collect();
        for (to, datagram) in replies {
            let _ = browser
                .dtls
                .read(now, addr(SERVER), None, BytesMut::from(&datagram[..]));
            let _ = to;
        }
        let sent = browser.sent();
        if sent.is_empty() {
            break;
        }
        for datagram in sent {
            events.extend(leg.handle(now, second, &datagram, &mut out));
        }
        assert!(
            out.iter().all(|(to, _)| *to == second),
            "replies follow the browser"
        );
    }
    assert!(
        events.iter().any(|e| matches!(e, Event::Secured(_))),
        "{events:?}"
    );
}

#[test]
fn a_browser_whose_certificate_is_not_the_fingerprinted_one_is_refused() {
    let mut browser = Browser::new(&Credentials::generate(""));
    let impostor = Browser::new(&Credentials::generate(""));
    let (mut leg, ice) = leg(impostor.fingerprint());
    browser.ice = ice.clone();
    let now = Instant::now();
    let mut out = Vec::new();
    leg.handle(
        now,
        addr(BROWSER),
        &browser.check(&ice.local_pwd, true),
        &mut out,
    );
    browser.connect(
        now,
        vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80],
    );
    let events = handshake(&mut browser, &mut leg, now);
    assert!(events.contains(&Event::Lost("dtls-failed")), "{events:?}");
    assert!(!leg.is_secured());
}

#[test]
fn dtls_from_an_address_no_check_proved_is_ignored() {
    let mut browser = Browser::new(&Credentials::generate(""));
    let (mut leg, _) = leg(browser.fingerprint());
    let now = Instant::now();
    browser.connect(
        now,
        vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80],
    );
    let mut out = Vec::new();
    for datagram in browser.sent() {
        assert_eq!(leg.handle(now, addr(BROWSER), &datagram, &mut out), None);
    }
    assert!(out.is_empty());
}

#[test]
fn consent_lapses_thirty_seconds_after_the_last_check() {
    let mut browser = Browser::new(&Credentials::generate(""));
    let (mut leg, ice) = leg(browser.fingerprint());
    browser.ice = ice.clone();
    let start = Instant::now();
    let mut out = Vec::new();
    leg.handle(
        start,
        addr(BROWSER),
        &browser.check(&ice.local_pwd, true),
        &mut out,
    );
    browser.connect(
        start,
        vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80],
    );
    handshake(&mut browser, &mut leg, start);
    assert!(leg.is_secured());
    // A check at 20 s keeps it alive past 30 s; it lapses 30 s after that check.
    let at = |s| start + Duration::from_secs(s);
    leg.handle(
        at(20),
        addr(BROWSER),
        &browser.check(&ice.local_pwd, true),
        &mut out,
    );
    assert_eq!(leg.poll_timeout(), Some(at(50)));
    assert_eq!(leg.handle_timeout(at(49), &mut out), None);
    assert_eq!(
        leg.handle_timeout(at(50), &mut out),
        Some(Event::Lost("consent-expired"))
    );
    assert_eq!(leg.poll_timeout(), None);
}

#[test]
fn a_leg_whose_handshake_never_completes_is_lost() {
    let browser = Browser::new(&Credentials::generate(""));
    let (mut leg, ice) = leg(browser.fingerprint());
    let mut browser = browser;
    browser.ice = ice.clone();
    let start = Instant::now();
    let mut out = Vec::new();
    leg.handle(
        start,
        addr(BROWSER),
        &browser.check(&ice.local_pwd, true),
        &mut out,
    );
    // Checks keep consent, but no DTLS comes.
    for s in [10, 20] {
        let at = start + Duration::from_secs(s);
        leg.handle(
            at,
            addr(BROWSER),
            &browser.check(&ice.local_pwd, true),
            &mut out,
        );
    }
    let due = leg.poll_timeout().unwrap();
    assert_eq!(due, start + SETUP_LIMIT);
    assert_eq!(
        leg.handle_timeout(due, &mut out),
        Some(Event::Lost("dtls-timeout"))
    );
}

#[test]
fn fingerprints_parse_as_browsers_write_them() {
    let der = b"certificate";
    let hex = colon_hex(&sha256(der));
    let f = Fingerprint::parse(&format!("sha-256 {hex}")).unwrap();
    assert!(f.matches(der) && !f.matches(b"another"));
    assert!(Fingerprint::parse(&format!("SHA-256 {}", hex.to_lowercase())).is_some());
    for bad in [
        "sha-1 AB:CD".to_owned(),
        "sha-256 AB:CD".to_owned(),
        format!("sha-256 {}:00", hex),
        format!("md5 {hex}"),
        "sha-256".to_owned(),
        format!("sha-256 {}", hex.replace(':', "")),
    ] {
        assert_eq!(Fingerprint::parse(&bad), None, "{bad}");
    }
    let identity = Identity::generate().unwrap();
    assert!(Fingerprint::parse(identity.fingerprint()).is_some());
}

#[test]
fn the_first_byte_tells_what_a_datagram_is() {
    assert_eq!(Demux::of(&[0, 1]), Demux::Stun);
    assert_eq!(Demux::of(&[22, 254]), Demux::Dtls);
    assert_eq!(Demux::of(&[0x80, 0]), Demux::Media);
    assert_eq!(Demux::of(&[64]), Demux::Other);
    assert_eq!(Demux::of(&[]), Demux::Other);
}

#[test]
fn a_lost_server_flight_is_sent_again_when_the_browser_repeats_its_own() {
    let mut browser = Browser::new(&Credentials::generate(""));
    let (mut leg, ice) = leg(browser.fingerprint());
    browser.ice = ice.clone();
    let start = Instant::now();
    let mut out = Vec::new();
    leg.handle(
        start,
        addr(BROWSER),
        &browser.check(&ice.local_pwd, true),
        &mut out,
    );
    out.clear();
    browser.connect(
        start,
        vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80],
    );
    // ClientHello → HelloVerifyRequest → ClientHello with the cookie → the server's flight,
    // which is lost.
    let mut now = start;
    let mut rounds = Vec::new();
    for round in 0..2 {
        for datagram in browser.sent() {
            leg.handle(now, addr(BROWSER), &datagram, &mut out);
        }
        let replies: Vec<Vec<u8>> = out.drain(..).map(|(_, d)| d).collect();
        rounds.push(replies.len());
        if round == 0 {
            for d in replies {
                let _ = browser
                    .dtls
                    .read(now, addr(SERVER), None, BytesMut::from(&d[..]));
            }
        }
    }
    assert!(rounds[1] > 0, "the server sent its flight: {rounds:?}");
    // The browser hears nothing and repeats its flight; the server must answer again (or
    // repeat its own on its timer), and the handshake completes.
    let mut events = Vec::new();
    for _ in 0..10 {
        now += Duration::from_millis(1100);
        let _ = browser.dtls.handle_timeout(addr(SERVER), now);
        for datagram in browser.sent() {
            events.extend(leg.handle(now, addr(BROWSER), &datagram, &mut out));
        }
        if leg.poll_timeout().is_some_and(|t| t <= now) {
            events.extend(leg.handle_timeout(now, &mut out));
        }
        for (_, d) in out.drain(..) {
            let _ = browser
                .dtls
                .read(now, addr(SERVER), None, BytesMut::from(&d[..]));
        }
        for datagram in browser.sent() {
            events.extend(leg.handle(now, addr(BROWSER), &datagram, &mut out));
        }
        for (_, d) in out.drain(..) {
            let _ = browser
                .dtls
                .read(now, addr(SERVER), None, BytesMut::from(&d[..]));
        }
        if leg.is_secured() {
            break;
        }
    }
    assert!(leg.is_secured(), "{events:?}");
}

/// An ICE restart (new credentials from a re-offer) keeps the DTLS association and its keys:
/// checks with the old password go unanswered, checks with the new one are answered and may
/// move the media, and nothing asks for a new handshake.
#[test]
fn an_ice_restart_takes_the_new_credentials_and_keeps_the_keys() {
    let mut browser = Browser::new(&Credentials::generate(""));
    let (mut leg, ice) = leg(browser.fingerprint());
    browser.ice = ice.clone();
    let now = Instant::now();
    let mut out = Vec::new();
    leg.handle(
        now,
        addr(BROWSER),
        &browser.check(&ice.local_pwd, true),
        &mut out,
    );
    browser.connect(
        now,
        vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80],
    );
    assert!(matches!(
        handshake(&mut browser, &mut leg, now).first(),
        Some(Event::Secured(_))
    ));
    let restarted = Credentials::generate("brw2");
    let mut config = leg.config().clone();
    config.ice = restarted.clone();
    leg.restart_ice(config);
    assert!(leg.is_secured(), "the keys stay");
    browser.ice = Credentials {
        local_ufrag: restarted.local_ufrag.clone(),
        local_pwd: restarted.local_pwd.clone(),
        remote_ufrag: "brw2".into(),
    };
    let mut out = Vec::new();
    let stale = leg.handle(
        now,
        addr(BROWSER),
        &browser.check(&ice.local_pwd, true),
        &mut out,
    );
    assert!(
        stale.is_none() && out.is_empty(),
        "the old password is no longer ours"
    );
    let other = addr("127.0.0.1:50004");
    let moved = leg.handle(
        now,
        other,
        &browser.check(&restarted.local_pwd, true),
        &mut out,
    );
    assert_eq!(moved, Some(Event::Selected(other)));
    assert_eq!(out.len(), 1, "answered");
    assert!(
        leg.poll_timeout().is_some_and(|t| t > now),
        "no handshake is due"
    );
}

#[test]
fn media_is_taken_from_any_proved_address_and_goes_where_it_comes_from_until_a_nomination() {
    let mut browser = Browser::new(&Credentials::generate(""));
    let (mut leg, ice) = leg(browser.fingerprint());
    browser.ice = ice.clone();
    let now = Instant::now();
    let (first, better, stranger) = (
        addr(BROWSER),
        addr("192.0.2.9:50004"),
        addr("192.0.2.66:50006"),
    );
    let mut out = Vec::new();
    // Chrome's way: the first pair that answers carries media, then a better one does, and
    // the better one is nominated a second later.
    let served = leg.handle(now, first, &browser.check(&ice.local_pwd, false), &mut out);
    assert_eq!(served, Some(Event::Selected(first)));
    assert_eq!(
        leg.handle(now, better, &browser.check(&ice.local_pwd, false), &mut out),
        None
    );
    assert_eq!(leg.media_from(first), MediaSource::Proved);
    assert_eq!(leg.media_from(better), MediaSource::Moved);
    assert_eq!(leg.media_from(better), MediaSource::Proved);
    // No check came from this one: its media is nobody's.
    assert_eq!(leg.media_from(stranger), MediaSource::Unproved);
    // The nomination of the first pair settles where media goes: the other proved address
    // may still carry some (taken), but does not move it again.
    let nominated = leg.handle(now, first, &browser.check(&ice.local_pwd, true), &mut out);
    assert_eq!(nominated, Some(Event::Selected(first)));
    assert_eq!(leg.media_from(better), MediaSource::Proved);
    assert_eq!(leg.media_from(stranger), MediaSource::Unproved);
}
