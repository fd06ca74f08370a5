//! SRTP legs in the engine over real sockets on 127.0.0.1: a leg keyed by SDES bridged with a
//! plain one. What the SRTP peer sends (sealed here by webrtc-rs's independent SRTP) arrives
//! plain and law-converted at the other peer; what the plain peer sends arrives sealed, opens
//! with the key, and never repeats an index; forged and replayed packets go nowhere; RTCP is
//! sealed and opened too; a rekey applies to the next packet.

use rtc_srtp::context::Context as Theirs;
use rtc_srtp::protection_profile::ProtectionProfile;
use std::net::UdpSocket;
use std::time::Duration;
use switchboard_media::srtp::{MasterKey, Suite};
use switchboard_media::{
    EndpointConfig, Law, MediaConfig, MediaEngine, PayloadMap, SrtpKeys, g711, rtp,
};
use tokio::sync::mpsc;

fn theirs(key: &MasterKey) -> Theirs {
    let provider = rtc_srtp::crypto::default_provider().unwrap();
    let (k, s) = key.material().split_at(16);
    let profile = match key.suite() {
        Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        Suite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
    };
    Theirs::new(k, s, profile, None, None, provider.crypto()).unwrap()
}

fn rtcp_of(rtp: std::net::SocketAddr) -> std::net::SocketAddr {
    std::net::SocketAddr::new(rtp.ip(), rtp.port() + 1)
}

fn phone() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

fn rtp_packet(pt: u8, seq: u16, fill: u8) -> Vec<u8> {
    let mut p = vec![fill; 172];
    rtp::write_header(&mut p, pt, false, seq, u32::from(seq) * 160, 0x5eed);
    p
}

#[test]
fn an_srtp_leg_and_a_plain_leg_hear_each_other_and_forgeries_go_nowhere() {
    for (n, suite) in Suite::ALL.into_iter().enumerate() {
        let base = 32200 + 10 * n as u16;
        let (tx, _events) = mpsc::unbounded_channel();
        let engine = MediaEngine::start(
            MediaConfig {
                bind_ip: "127.0.0.1".parse().unwrap(),
                advertise_ip: "127.0.0.1".parse().unwrap(),
                ports: base..=base + 9,
                threads: 1,
                rtp_timeout: Duration::from_secs(60),
                learn_window: Duration::from_secs(3),
                kernel_relay: false,
                bind_ahead: switchboard_media::BIND_AHEAD,
            },
            tx,
        )
        .unwrap();
        let (secure, plain, secure_rtcp, plain_rtcp) = (phone(), phone(), phone(), phone());
        let (es, ep) = (
            engine.allocate(None).unwrap(),
            engine.allocate(None).unwrap(),
        );
        let (phone_key, our_key) = (MasterKey::generate(suite), MasterKey::generate(suite));
        let keys = SrtpKeys {
            inbound: phone_key,
            outbound: our_key,
        };
        let pcma = PayloadMap {
            audio: Some((8, Law::Alaw)),
            telephone_event: None,
        };
        let pcmu = PayloadMap {
            audio: Some((0, Law::Ulaw)),
            telephone_event: None,
        };
        let secure_config = EndpointConfig {
            remote_rtp: Some(secure.local_addr().unwrap()),
            remote_rtcp: Some(secure_rtcp.local_addr().unwrap()),
            payload: pcma,
            expect_rtp: true,
            srtp: Some(keys),
            ..Default::default()
        };
        engine.configure(es.id, secure_config.clone());
        engine.configure(
            ep.id,
            EndpointConfig {
                remote_rtp: Some(plain.local_addr().unwrap()),
                remote_rtcp: Some(plain_rtcp.local_addr().unwrap()),
                payload: pcmu,
                expect_rtp: true,
                ..Default::default()
            },
        );
        engine.bridge(es.id, ep.id);
        engine.flush();

        let (mut phone_tx, mut phone_rx) = (theirs(&phone_key), theirs(&our_key));
        let mut buf = [0u8; 2048];
        for seq in 0..20u16 {
            let sealed = phone_tx.encrypt_rtp(&rtp_packet(8, seq, 0x2a)).unwrap();
            assert_ne!(sealed[12..172], [0x2a; 160][..]);
            secure.send_to(&sealed, es.rtp).unwrap();
            let (n, from) = plain.recv_from(&mut buf).unwrap();
            assert_eq!(
                (from, n),
                (ep.rtp, 172),
                "{suite:?}: plain, without the tag"
            );
            assert_eq!(rtp::payload_type(&buf), 0);
            assert!(buf[12..n].iter().all(|&x| x == g711::ALAW_TO_ULAW[0x2a]));

            plain.send_to(&rtp_packet(0, seq, 0x55), ep.rtp).unwrap();
            let (n, from) = secure.recv_from(&mut buf).unwrap();
            assert_eq!((from, n), (es.rtp, 172 + suite.rtp_overhead()));
            assert_ne!(
                buf[12..172],
                [g711::ULAW_TO_ALAW[0x55]; 160][..],
                "encrypted"
            );
            let opened = phone_rx.decrypt_rtp(&buf[..n]).unwrap();
            assert_eq!(rtp::payload_type(&opened), 8);
            assert!(opened[12..].iter().all(|&x| x == g711::ULAW_TO_ALAW[0x55]));
        }

        // A replay, a forged tag and a packet sealed with another key go nowhere.
        let last = phone_tx
            .encrypt_rtp(&rtp_packet(8, 20, 0x2a))
            .unwrap()
            .to_vec();
        let mut forged = phone_tx
            .encrypt_rtp(&rtp_packet(8, 21, 0x2a))
            .unwrap()
            .to_vec();
        let end = forged.len() - 1;
        forged[end] ^= 1;
        let stranger = theirs(&MasterKey::generate(suite))
            .encrypt_rtp(&rtp_packet(8, 22, 0x2a))
            .unwrap();
        secure.send_to(&last, es.rtp).unwrap();
        plain.recv_from(&mut buf).unwrap();
        plain
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let rejected = engine.srtp_rejected_total();
        for bad in [&last[..], &forged[..], &stranger[..]] {
            secure.send_to(bad, es.rtp).unwrap();
            assert!(plain.recv_from(&mut buf).is_err(), "{suite:?}: dropped");
        }
        assert_eq!(engine.srtp_rejected_total(), rejected + 3, "and counted");
        plain
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();

        // RTCP both ways: opened toward the plain peer, sealed toward the SRTP one.
        let mut report = vec![0x80, 200, 0, 6, 0, 0, 0x5e, 0xed];
        report.extend_from_slice(&[7; 20]);
        secure_rtcp
            .send_to(&phone_tx.encrypt_rtcp(&report).unwrap(), rtcp_of(es.rtp))
            .unwrap();
        let (n, _) = plain_rtcp.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &report[..], "{suite:?}: RTCP opened");
        plain_rtcp.send_to(&report, rtcp_of(ep.rtp)).unwrap();
        let (n, _) = secure_rtcp.recv_from(&mut buf).unwrap();
        assert_eq!(n, report.len() + suite.rtcp_overhead());
        assert_eq!(&phone_rx.decrypt_rtcp(&buf[..n]).unwrap()[..], &report[..]);

        // The phone rekeys (a re-INVITE with a new a=crypto): its new key opens at once, the
        // old one no longer does.
        let new_key = MasterKey::generate(suite);
        engine.configure(
            es.id,
            EndpointConfig {
                srtp: Some(SrtpKeys {
                    inbound: new_key,
                    outbound: our_key,
                }),
                ..secure_config
            },
        );
        engine.flush();
        let old = phone_tx.encrypt_rtp(&rtp_packet(8, 23, 0x2a)).unwrap();
        secure.send_to(&old, es.rtp).unwrap();
        plain
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(plain.recv_from(&mut buf).is_err(), "the old key is refused");
        let fresh = theirs(&new_key)
            .encrypt_rtp(&rtp_packet(8, 24, 0x2a))
            .unwrap();
        secure.send_to(&fresh, es.rtp).unwrap();
        assert_eq!(plain.recv_from(&mut buf).unwrap().0, 172);
        // Our direction kept its key and its state: the next packet still opens.
        plain.send_to(&rtp_packet(0, 20, 0x55), ep.rtp).unwrap();
        let (n, _) = secure.recv_from(&mut buf).unwrap();
        assert!(phone_rx.decrypt_rtp(&buf[..n]).is_ok());
    }
}
