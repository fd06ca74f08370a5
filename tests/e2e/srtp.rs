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

/// A caller on carrier-a (SIPp, tests/sipp/uac_srtp.xml) offering SRTP only with a fresh
/// AES_CM_128_HMAC_SHA1_80 key, its media the returned socket; it hangs up after `talk_ms`.
fn srtp_caller(
    net: &Net,
    talk_ms: u32,
) -> (
    UdpSocket,
    switchboard_media::srtp::MasterKey,
    std::path::PathBuf,
) {
    use switchboard_media::srtp::{MasterKey, Suite};
    let rtp = rig::rtp_socket(net, 5);
    let key = MasterKey::generate(Suite::AesCm128HmacSha1_80);
    let media = rtp.local_addr().unwrap();
    let uac = scenario(
        net,
        "uac_srtp.xml",
        &[
            ("RTP_IP", &media.ip().to_string()),
            ("RTP_PORT", &media.port().to_string()),
            ("KEY", &STANDARD.encode(key.material())),
            ("TALK_MS", &talk_ms.to_string()),
        ],
    );
    (rtp, key, uac)
}

/// The port and key of Switchboard's SRTP answer, as the caller logged them.
fn srtp_answer(net: &Net) -> (String, Vec<u8>) {
    let dir = net.dir.path();
    let port = sipp_logged(dir, "SRTP-ANSWER ", "the caller got no SRTP answer");
    let key = sipp_logged(dir, &format!("SRTP-ANSWER {port} "), "no key in the answer");
    (port, STANDARD.decode(key).expect("a base64 key"))
}

#[test]
fn a_caller_on_an_srtp_trunk_and_a_plain_callee_hear_each_other() {
    let net = Net::new(155);
    let server = Server::start(&net, &net.two_trunks_keyed("srtp = \"required\"", ""));

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

    let (caller_rtp, ours, uac) = srtp_caller(&net, 5000);
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
        let (port, theirs) = srtp_answer(&net);
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

/// A plain offer from a trunk that requires SRTP, or one whose key is short or malformed, and
/// an SRTP-only offer from a trunk that does not do SRTP, all get 488 before anyone is called.
#[test]
fn offers_that_break_a_trunks_srtp_policy_get_488() {
    let net = Net::new(156);
    let server = Server::start(&net, &net.two_trunks_keyed("srtp = \"required\"", ""));
    let line = |key: &[u8]| {
        let key = STANDARD.encode(key);
        format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}")
    };
    let (key, short) = (line(&[7; 30]), line(&[7; 29]));
    let malformed = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%%%%notbase64%%%%";
    // Plain RTP from the trunk that requires SRTP, and SRTP keyed with a key one byte short or
    // not base64; SRTP only from the plain trunk.
    let offers = [
        (2, "RTP/AVP", ""),
        (2, "RTP/SAVP", short.as_str()),
        (2, "RTP/SAVP", malformed),
        (3, "RTP/SAVP", key.as_str()),
    ];
    for (from, profile, crypto) in offers {
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
    let calls = server.ended_calls(4);
    for call in &calls {
        assert_eq!(call["sip_code"], 488, "{call}");
        assert_eq!(
            call["trunk_out"],
            serde_json::Value::Null,
            "no one was called: {call}"
        );
    }
}

/// A baresip softphone: its own config directory, SIP at `host`:5060 (and TLS at 5061 with a
/// certificate `{name}.pem` when one was issued), sending a tone and dumping what it hears to
/// WAV files there (the sndfile module). `account` is its accounts line; `dial`, when given, is
/// called at start.
struct Baresip {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Baresip {
    fn start(
        net: &Net,
        name: &str,
        host: u8,
        account: &str,
        tone: f32,
        dial: Option<&str>,
    ) -> Self {
        let ip = net.ip(host);
        let dir = net.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let wav = dir.join("tone.wav");
        write_wav(&wav, &tone::sines(&[tone], 8000.0, 8000));
        let mut config = format!(
            "poll_method epoll\nsip_listen {ip}:5060\nnet_interface {ip}\n\
             audio_player alsa,null\naudio_alert alsa,null\n\
             audio_source aufile,{wav}\nmodule_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule aufile.so\nmodule alsa.so\nmodule sndfile.so\n\
             module srtp.so\nmodule_app account.so\nmodule_app menu.so\n\
             snd_path {dir}\n",
            wav = wav.display(),
            dir = dir.display()
        );
        // TLS: trust the test's CA, and present a certificate (its key appended, as libre
        // reads it) to listen on 5061.
        let (ca, cert) = (net.path("ca.pem"), net.path(&format!("{name}.pem")));
        if ca.exists() {
            config += &format!("sip_cafile {}\n", ca.display());
        }
        if cert.exists() {
            let key = std::fs::read_to_string(net.path(&format!("{name}.key"))).unwrap();
            let both = dir.join("cert+key.pem");
            std::fs::write(&both, std::fs::read_to_string(&cert).unwrap() + &key).unwrap();
            config += &format!("sip_certificate {}\n", both.display());
        }
        std::fs::write(dir.join("config"), config).unwrap();
        std::fs::write(dir.join("accounts"), format!("{account}\n")).unwrap();
        let log = std::fs::File::create(dir.join("out.log")).unwrap();
        let mut cmd = std::process::Command::new("baresip");
        cmd.arg("-f").arg(&dir).args(["-t", "12", "-s"]);
        if let Some(uri) = dial {
            cmd.args(["-e", &format!("/dial {uri}")]);
        }
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("baresip (scripts/test.sh installs baresip-core)");
        Self {
            child: owned(child),
            dir,
        }
    }

    /// Its output, and the files it wrote with their sizes.
    fn log(&self) -> String {
        let files: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| {
                format!(
                    "{:?} {}",
                    e.file_name(),
                    e.metadata().map_or(0, |m| m.len())
                )
            })
            .collect();
        let out = std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default();
        format!("{out}\nfiles: {files:?}")
    }

    /// Waits for it to quit (its `-t`), then reads what it heard.
    fn heard(mut self) -> (Vec<i16>, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && self.child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        let dumped = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"));
        let audio = dumped.map(|p| read_wav(&p)).unwrap_or_default();
        (audio, self.log())
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// That a phone's dump holds the other's tone: two seconds or more of it, of about eight.
fn hears(who: &str, heard: &[i16], freq: f32, logs: &str) {
    let windows = windows_of(heard, freq);
    assert!(
        windows >= 20,
        "{who} hears {freq} Hz ({windows} of {} windows)\n{logs}",
        heard.len() / 800
    );
}

/// The samples of a 16-bit mono WAV file (its `data` chunk, wherever it lies).
fn read_wav(path: &std::path::Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if &bytes[at..at + 4] == b"data" {
            let end = (at + 8 + len).min(bytes.len());
            return bytes[at + 8..end]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
        }
        at += 8 + len + (len & 1);
    }
    Vec::new()
}

/// Two baresip softphones, real SDES peers, each on a trunk of its own: the caller's trunk
/// requires SRTP (baresip offers RTP/SAVP, srtp-mand), the callee's takes it when offered
/// (Switchboard offers keys beside RTP/AVP, baresip in its optional "srtp" mode takes them up).
/// Each leg has its own keys; the relay decrypts one and encrypts for the other. Each phone
/// hears the other's tone, and says it did SRTP. (baresip's RTP leaves from 127.0.0.1 whatever
/// address its SDP gives, as from behind a NAT: the trunks let a source latch in its stead.)
#[test]
fn two_baresip_phones_on_srtp_trunks_hear_each_other() {
    let net = Net::new(157);
    let config = net.two_trunks_keyed(
        "srtp = \"required\"\nrtp_source = \"learn-any\"",
        "srtp = \"optional\"\nrtp_source = \"learn-any\"",
    );
    let server = Server::start(&net, &config);
    let account = |user: &str, host: u8, mediaenc: &str| {
        let ip = net.ip(host);
        format!("<sip:{user}@{ip}:5060>;regint=0;mediaenc={mediaenc};answermode=auto")
    };
    let callee = Baresip::start(
        &net,
        "callee",
        3,
        &account("+15551234", 3, "srtp"),
        1000.0,
        None,
    );
    std::thread::sleep(Duration::from_millis(500));
    let target = format!("sip:+15551234@{}", server.sip);
    let caller = Baresip::start(
        &net,
        "caller",
        2,
        &account("+15550001", 2, "srtp-mand"),
        600.0,
        Some(&target),
    );
    let (caller_heard, caller_log) = caller.heard();
    let (callee_heard, callee_log) = callee.heard();
    let logs = format!(
        "caller:\n{caller_log}\ncallee:\n{callee_log}\nserver:\n{}",
        server.log()
    );
    assert!(
        caller_log.contains("SRTP is Enabled") && callee_log.contains("SRTP is Enabled"),
        "{logs}"
    );
    hears("the caller", &caller_heard, 1000.0, &logs);
    hears("the callee", &callee_heard, 600.0, &logs);
    let call = server.ended_calls(1).remove(0);
    assert_eq!(call["status"], "completed", "{call}");
}

/// An application's call on an SRTP trunk: the audio Switchboard generates itself (a TwiML
/// `<Play>`, on the media clock rather than the relay) reaches the caller sealed with the
/// answer's key, and the caller's SRTP DTMF (RFC 4733) ends the `<Gather>` it plays in.
#[test]
fn an_application_plays_to_an_srtp_caller_and_gathers_its_digits() {
    use axum::Router;
    use common::voice_app::{App, answers, numbers_config, wav_1khz};
    let net = Net::new(158);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let routes = Router::new()
        .route(
            "/voice",
            answers(r#"<Response><Gather numDigits="1" action="/gathered" timeout="8"><Play loop="4">tone.wav</Play></Gather></Response>"#),
        )
        .route("/gathered", answers("<Response><Pause length=\"5\"/></Response>"))
        .route(
            "/tone.wav",
            axum::routing::get(|| async { ([("content-type", "audio/wav")], wav_1khz()) }),
        );
    let app: App = rt.block_on(App::serve(&net.ip(9), routes));
    let number = "+17775550100";
    let mut config = numbers_config(&app.base, &[(number, "voice_url = \"{base}/voice\"")]);
    config += &format!(
        "[[trunks]]\nname = \"carrier-a\"\naddress = \"{a}:5060\"\ninbound_sources = [\"{a}/32\"]\n\
         srtp = \"required\"\n",
        a = net.ip(2),
    );
    let server = Server::start(&net, &config);
    let (caller_rtp, ours, uac) = srtp_caller(&net, 4000);
    std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            let args = ["-m", "1", "-s", number, "-trace_logs"];
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
        let (_, theirs) = srtp_answer(&net);
        let (heard, failed, from) = hear_srtp(&caller_rtp, &mut srtp(&theirs), 1500);
        assert_eq!(
            failed, 0,
            "every packet authenticates with the answer's key"
        );
        assert!(
            windows_of(&heard, 1000.0) >= 10,
            "the caller hears the played 1 kHz ({} of {} windows)\n{}",
            windows_of(&heard, 1000.0),
            heard.len() / 800,
            server.log()
        );
        // The caller keys 5 as SRTP telephone-events; the Gather takes it.
        let mut ctx = srtp(ours.material());
        for (n, end) in [(0u16, false), (1, false), (2, true), (3, true)] {
            let mut p = vec![0u8; 16];
            rtp::write_header(&mut p, 101, n == 0, 500 + n, 80_000, 0x5eed);
            let duration = (160 * (n + 1)).to_be_bytes();
            p[12..16].copy_from_slice(&[
                5,
                if end { 0x8a } else { 0x0a },
                duration[0],
                duration[1],
            ]);
            caller_rtp
                .send_to(&ctx.encrypt_rtp(&p).unwrap(), from.unwrap())
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let run = call.join().unwrap();
        assert!(run.status.success(), "{run:?}\n{}", server.log());
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let gathered = loop {
        let hits = app.hits.lock().unwrap().clone();
        if let Some(hit) = hits.into_iter().find(|h| h.path.starts_with("/gathered")) {
            break hit;
        }
        assert!(Instant::now() < deadline, "no /gathered\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(gathered.param("Digits"), Some("5"), "{:?}", gathered.params);
}

/// SIP over TLS and SRTP together, between two baresip softphones: alice registers over TLS
/// (Switchboard's certificate checked against the test's CA) and takes calls in baresip's
/// optional SRTP mode; bob, over TLS too and answering the digest challenge, calls a number
/// routed to alice with SRTP mandatory. Switchboard's INVITE reaches alice over the TLS
/// connection she registered on. Each hears the other's tone.
#[test]
fn a_baresip_caller_over_tls_with_srtp_reaches_a_baresip_registered_over_tls() {
    let net = Net::new(159);
    let sb = net.ip(1);
    let ca = crate::sip_tls::test_ca(&net);
    crate::sip_tls::issue(&net, &ca, &[&sb], "switchboard");
    crate::sip_tls::issue(&net, &ca, &[&net.ip(3)], "alice");
    let path = |f: &str| net.path(f).display().to_string();
    let config = "[[users]]\nusername = \"alice\"\npassword = \"secret\"\n\
         [[users]]\nusername = \"bob\"\npassword = \"secret\"\n\
         [[routes]]\npattern = \"^\\\\+?1555\"\nuser = \"alice\"\n";
    let listen = format!("[\"udp:{sb}:5060\", \"tcp:{sb}:5060\", \"tls:{sb}:5061\"]");
    let server = Server::start_with(
        &net,
        config,
        &[
            ("SWITCHBOARD_SIP__LISTEN", &listen),
            ("SWITCHBOARD_SIP__TLS_CERTIFICATE", &path("switchboard.pem")),
            ("SWITCHBOARD_SIP__TLS_KEY", &path("switchboard.key")),
            ("SWITCHBOARD_SIP__TLS_CA_FILE", &path("ca.pem")),
            ("SWITCHBOARD_MEDIA__USER_SRTP", "optional"),
        ],
    );
    let registrar = format!("{sb}:5061;transport=tls");
    let alice =
        format!("<sip:alice@{registrar}>;auth_pass=secret;regint=60;mediaenc=srtp;answermode=auto");
    let callee = Baresip::start(&net, "alice", 3, &alice, 1000.0, None);
    // Once alice is registered, bob calls.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !callee.log().contains("200 OK") || !callee.log().contains("REGISTER") {
        assert!(
            Instant::now() < deadline,
            "alice never registered\n{}",
            callee.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let bob = format!("<sip:bob@{registrar}>;auth_pass=secret;regint=0;mediaenc=srtp-mand");
    let target = format!("sip:+15551234@{registrar}");
    let caller = Baresip::start(&net, "bob", 2, &bob, 600.0, Some(&target));
    let (caller_heard, caller_log) = caller.heard();
    let (callee_heard, callee_log) = callee.heard();
    let logs = format!(
        "bob:\n{caller_log}\nalice:\n{callee_log}\nserver:\n{}",
        server.log()
    );
    assert!(
        caller_log.contains("SRTP is Enabled") && callee_log.contains("SRTP is Enabled"),
        "{logs}"
    );
    // baresip's SIP trace names each message's transport: both INVITEs went over TLS, alice's
    // on the connection of her REGISTER.
    let sent_over = |log: &str, message: &str| -> Option<String> {
        let lines: Vec<&str> = log.lines().map(str::trim).collect();
        let at = lines.windows(2).find(|w| w[1].starts_with(message))?;
        at[0].strip_prefix("TLS ").map(str::to_owned)
    };
    assert!(
        sent_over(&caller_log, "INVITE sip:+15551234").is_some(),
        "{logs}"
    );
    let registered = sent_over(&callee_log, "REGISTER sip:").expect("REGISTER over TLS");
    let invited = sent_over(&callee_log, "INVITE sip:alice").expect("INVITE over TLS");
    let flow = |trace: &str| {
        let (from, to) = trace.split_once(" -> ").unwrap();
        let mut ends = [from.to_owned(), to.to_owned()];
        ends.sort();
        ends
    };
    assert_eq!(flow(&registered), flow(&invited), "{logs}");
    hears("bob", &caller_heard, 1000.0, &logs);
    hears("alice", &callee_heard, 600.0, &logs);
    let call = server.ended_calls(1).remove(0);
    assert_eq!(call["status"], "completed", "{call}");
    assert_eq!(call["user_out"], "alice", "{call}");
}
