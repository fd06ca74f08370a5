//! SIPp as a test's trunks and phones: scenarios filled in, commands built, servers kept
//! running, runs waited for and their logs read.

use super::*;

/// A SIPp scenario from tests/sipp, with `{{KEY}}` placeholders filled in.
pub fn scenario(net: &Net, name: &str, vars: &[(&str, &str)]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name);
    let mut text =
        std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(!text.contains("{{"), "{name}: unfilled placeholder");
    let dst = net.path(name);
    std::fs::write(&dst, text).unwrap();
    dst
}

/// SIPp `<ereg>` checks that fail the call unless each `(where, regexp)` matches (POSIX ERE;
/// `where` is `msg` for the whole message, or a header name with its colon).
pub fn eregs(checks: &[(&str, &str)]) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    checks
        .iter()
        .map(|(place, regexp)| {
            let within = match *place {
                "msg" => r#"search_in="msg""#.to_owned(),
                header => format!(r#"search_in="hdr" header="{}""#, escape(header)),
            };
            format!(
                r#"<ereg regexp="{}" {within} check_it="true" assign_to="seen"/>"#,
                escape(regexp)
            )
        })
        .collect()
}

/// tests/sipp/uas_media_at.xml: a callee answering with `rtp_ip:rtp_port` as its media,
/// whose INVITE must match each `(where, regexp)` of `checks` (POSIX ERE; `where` is `msg` for
/// the whole message, or a header name with its colon), else SIPp fails the call and never
/// answers.
pub fn uas_media_at(net: &Net, rtp_ip: &str, rtp_port: &str, checks: &[(&str, &str)]) -> PathBuf {
    let checks = eregs(&[&[("msg", "INVITE")], checks].concat());
    scenario(
        net,
        "uas_media_at.xml",
        &[
            ("RTP_IP", rtp_ip),
            ("RTP_PORT", rtp_port),
            ("CHECKS", &checks),
        ],
    )
}

/// tests/sipp/uac_media_wait_bye.xml: a caller (PCMU) whose SDP points at `phone`, waiting for
/// the BYE; run with `-trace_logs`, it logs `CALLER-MEDIA m=audio PORT` from the 200's SDP,
/// which [`caller_side`] reads.
pub fn caller_telling_media(net: &Net, phone: &std::net::UdpSocket) -> PathBuf {
    let media = phone.local_addr().unwrap();
    let log = r#"<action><ereg regexp="m=audio [0-9]+" search_in="body" check_it="true" assign_to="m"/><log message="CALLER-MEDIA [$m]"/></action>"#;
    scenario(
        net,
        "uac_media_wait_bye.xml",
        &[
            ("RTP_IP", &media.ip().to_string()),
            ("RTP_PORT", &media.port().to_string()),
            ("AUDIO", "0\n      a=rtpmap:0 PCMU/8000"),
            ("HEADERS", ""),
            ("ANSWER_CHECKS", log),
            ("BYE_CHECKS", ""),
        ],
    )
}

/// Where Switchboard's media for a [`caller_telling_media`] caller is, once it is answered.
pub fn caller_side(net: &Net) -> SocketAddr {
    let port = sipp_logged(net.dir.path(), "CALLER-MEDIA m=audio ", "not answered");
    format!("{}:{port}", net.ip(1)).parse().unwrap()
}

/// tests/sipp/uac_media_at.xml: a caller whose SDP points at `phone` (the test's own RTP
/// socket) offering `audio` (its m= payload types and rtpmap lines), hanging up after `talk_ms`.
pub fn uac_media_at(net: &Net, phone: &std::net::UdpSocket, talk_ms: u32, audio: &str) -> PathBuf {
    let media = phone.local_addr().unwrap();
    scenario(
        net,
        "uac_media_at.xml",
        &[
            ("RTP_IP", &media.ip().to_string()),
            ("RTP_PORT", &media.port().to_string()),
            ("TALK_MS", &talk_ms.to_string()),
            ("AUDIO", audio),
        ],
    )
}

fn sipp_command(net: &Net, scenario: &Path, ip: &str, port: u16, args: &[&str]) -> Command {
    assert!(
        Command::new("sipp")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok(),
        "sipp not found: run scripts/test.sh, which installs the sip-tester package"
    );
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(scenario)
        .args([
            "-i",
            ip,
            "-p",
            &port.to_string(),
            "-mi",
            ip,
            "-nostdin",
            "-trace_err",
            "-trace_screen",
        ])
        .args(args)
        .current_dir(net.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SIPp reports scenario errors on stderr; keep them beside its logs.
    let stem = scenario.file_stem().unwrap().to_string_lossy().into_owned();
    let err = std::fs::File::create(net.path(&format!("{stem}-{ip}-{port}.stderr")))
        .expect("stderr file");
    cmd.stderr(err);
    cmd
}

/// A callee on carrier-b (SIPp at .3) whose media is `phone`; the returned function waits for the call
/// and gives Switchboard's media address for it (from the INVITE's SDP, which the callee logs).
pub fn callee_telling_media(
    net: &Net,
    phone: &std::net::UdpSocket,
) -> (SippServer, impl Fn() -> SocketAddr + use<>) {
    phone_telling_media(net, phone, (&net.ip(3), 5060))
}

/// As [`callee_telling_media`], for a phone whose SIP is at `sip` (its RTP is `phone`'s
/// address, whatever the IP).
pub fn phone_telling_media(
    net: &Net,
    phone: &std::net::UdpSocket,
    sip: (&str, u16),
) -> (SippServer, impl Fn() -> SocketAddr + use<>) {
    let media = phone.local_addr().unwrap();
    let log = r#"<ereg regexp="m=audio ([0-9]+)" search_in="body" check_it="true" assign_to="seen,port"/><log message="RTP-PORT [$port]"/>"#;
    let uas = scenario(
        net,
        "uas_media_at.xml",
        &[
            ("RTP_IP", &media.ip().to_string()),
            ("RTP_PORT", &media.port().to_string()),
            ("CHECKS", log),
        ],
    );
    let sipp = SippServer::start(net, &uas, sip.0, sip.1, &["-m", "1", "-trace_logs"]);
    let (dir, ip) = (net.dir.path().to_owned(), net.ip(1));
    let media = move || {
        let port = sipp_logged(&dir, "RTP-PORT ", "the callee was not called");
        let port: u16 = port.parse().expect("a port");
        format!("{ip}:{port}").parse().unwrap()
    };
    (sipp, media)
}

/// The first word after `marker` in a `<log>` line of a SIPp run with `-trace_logs` in `dir`,
/// waited for up to 15 s; panics with `missing` and the directory's files otherwise.
pub fn sipp_logged(dir: &Path, marker: &str, missing: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with("_logs.log") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if let Some(word) = text
                    .split(marker)
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                {
                    return word.to_owned();
                }
            }
        }
        if Instant::now() > deadline {
            let files: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .map(|e| {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    format!("{:?}: {}", e.file_name(), &text[..text.len().min(2000)])
                })
                .collect();
            panic!("{missing}: {files:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A SIPp server (callee trunk or phone) running until dropped.
pub struct SippServer {
    child: Child,
    /// Where its error log goes, printed when it fails.
    dir: PathBuf,
}

impl SippServer {
    pub fn start(net: &Net, scenario: &Path, ip: &str, port: u16, args: &[&str]) -> Self {
        let child = owned(
            sipp_command(net, scenario, ip, port, args)
                .spawn()
                .expect("start sipp"),
        );
        // SIPp binds its sockets at once; give it a moment before calls arrive.
        std::thread::sleep(Duration::from_millis(300));
        Self {
            child,
            dir: net.dir.path().to_owned(),
        }
    }
}

impl SippServer {
    /// Waits for a SIPp started with `-m N` to finish its calls; `true` when all succeeded.
    /// When not, what SIPp said about it is printed (the test's output shows it).
    pub fn finished_ok(mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut ok = false;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                ok = status.success();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !ok {
            for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with("_errors.log") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    eprintln!("--- {name} ---\n{text}");
                }
            }
        }
        ok
    }
}

impl Drop for SippServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct SippRun {
    pub status: ExitStatus,
    pub successful: u64,
    pub failed: u64,
    pub errors: String,
}

/// Runs a SIPp client to completion (or the timeout) and reads its statistics.
pub fn run_sipp(
    net: &Net,
    scenario: &Path,
    ip: &str,
    port: u16,
    target: SocketAddr,
    args: &[&str],
    timeout: Duration,
) -> SippRun {
    let mut cmd = sipp_command(net, scenario, ip, port, args);
    cmd.arg(target.to_string()).args([
        "-timeout",
        &format!("{}s", timeout.as_secs()),
        "-timeout_error",
    ]);
    let status = owned(cmd.spawn().expect("run sipp"))
        .wait()
        .expect("run sipp");
    let stem = scenario.file_stem().unwrap().to_string_lossy().into_owned();
    let newest = |suffix: &str| -> String {
        let mut found: Vec<PathBuf> = std::fs::read_dir(net.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with(&format!("{stem}_")) && n.ends_with(suffix)
            })
            .collect();
        found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        found
            .last()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    };
    let screen = newest("_screen.log");
    let count = |label: &str| {
        screen
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split('|').nth(2))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    SippRun {
        status,
        successful: count("Successful call"),
        failed: count("Failed call"),
        errors: newest("_errors.log"),
    }
}

/// tests/sipp/uas_challenge.xml at carrier-b's address: a far end that challenges the INVITE
/// Switchboard sends to `sip:+15551234@` it (realm `carrier-b`) and takes only the RFC 2617
/// answer (no qop) of user `sbuser` with password `sbpass`; anything else gets 403.
pub fn challenging_uas(net: &Net) -> PathBuf {
    use md5::{Digest, Md5};
    let h = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let nonce = "4f1c2b7e9a";
    let ha1 = h("sbuser:carrier-b:sbpass".to_owned());
    let ha2 = h(format!("INVITE:sip:+15551234@{}:5060", net.ip(3)));
    let response = h(format!("{ha1}:{nonce}:{ha2}"));
    scenario(
        net,
        "uas_challenge.xml",
        &[("NONCE", nonce), ("RESPONSE", &response)],
    )
}
