//! Calls driven by application code through the call core (`CallControl`), end to end over
//! loopback: the core with its SIP transport, media engine and SQLite store runs in the test,
//! SIPp plays the trunks, and the test's own UDP sockets are the phones' RTP, so what arrives
//! is checked sample by sample.

use crate::common;

use common::rig::*;

use common::{
    Net, SippServer, run_sipp, scenario, send_audio, send_rfc4733, uac_media_at, uas_media_at,
};
use std::net::{SocketAddr, UdpSocket};

use std::sync::Arc;

use std::time::Duration;

use switchboard_control::call::{
    Beep, CallCommand, EventKind, GatherSpec, JoinSpec, RecordOptions, RecordingOrigin, Rejection,
};
use switchboard_control::infra::store::{CallStatus, Direction, HangupBy};

use switchboard_control::services::prompts::Prompts;

use switchboard_control::services::prompts::tts::EspeakNg;

use switchboard_media::record::{Channels, RecordFormat};

use switchboard_media::{FRAME, Law, TapId, TapTracks, opus, rtp, tone};

use tokio::sync::mpsc;

mod codecs;
mod commands;
mod conference;
mod limits;

/// Speech-like: mostly voiced 20 ms frames with pauses between words, and no single tone.
fn assert_speech_like(samples: &[i16]) {
    let rms: Vec<f32> = samples
        .chunks(FRAME)
        .map(|f| (f.iter().map(|&s| (s as f32).powi(2)).sum::<f32>() / f.len() as f32).sqrt())
        .collect();
    let voiced = rms.iter().filter(|&&r| r > 300.0).count() as f32 / rms.len() as f32;
    assert!(voiced > 0.4, "voiced share {voiced}");
    assert!(rms.iter().any(|&r| r < 100.0), "no pause between words");
    for f in [200.0, 440.0, 1000.0] {
        assert!(tone::share_at(samples, f) < 0.3, "a tone at {f} Hz");
    }
}

/// Waits until what `phone` hears is `freq` (`hears`), or is no longer (`!hears`), judged on
/// 100 ms at a time: the moment a change the test asked for reaches the phone, rather than a
/// guess at how long that takes on a busy machine. Gives up after 10 s.
async fn until_hearing(phone: &Phone, freq: f32, hears: bool) {
    let rx = phone.rtp.try_clone().unwrap();
    blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let share = tone::share_at(&receive_audio(&rx, 5, Law::Ulaw).0, freq);
            if (share > 0.8) == hears {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{freq} Hz {} after 10 s (share {share})",
                if hears { "not heard" } else { "still heard" }
            );
        }
    })
    .await
    .unwrap();
}

/// Every phone sends its tone for a second while listening; what each heard.
async fn all_talk(phones: &[&Phone], freqs: &[f32], to: &[SocketAddr]) -> Vec<Vec<i16>> {
    for p in phones {
        drain(&p.rtp);
    }
    let mut talks = Vec::new();
    for ((p, &f), &dest) in phones.iter().zip(freqs).zip(to) {
        let (tx, rx) = (p.rtp.try_clone().unwrap(), p.rtp.try_clone().unwrap());
        talks.push((
            blocking(move || send_audio(&tx, dest, &tone::sines(&[f], 4000.0, 1000), 1)),
            blocking(move || receive_audio(&rx, 50, Law::Ulaw).0),
        ));
    }
    let mut heard = Vec::new();
    for (send, receive) in talks {
        send.await.unwrap();
        heard.push(receive.await.unwrap());
    }
    heard
}

/// Encodes 20 ms of `freq` (48 kHz) as the `i`th Opus packet of a stream, payload type 111.
fn opus_packet(encoder: &mut opus::Encoder, freq: f32, i: usize) -> Vec<u8> {
    let pcm: Vec<i16> = (0..960)
        .map(|j| {
            let t = (i * 960 + j) as f32 / 48000.0;
            ((std::f32::consts::TAU * freq * t).sin() * 8000.0) as i16
        })
        .collect();
    let mut p = vec![0u8; 1500];
    rtp::write_header(&mut p, 111, i == 0, i as u16, i as u32 * 960, 0x0b05);
    let n = encoder.encode(&pcm, &mut p[12..]).unwrap();
    p.truncate(12 + n);
    p
}

/// Receives `n` Opus packets; their audio at 8 kHz (every sixth sample) and where they came
/// from.
fn receive_opus(sock: &UdpSocket, n: usize) -> (Vec<i16>, SocketAddr) {
    let mut decoder = opus::Decoder::new(48000).unwrap();
    let (mut audio, mut from) = (Vec::new(), None);
    let mut buf = [0u8; 2048];
    for _ in 0..n {
        let (len, src) = sock.recv_from(&mut buf).expect("Opus from Switchboard");
        assert_eq!(rtp::payload_type(&buf[..len]), 111, "Opus payload type");
        from = Some(src);
        let mut pcm = [0i16; 5760];
        let got = decoder.decode(Some(&buf[12..len]), &mut pcm[..]).unwrap();
        audio.extend(pcm[..got].iter().step_by(6));
    }
    (audio, from.unwrap())
}
