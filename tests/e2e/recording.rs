//! Recording by the real binary: a route that records its calls, and a recording that
//! survives `kill -9` of the server in the middle of the call.

use crate::common;

use common::*;
use std::path::PathBuf;
use std::time::Duration;
use switchboard_control::infra::store::Store;

/// The two trunks, with the route to carrier-b recording its calls in two channels.
fn recording_config(net: &Net) -> String {
    format!(
        "[[trunks]]\nname = \"carrier-a\"\naddress = \"{a}:5060\"\ninbound_sources = [\"{a}/32\"]\n\
         [[trunks]]\nname = \"carrier-b\"\naddress = \"{b}:5060\"\ninbound_sources = [\"{b}/32\"]\n\
         [[routes]]\npattern = \"^\\\\+?1555\"\ntrunk = \"carrier-b\"\nrecord = \"dual\"\n",
        a = net.ip(2),
        b = net.ip(3),
    )
}

/// The WAV files under the recordings directory (data/recordings/<call>/<recording>.wav).
fn recordings(net: &Net) -> Vec<PathBuf> {
    let root = net.path("data/recordings");
    let mut found = Vec::new();
    for call in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(call.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            found.push(f.path());
        }
    }
    found
}

/// Loud samples on the left of a stereo 16-bit WAV (its data as far as it goes).
fn left_loud(wav: &[u8]) -> usize {
    let data = wav.get(44..).unwrap_or_default();
    let samples = data
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]));
    samples.step_by(2).filter(|s| s.abs() > 500).count()
}

fn header_data_len(wav: &[u8]) -> usize {
    u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize
}

#[test]
fn a_recording_survives_kill_9_of_the_server_mid_call() {
    let net = Net::new(46);
    let config = recording_config(&net);
    let server = Server::start(&net, &config);
    let uas = scenario(&net, "uas_answer.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-mp", "6000", "-rtp_echo"]);
    let uac = scenario(&net, "uac_pcap.xml", &[]);
    // The call dies with the server; the caller is stopped at the end (registered, so a
    // failing test kills it too).
    let mut caller = std::process::Command::new("sipp")
        .current_dir(net.dir.path())
        .args(["-sf"])
        .arg(&uac)
        .args([
            "-i",
            &net.ip(2),
            "-p",
            "5060",
            "-mp",
            "7000",
            "-s",
            "+15551234",
            "-m",
            "1",
        ])
        .args(["-nostdin", "-timeout", "12s", "-timeout_error"])
        .arg(server.sip.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map(owned)
        .unwrap();

    // Once the recording on disk holds half a second of the caller's voice, the server is
    // killed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let path = loop {
        let files = recordings(&net);
        assert!(files.len() <= 1, "one recording in progress: {files:?}");
        if let Some(f) = files.first()
            && std::fs::read(f).is_ok_and(|wav| left_loud(&wav) > 4000)
        {
            break f.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no recording of the caller's voice\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    server.kill();
    let crashed = std::fs::read(&path).unwrap();
    assert!(
        crashed.len() > 44 + 16_000,
        "{} bytes written",
        crashed.len()
    );
    assert!(
        header_data_len(&crashed) < crashed.len() - 44,
        "the header lags the data"
    );

    // On restart the file is made whole and the recording completed, with its event.
    let server = Server::start(&net, &config);
    let repaired = std::fs::read(&path).unwrap();
    assert_eq!(header_data_len(&repaired), repaired.len() - 44);
    let left_loud = left_loud(&repaired);
    assert!(
        left_loud > 4000,
        "the caller's audio is on the left: {left_loud}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(&format!(
            "sqlite://{}",
            net.path("data/switchboard.db").display()
        ))
        .await
        .unwrap();
        let call_id = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let rows = store.recordings_of(call_id).await.unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.status.as_str(), row.channels), ("completed", 2));
        // Its length is what the repaired file holds (8 kHz, two 16-bit channels).
        let held_ms = (repaired.len() as u64 - 44) * 1000 / 32_000;
        assert!(
            row.duration_ms.abs_diff(held_ms) <= 20 && held_ms > 500,
            "{} ms for a file of {held_ms} ms",
            row.duration_ms
        );
        assert_eq!(row.size_bytes, repaired.len() as u64);
        let events = store.call_events(call_id).await.unwrap();
        assert!(events.iter().any(|e| e.kind == "recording-saved"));
        // The call's CDR, left in progress by the kill, is closed by the restarted node.
        let call = store.get_call(call_id).await.unwrap().expect("the CDR");
        assert_eq!(
            (call.status.as_str(), call.hangup_cause.as_deref()),
            ("failed", Some("restart"))
        );
        assert!(call.ended_at.is_some());
    });
    drop(server);
    let _ = caller.kill();
    let _ = caller.wait();
}
