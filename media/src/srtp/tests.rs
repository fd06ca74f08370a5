use super::*;
use rtc_srtp::context::Context as Theirs;
use rtc_srtp::protection_profile::ProtectionProfile;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 3711 Appendix B.3: the session keys derived from a master key and salt.
#[test]
fn session_keys_match_rfc_3711_b3() {
    let mut material = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    material.extend(hex("0EC675AD498AFEEBB6960B3AABE6"));
    let master = MasterKey::new(Suite::AesCm128HmacSha1_80, &material).unwrap();
    let mut key = [0u8; 16];
    transform::derive(&master, 0, &mut key);
    assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut salt = [0u8; 14];
    transform::derive(&master, 2, &mut salt);
    assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    let mut auth = [0u8; 20];
    transform::derive(&master, 1, &mut auth);
    assert_eq!(
        auth.to_vec(),
        hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    );
}

fn profile(suite: Suite) -> ProtectionProfile {
    match suite {
        Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        Suite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
    }
}

fn theirs(key: &MasterKey) -> Theirs {
    let provider = rtc_srtp::crypto::default_provider().unwrap();
    let (k, s) = key.material().split_at(16);
    Theirs::new(k, s, profile(key.suite()), None, None, provider.crypto()).unwrap()
}

fn rtp_packet(seq: u16, payload_len: usize, csrcs: u8, extension: bool) -> Vec<u8> {
    let mut p = vec![0u8; 12];
    crate::rtp::write_header(&mut p, 0, false, seq, u32::from(seq) * 160, 0xdead_beef);
    p[0] |= csrcs;
    for c in 0..csrcs {
        p.extend_from_slice(&(0x1000 + u32::from(c)).to_be_bytes());
    }
    if extension {
        p[0] |= 0x10;
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
    }
    p.extend((0..payload_len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seq as u8)));
    p
}

fn rtcp_packet(n: u8) -> Vec<u8> {
    // A sender report with no report blocks, then an SDES with one CNAME.
    let mut p = vec![0x80, 200, 0, 6, 0xde, 0xad, 0xbe, 0xef];
    p.extend_from_slice(&[n; 20]);
    p.extend_from_slice(&[
        0x81, 202, 0, 3, 0xde, 0xad, 0xbe, 0xef, 1, 4, b'a', b'b', b'c', b'd', 0, 0,
    ]);
    p
}

/// Ours and webrtc-rs's, each way, for every suite, across a sequence number wrap (the
/// rollover counter), with CSRCs and a header extension (encryption starts after them).
#[test]
fn packets_interoperate_with_webrtc_rs_in_both_directions() {
    for suite in Suite::ALL {
        let key = MasterKey::generate(suite);
        let (mut ours_tx, mut ours_rx) = (Context::new(&key), Context::new(&key));
        let (mut their_rx, mut their_tx) = (theirs(&key), theirs(&key));
        for (n, seq) in (65_520u16..=65_535).chain(0..20).enumerate() {
            let plain = rtp_packet(seq, 160, (n % 3) as u8, n % 2 == 0);
            let mut buf = plain.clone();
            buf.resize(plain.len() + MAX_OVERHEAD, 0);
            let len = ours_tx.protect_rtp(&mut buf, plain.len()).unwrap();
            assert_eq!(len, plain.len() + suite.rtp_overhead());
            assert_ne!(
                buf[len - 30..len],
                plain[plain.len() - 30..],
                "{suite:?}: encrypted"
            );
            let opened = their_rx.decrypt_rtp(&buf[..len]).unwrap();
            assert_eq!(
                &opened[..],
                &plain[..],
                "{suite:?} seq {seq}: ours → theirs"
            );

            let sealed = their_tx.encrypt_rtp(&plain).unwrap();
            let mut buf = sealed.to_vec();
            let len = ours_rx.unprotect_rtp(&mut buf).unwrap();
            assert_eq!(
                &buf[..len],
                &plain[..],
                "{suite:?} seq {seq}: theirs → ours"
            );
        }
        for n in 0..5 {
            let plain = rtcp_packet(n);
            let mut buf = plain.clone();
            buf.resize(plain.len() + MAX_OVERHEAD, 0);
            let len = ours_tx.protect_rtcp(&mut buf, plain.len()).unwrap();
            assert_eq!(len, plain.len() + suite.rtcp_overhead());
            let opened = their_rx.decrypt_rtcp(&buf[..len]).unwrap();
            assert_eq!(&opened[..], &plain[..], "{suite:?} RTCP: ours → theirs");

            let sealed = their_tx.encrypt_rtcp(&plain).unwrap();
            let mut buf = sealed.to_vec();
            let len = ours_rx.unprotect_rtcp(&mut buf).unwrap();
            assert_eq!(&buf[..len], &plain[..], "{suite:?} RTCP: theirs → ours");
        }
    }
}

#[test]
fn tampered_replayed_and_wrongly_keyed_packets_are_refused() {
    for suite in Suite::ALL {
        let key = MasterKey::generate(suite);
        let (mut tx, mut rx) = (Context::new(&key), Context::new(&key));
        let plain = rtp_packet(7, 160, 0, false);
        let mut buf = plain.clone();
        buf.resize(plain.len() + MAX_OVERHEAD, 0);
        let len = tx.protect_rtp(&mut buf, plain.len()).unwrap();
        let sealed = buf[..len].to_vec();

        for at in [1, 12, len / 2, len - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x01;
            assert_eq!(rx.unprotect_rtp(&mut bad), Err(SrtpError::Authentication));
        }
        let mut other = Context::new(&MasterKey::generate(suite));
        assert_eq!(
            other.unprotect_rtp(&mut sealed.clone()),
            Err(SrtpError::Authentication)
        );
        assert!(rx.unprotect_rtp(&mut sealed.clone()).is_ok());
        assert_eq!(
            rx.unprotect_rtp(&mut sealed.clone()),
            Err(SrtpError::Replay)
        );

        let rtcp = rtcp_packet(1);
        let mut buf = rtcp.clone();
        buf.resize(rtcp.len() + MAX_OVERHEAD, 0);
        let len = tx.protect_rtcp(&mut buf, rtcp.len()).unwrap();
        let sealed = buf[..len].to_vec();
        let mut bad = sealed.clone();
        bad[10] ^= 0x80;
        assert_eq!(rx.unprotect_rtcp(&mut bad), Err(SrtpError::Authentication));
        assert!(rx.unprotect_rtcp(&mut sealed.clone()).is_ok());
        assert_eq!(
            rx.unprotect_rtcp(&mut sealed.clone()),
            Err(SrtpError::Replay)
        );
    }
}

#[test]
fn short_packets_and_full_buffers_are_errors_not_panics() {
    for suite in Suite::ALL {
        let key = MasterKey::generate(suite);
        let mut ctx = Context::new(&key);
        let plain = rtp_packet(1, 20, 0, false);
        let mut exact = plain.clone();
        assert_eq!(
            ctx.protect_rtp(&mut exact, plain.len()),
            Err(SrtpError::NoRoom)
        );
        let mut x = [0u8; 64];
        for len in 0..64 {
            x[0] = 0x80;
            let _ = ctx.unprotect_rtp(&mut x[..len]);
            let _ = ctx.unprotect_rtcp(&mut x[..len]);
            let _ = ctx.protect_rtcp(&mut x, len);
            // A header claiming 15 CSRCs and an extension longer than the packet.
            x[0] = 0x9f;
            let _ = ctx.unprotect_rtp(&mut x[..len]);
        }
        assert_eq!(ctx.protect_rtp(&mut x, 70), Err(SrtpError::TooShort));
    }
}

#[test]
fn a_key_needs_the_suites_length_and_is_not_shown_by_debug() {
    assert!(MasterKey::new(Suite::AesCm128HmacSha1_80, &[1; 30]).is_some());
    assert!(MasterKey::new(Suite::AesCm128HmacSha1_80, &[1; 28]).is_none());
    assert!(MasterKey::new(Suite::AeadAes128Gcm, &[1; 28]).is_some());
    let key = MasterKey::new(Suite::AeadAes128Gcm, &[0xab; 28]).unwrap();
    let shown = format!("{key:?}");
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("ab,"),
        "{shown}"
    );
    assert_ne!(
        MasterKey::generate(Suite::AesCm128HmacSha1_80),
        MasterKey::generate(Suite::AesCm128HmacSha1_80)
    );
}
