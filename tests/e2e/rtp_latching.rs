//! Which source a call's media is taken from, end to end: a stranger spraying valid RTP at the
//! whole port range takes nothing from a call to a registered phone, even with the phone's
//! permissive default (`media.user_rtp_source = "learn-any"`) and the phone sending a little
//! after the answer from exactly the address its SDP gave.

use crate::common;

use common::sdk_app::{hear, windows_of};
use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use switchboard_media::{Law, rtp, tone};

const PORTS: std::ops::RangeInclusive<u16> = 20000..=20019;

/// Sprays valid PCMU RTP (payload type 0, the call's codec) at every port of the range every
/// 10 ms until `stop`; returns the audio packets that came back to it.
fn spray(from: UdpSocket, to: std::net::IpAddr, stop: Arc<AtomicBool>) -> Vec<Vec<u8>> {
    from.set_nonblocking(true).unwrap();
    let (mut got, mut seq, mut buf) = (Vec::new(), 0u16, [0u8; 2048]);
    while !stop.load(Ordering::Relaxed) {
        let mut p = [0u8; 172];
        rtp::write_header(&mut p, 0, false, seq, u32::from(seq) * 160, 0xbad);
        // A stranger's own "audio": quiet noise, nothing like the tones the call carries.
        let payload = noise(160, 200.0);
        Law::Ulaw.encode(&payload, &mut p[12..]);
        for port in PORTS {
            let _ = from.send_to(&p, SocketAddr::new(to, port));
        }
        seq = seq.wrapping_add(1);
        while let Ok((n, _)) = from.recv_from(&mut buf) {
            if rtp::is_rtp(&buf[..n]) && !rtp::is_rtcp(&buf[..n]) {
                got.push(buf[..n].to_vec());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    got
}

#[test]
fn a_stranger_spraying_the_port_range_takes_nothing_from_a_registered_phones_call() {
    let net = Net::new(128);
    let extra = "[[users]]\nusername = \"alice\"\npassword = \"s3cret\"\n\
                 [[routes]]\npattern = \"^alice$\"\nuser = \"alice\"\n";
    let server = Server::start_with(
        &net,
        &net.two_trunks(extra),
        &[("SWITCHBOARD_MEDIA__RTP_PORTS", "20000-20019")],
    );

    // The stranger starts before the call and never stops.
    let stop = Arc::new(AtomicBool::new(false));
    let sprayer = {
        let sock = UdpSocket::bind(format!("{}:0", net.ip(9))).unwrap();
        let (to, stop) = (server.sip.ip(), stop.clone());
        std::thread::spawn(move || spray(sock, to, stop))
    };

    // alice registers from .4; her phone's media is at .4 too, exactly what its SDP says.
    let phone = rig::rtp_socket(&net, 4);
    let (_phone_sip, phone_media) = phone_telling_media(&net, &phone, (&net.ip(4), 5062));
    let reg = run_sipp(
        &net,
        &scenario(
            &net,
            "phone_register.xml",
            &[
                ("USER", "alice"),
                ("PASSWORD", "s3cret"),
                ("CONTACT_PORT", "5062"),
            ],
        ),
        &net.ip(4),
        5061,
        server.sip,
        &["-m", "1"],
        Duration::from_secs(20),
    );
    assert!(reg.status.success(), "registration: {reg:?}");

    // A carrier calls alice; the caller's media is at .5.
    let caller = rig::rtp_socket(&net, 5);
    let uac = uac_media_at(
        &net,
        &caller,
        9000,
        "0 101\n      a=rtpmap:0 PCMU/8000\n      a=rtpmap:101 telephone-event/8000",
    );
    std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            run_sipp(
                &net,
                &uac,
                &net.ip(2),
                5060,
                server.sip,
                &["-m", "1", "-s", "alice"],
                Duration::from_secs(30),
            )
        });

        // The phone starts talking (1 kHz) a little after it answered, as phones do.
        let to_switchboard = phone_media();
        let talker = phone.try_clone().unwrap();
        let talking = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            send_audio(
                &talker,
                to_switchboard,
                &tone::sines(&[1000.0], 8000.0, 2000),
                1,
            );
        });

        // The caller hears the phone, not the stranger; then answers with 600 Hz.
        let (heard, from) = hear(&caller, Duration::from_secs(10), Duration::from_millis(500));
        let from = from.expect("audio reached the caller");
        talking.join().unwrap();
        let listener = phone.try_clone().unwrap();
        let phone_hears = std::thread::spawn(move || {
            hear(
                &listener,
                Duration::from_secs(5),
                Duration::from_millis(500),
            )
            .0
        });
        send_audio(&caller, from, &tone::sines(&[600.0], 8000.0, 2000), 1);
        let phone_heard = phone_hears.join().unwrap();

        stop.store(true, Ordering::Relaxed);
        let stolen = sprayer.join().unwrap();
        let run = call.join().unwrap();

        assert!(
            windows_of(&heard, 1000.0) >= 15,
            "the caller hears the phone's 1 kHz ({} of {} windows)\n{}",
            windows_of(&heard, 1000.0),
            heard.len() / 800,
            server.log()
        );
        assert!(
            windows_of(&phone_heard, 600.0) >= 15,
            "the phone hears the caller's 600 Hz ({} of {} windows)",
            windows_of(&phone_heard, 600.0),
            phone_heard.len() / 800
        );
        assert!(
            stolen.is_empty(),
            "the stranger received {} of the call's audio packets",
            stolen.len()
        );
        assert!(run.status.success(), "the call completes: {run:?}");
    });
}
