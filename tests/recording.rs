//! Recording by the real binary: a route that records its calls, and a recording that
//! survives `kill -9` of the server in the middle of the call.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::Duration;
use switchboard_control::store::Store;

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
    let caller = {
        let (uac, ip, sip) = (uac.clone(), net.ip(2), server.sip);
        let dir = net.dir.path().to_owned();
        std::thread::spawn(move || {
            // The call dies with the server; SIPp gives up on its own.
            let _ = std::process::Command::new("sipp")
                .current_dir(dir)
                .args(["-sf"])
                .arg(&uac)
                .args([
                    "-i",
                    &ip,
                    "-p",
                    "5060",
                    "-mp",
                    "7000",
                    "-s",
                    "+15551234",
                    "-m",
                    "1",
                ])
                .args(["-nostdin", "-bg", "-timeout", "12s", "-timeout_error"])
                .arg(sip.to_string())
                .status();
        })
    };

    // Three seconds into the call the server is killed.
    std::thread::sleep(Duration::from_secs(4));
    let files = recordings(&net);
    assert_eq!(files.len(), 1, "one recording in progress");
    let path = files[0].clone();
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
    let samples: Vec<i16> = repaired[44..]
        .chunks(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let left_loud = samples.iter().step_by(2).filter(|s| s.abs() > 500).count();
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
        assert!(
            (2500..=4500).contains(&row.duration_ms),
            "{} ms",
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
    caller.join().unwrap();
}
