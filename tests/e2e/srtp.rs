//! SRTP keyed by SDES (RFC 4568) on a trunk, heard end to end. The caller's trunk requires
//! SRTP: SIPp offers RTP/SAVP with an AES_CM_128_HMAC_SHA1_80 key, and the test does the
//! caller's SRTP with webrtc-rs's `rtc-srtp` (an implementation independent of ours). The
//! callee's trunk is plain: its INVITE carries RTP/AVP and no key. The caller hears the
//! callee's 1 kHz through packets that open only with the key of Switchboard's answer; the
//! callee hears the caller's 600 Hz, decrypted by Switchboard.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::sdk_app::windows_of;
use common::*;
use rtc_srtp::context::Context as Srtp;
use rtc_srtp::protection_profile::ProtectionProfile;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use switchboard_media::{FRAME, Law, rtp, tone};

fn srtp(material: &[u8]) -> Srtp {
    let provider = rtc_srtp::crypto::default_provider().unwrap();
    let (key, salt) = material.split_at(16);
    let profile = ProtectionProfile::Aes128CmHmacSha1_80;
    Srtp::new(key, salt, profile, None, None, provider.crypto()).unwrap()
}

/// Sends μ-law audio as SRTP, paced at 20 ms.
fn send_srtp_audio(sock: &UdpSocket, to: SocketAddr, samples: &[i16], ctx: &mut Srtp) {
    let start = Instant::now();
    for (i, chunk) in samples.chunks(FRAME).enumerate() {
        let due = start + Duration::from_millis(20 * i as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut p = vec![0u8; 12 + chunk.len()];
        let seq = i as u16;
        rtp::write_header(&mut p, 0, i == 0, seq, u32::from(seq) * 160, 0x5eed);
        Law::Ulaw.encode(chunk, &mut p[12..]);
        sock.send_to(&ctx.encrypt_rtp(&p).unwrap(), to).unwrap();
    }
}

/// Receives SRTP for up to `ms` of audio (or until 500 ms of quiet): the decoded samples, how
/// many packets failed to open, and where they came from.
fn hear_srtp(sock: &UdpSocket, ctx: &mut Srtp, ms: u64) -> (Vec<i16>, usize, Option<SocketAddr>) {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut audio, mut failed, mut from) = (Vec::new(), 0, None);
    let mut buf = [0u8; 2048];
    while audio.len() < ms as usize * 8 {
        let Ok((n, src)) = sock.recv_from(&mut buf) else {
            break;
        };
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        from = Some(src);
        assert_eq!(n, 172 + 10, "a 20 ms μ-law packet and an 80-bit tag");
        match ctx.decrypt_rtp(&buf[..n]) {
            Ok(plain) => {
                let mut frame = vec![0i16; plain.len() - 12];
                Law::Ulaw.decode(&plain[12..], &mut frame);
                audio.extend(frame);
            }
            Err(_) => failed += 1,
        }
    }
    (audio, failed, from)
}

#[test]
fn a_caller_on_an_srtp_trunk_and_a_plain_callee_hear_each_other() {
    let net = Net::new(155);
    let config = format!(
        "[[trunks]]\nname = \"carrier-a\"\naddress = \"{a}:5060\"\ninbound_sources = [\"{a}/32\"]\n\
         srtp = \"required\"\n\
         [[trunks]]\nname = \"carrier-b\"\naddress = \"{b}:5060\"\ninbound_sources = [\"{b}/32\"]\n\
         [[routes]]\npattern = \"^\\\\+?1555\"\ntrunk = \"carrier-b\"\n",
        a = net.ip(2),
        b = net.ip(3),
    );
    let server = Server::start(&net, &config);

    let callee_rtp = rig::rtp_socket(&net, 4);
    let media = callee_rtp.local_addr().unwrap();
    // The callee's INVITE is plain RTP with no key: a key there would be refused or misread
    // by a plain trunk.
    let checks = r#"<ereg regexp="m=audio ([0-9]+) RTP/AVP " search_in="body" check_it="true" assign_to="seen,port"/><ereg regexp="crypto" search_in="body" check_it_inverse="true" assign_to="seen"/><log message="RTP-PORT [$port]"/>"#;
    let uas = scenario(
        &net,
        "uas_media_at.xml",
        &[
            ("RTP_IP", &media.ip().to_string()),
            ("RTP_PORT", &media.port().to_string()),
            ("CHECKS", checks),
        ],
    );
    let callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1", "-trace_logs"]);

    let caller_rtp = rig::rtp_socket(&net, 5);
    let ours = switchboard_media::srtp::MasterKey::generate(
        switchboard_media::srtp::Suite::AesCm128HmacSha1_80,
    );
    let caller_media = caller_rtp.local_addr().unwrap();
    let uac = scenario(
        &net,
        "uac_srtp.xml",
        &[
            ("RTP_IP", &caller_media.ip().to_string()),
            ("RTP_PORT", &caller_media.port().to_string()),
            ("KEY", &STANDARD.encode(ours.material())),
            ("TALK_MS", "5000"),
        ],
    );
    std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            let args = ["-m", "1", "-s", "+15551234", "-trace_logs"];
            run_sipp(
                &net,
                &uac,
                &net.ip(2),
                5060,
                server.sip,
                &args,
                Duration::from_secs(30),
            )
        });
        let dir = net.dir.path();
        let callee_port: u16 = sipp_logged(dir, "RTP-PORT ", "the callee was not called")
            .parse()
            .unwrap();
        let port = sipp_logged(dir, "SRTP-ANSWER ", "the caller got no SRTP answer");
        let key = sipp_logged(dir, &format!("SRTP-ANSWER {port} "), "no key in the answer");
        let theirs = STANDARD.decode(key).expect("a base64 key");
        assert_eq!(theirs.len(), 30, "AES_CM_128 key and salt");
        assert_ne!(
            theirs,
            ours.material(),
            "Switchboard sends with its own key"
        );

        // The callee talks plain; the caller hears it through Switchboard's SRTP.
        let to_switchboard = SocketAddr::new(net.ip(1).parse().unwrap(), callee_port);
        let talker = callee_rtp.try_clone().unwrap();
        let talking = std::thread::spawn(move || {
            send_audio(
                &talker,
                to_switchboard,
                &tone::sines(&[1000.0], 8000.0, 2000),
                1,
            );
        });
        let (heard, failed, from) = hear_srtp(&caller_rtp, &mut srtp(&theirs), 1800);
        talking.join().unwrap();
        let from = from.expect("SRTP reached the caller");
        assert_eq!(
            from.port().to_string(),
            port,
            "from the port Switchboard answered with"
        );
        assert_eq!(
            failed, 0,
            "every packet authenticates with the answer's key"
        );
        assert!(
            windows_of(&heard, 1000.0) >= 12,
            "the caller hears the callee's 1 kHz ({} of {} windows)\n{}",
            windows_of(&heard, 1000.0),
            heard.len() / 800,
            server.log()
        );

        // The caller talks SRTP; the callee hears it plain.
        let listener = callee_rtp.try_clone().unwrap();
        let callee_hears = std::thread::spawn(move || {
            common::sdk_app::hear(
                &listener,
                Duration::from_secs(5),
                Duration::from_millis(500),
            )
            .0
        });
        send_srtp_audio(
            &caller_rtp,
            from,
            &tone::sines(&[600.0], 8000.0, 2000),
            &mut srtp(ours.material()),
        );
        let callee_heard = callee_hears.join().unwrap();
        assert!(
            windows_of(&callee_heard, 600.0) >= 12,
            "the callee hears the caller's 600 Hz ({} of {} windows)\n{}",
            windows_of(&callee_heard, 600.0),
            callee_heard.len() / 800,
            server.log()
        );
        let run = call.join().unwrap();
        assert!(
            run.status.success(),
            "the caller's call: {run:?}\n{}",
            server.log()
        );
    });
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );
}

/// A plain offer from a trunk that requires SRTP, and an SRTP-only offer from one that does not
/// do SRTP, both get 488 before anyone is called.
#[test]
fn offers_that_break_a_trunks_srtp_policy_get_488() {
    let net = Net::new(156);
    let config = format!(
        "[[trunks]]\nname = \"carrier-a\"\naddress = \"{a}:5060\"\ninbound_sources = [\"{a}/32\"]\n\
         srtp = \"required\"\n\
         [[trunks]]\nname = \"carrier-b\"\naddress = \"{b}:5060\"\ninbound_sources = [\"{b}/32\"]\n\
         [[routes]]\npattern = \"^\\\\+?1555\"\ntrunk = \"carrier-b\"\n",
        a = net.ip(2),
        b = net.ip(3),
    );
    let server = Server::start(&net, &config);
    let key = format!(
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}",
        STANDARD.encode([7u8; 30])
    );
    // Plain RTP from the trunk that requires SRTP; SRTP only from the plain trunk.
    for (from, profile, crypto) in [(2, "RTP/AVP", ""), (3, "RTP/SAVP", key.as_str())] {
        let uac = scenario(
            &net,
            "uac_srtp_refused.xml",
            &[("PROFILE", profile), ("CRYPTO", crypto)],
        );
        let args = ["-m", "1", "-s", "+15551234"];
        let wait = Duration::from_secs(20);
        let run = run_sipp(&net, &uac, &net.ip(from), 5060, server.sip, &args, wait);
        assert!(run.status.success(), "{run:?}\n{}", server.log());
    }
    let calls = server.ended_calls(2);
    for call in &calls {
        assert_eq!(call["sip_code"], 488, "{call}");
        assert_eq!(
            call["trunk_out"],
            serde_json::Value::Null,
            "no one was called: {call}"
        );
    }
}
