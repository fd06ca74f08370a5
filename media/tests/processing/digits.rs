//! Digits sent and detected both ways, RFC 4733 and in-band.

use super::*;

#[test]
fn digits_are_sent_and_detected_both_ways() {
    let mut r = rig(32010..=32019, PCMU);
    r.op(r.ea, MediaOp::DetectDtmf(true));
    // A sends '5' as RFC 4733: start, updates, three end packets.
    for (i, (end, duration)) in [
        (false, 160),
        (false, 320),
        (true, 480),
        (true, 480),
        (true, 480),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = [0u8; 16];
        rtp::write_header(&mut p, 101, i == 0, 10 + i as u16, 8000, 0xa);
        EventPayload {
            event: 5,
            end,
            volume: 10,
            duration,
        }
        .write((&mut p[12..]).try_into().unwrap());
        r.a.send_to(&p, r.a_rtp).unwrap();
    }
    match r.event() {
        MediaEvent::Dtmf { id, report } => {
            assert_eq!(id, r.ea);
            assert_eq!(
                (report.digit.as_char(), report.duration_ms, report.method),
                ('5', 60, DtmfMethod::Rfc4733)
            );
        }
        e => panic!("{e:?}"),
    }
    // We send '9' to A as RFC 4733 with end-packet redundancy.
    r.op(
        r.ea,
        MediaOp::SendDigits {
            digits: vec![Digit::new('9')],
            duration_ms: 100,
        },
    );
    let mut buf = [0u8; 2048];
    let mut packets = Vec::new();
    while packets
        .iter()
        .filter(|(_, e): &&(u32, EventPayload)| e.end)
        .count()
        < 3
    {
        let (n, _) = r.a.recv_from(&mut buf).unwrap();
        assert_eq!(rtp::payload_type(&buf), 101);
        packets.push((
            rtp::timestamp(&buf),
            EventPayload::parse(&buf[12..n]).unwrap(),
        ));
    }
    assert!(
        packets
            .iter()
            .all(|(ts, e)| *ts == packets[0].0 && e.event == 9)
    );
    assert_eq!(packets.last().unwrap().1.duration, 800);
}

#[test]
fn inband_digits_for_a_peer_without_telephone_event() {
    let mut r = rig(32020..=32029, PCMU_ONLY);
    r.op(r.ea, MediaOp::DetectDtmf(true));
    let mut audio = tone::dtmf(Digit::new('#').unwrap(), 100);
    audio.extend(tone::silence(100));
    audio.extend(tone::dtmf(Digit::new('1').unwrap(), 80));
    audio.extend(tone::silence(60));
    send_audio(&r.a, r.a_rtp, &audio, 1, 0xa);
    let mut got = Vec::new();
    for _ in 0..2 {
        match r.event() {
            MediaEvent::Dtmf { report, .. } => got.push((report.digit.as_char(), report.method)),
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(got, [('#', DtmfMethod::InBand), ('1', DtmfMethod::InBand)]);
    // And digits we send to A are tones, since it has no telephone-event.
    r.op(
        r.ea,
        MediaOp::SendDigits {
            digits: vec![Digit::new('3')],
            duration_ms: 100,
        },
    );
    let mut buf = [0u8; 2048];
    let mut heard = Vec::new();
    for _ in 0..5 {
        let (n, _) = r.a.recv_from(&mut buf).unwrap();
        assert_eq!(rtp::payload_type(&buf), 0);
        let mut frame = [0i16; FRAME];
        Law::Ulaw.decode(&buf[12..n], &mut frame);
        heard.extend_from_slice(&frame);
    }
    let (row, col) = Digit::new('3').unwrap().frequencies();
    assert!(tone::share_at(&heard, row) + tone::share_at(&heard, col) > 0.9);
}
