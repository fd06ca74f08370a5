//! README's five-minute path, as written: its configuration (the carrier's address and source
//! pointed at a SIPp callee) and its Python snippets, taken from README.md itself, run with the
//! official SDKs against the server with only the base URL changed. The callee hears the
//! snippet's `<Say>`; the call ends `completed`; the Telnyx client reaches the same server.

use crate::common::rig::rtp_socket;
use crate::common::*;
use std::time::{Duration, Instant};
use switchboard_media::Law;

/// README's fenced block of `lang` whose text holds `marker`.
fn block(readme: &str, lang: &str, marker: &str) -> String {
    let fence = format!("```{lang}\n");
    (readme.split(&fence).skip(1))
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .find(|b| b.contains(marker))
        .unwrap_or_else(|| panic!("README has no {lang} block with {marker:?}"))
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// Runs `code` with the SDK's Python; its standard output.
fn run_python(python: &str, code: &str) -> String {
    let out = std::process::Command::new(python)
        .args(["-c", code])
        .env_remove("TWILIO_REGION")
        .env_remove("TWILIO_EDGE")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{code}\n{stdout}\n{stderr}");
    stdout.into_owned()
}

#[test]
fn the_readmes_configuration_and_snippets_place_a_call_through_the_carrier() {
    let (Some(twilio), Some(telnyx)) = (
        compat_env("SWITCHBOARD_TWILIO_PYTHON"),
        compat_env("SWITCHBOARD_TELNYX_PYTHON"),
    ) else {
        return;
    };
    let net = Net::new(80);
    let readme = readme();
    // The carrier is a SIPp callee on .3 whose media is this socket.
    let carrier = net.ip(3);
    let media = rtp_socket(&net, 3);
    let port = media.local_addr().unwrap().port().to_string();
    let written = uas_media_at(&net, &carrier, &port, &[("To:", "15551234567")]);
    let callee = SippServer::start(&net, &written, &carrier, 5060, &["-m", "1"]);

    let config = block(&readme, "toml", "[[trunks]]")
        .replace("198.51.100.10:5060", &format!("{carrier}:5060"))
        .replace("198.51.100.0/28", &format!("{carrier}/32"));
    assert_ne!(
        config,
        block(&readme, "toml", "[[trunks]]"),
        "the carrier is README's"
    );
    let server = Server::start(&net, &config);
    let base = format!("http://{}", server.http);

    let snippet = block(&readme, "python", "from twilio.rest import Client")
        .replace("http://127.0.0.1:8080", &base);
    let (twilio_part, telnyx_part) = snippet.split_at(snippet.find("import telnyx").unwrap());
    assert!(twilio_part.contains(&base) && telnyx_part.contains(&base));

    // The snippet places the call and prints its status; the callee answers, hears the <Say>.
    let printed = run_python(&twilio, twilio_part);
    let status = printed.trim();
    assert!(
        ["queued", "ringing", "in-progress", "completed"].contains(&status),
        "{printed}"
    );
    let mut heard = Vec::new();
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    media
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while start.elapsed() < Duration::from_secs(4) {
        if let Ok(n) = media.recv(&mut buf)
            && n > 12
            && buf[1] & 0x7f == 0
        {
            let mut pcm = vec![0i16; n - 12];
            Law::Ulaw.decode(&buf[12..n], &mut pcm);
            heard.extend_from_slice(&pcm);
        }
    }
    assert!(
        loud_windows(&heard) >= 5,
        "the callee heard {} loud windows of {} ms",
        loud_windows(&heard),
        heard.len() / 8
    );
    assert!(
        callee.finished_ok(Duration::from_secs(20)),
        "{}",
        server.log()
    );
    let account = "AC0123456789abcdef0123456789abcdef";
    assert!(readme.contains(account) && readme.contains("choose-a-secret"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = server.http(
            "GET",
            &format!("/2010-04-01/Accounts/{account}/Calls.json"),
            Some((account, "choose-a-secret")),
            "",
        );
        assert_eq!(code, 200, "{body}");
        let calls = json(&body)["calls"].clone();
        assert_eq!(calls.as_array().unwrap().len(), 1, "{body}");
        assert_eq!(calls[0]["to"], "+15551234567", "{body}");
        assert_eq!(calls[0]["from"], "+15557654321", "{body}");
        if calls[0]["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Telnyx's client, with README's key, reaches the same server (no call control
    // application yet: an empty list, where a wrong key is refused).
    let printed = run_python(&telnyx, telnyx_part);
    assert_eq!(printed.trim(), "0", "{printed}");
    let wrong = telnyx_part.replace("KEY0123456789ABCDEF_example", "KEYnot-a-key");
    let refused = std::process::Command::new(&telnyx)
        .args(["-c", &wrong])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// README's promise for a server with no file: the account it prints at its first start
/// serves README's snippets — Twilio's client (the account, its calls) and Telnyx's (its
/// applications) — with only the printed credentials in place of README's.
#[test]
fn the_account_a_first_start_prints_serves_the_readmes_clients() {
    let (Some(twilio), Some(telnyx)) = (
        compat_env("SWITCHBOARD_TWILIO_PYTHON"),
        compat_env("SWITCHBOARD_TELNYX_PYTHON"),
    ) else {
        return;
    };
    let net = Net::new(81);
    let server = Server::start(&net, "");
    let log = server.log();
    let printed = (log.lines())
        .find(|l| l.contains("this server's own account"))
        .unwrap_or_else(|| panic!("no account printed:\n{log}"));
    let field = |key: &str| -> String {
        let at = printed.find(&format!("{key}=")).expect(key) + key.len() + 1;
        printed[at..].split_whitespace().next().unwrap().to_owned()
    };
    let (sid, token, key) = (
        field("account_sid"),
        field("auth_token"),
        field("telnyx_api_key"),
    );
    let readme = readme();
    let snippet = block(&readme, "python", "from twilio.rest import Client")
        .replace("http://127.0.0.1:8080", &format!("http://{}", server.http))
        .replace("AC0123456789abcdef0123456789abcdef", &sid)
        .replace("choose-a-secret", &token)
        .replace("KEY0123456789ABCDEF_example", &key);
    let (twilio_part, telnyx_part) = snippet.split_at(snippet.find("import telnyx").unwrap());
    // The client as README makes it (no carrier here: no call is placed).
    let client = &twilio_part[..twilio_part.find("call = ").unwrap()];
    assert!(client.contains(&sid) && client.contains(&token), "{client}");
    let code = format!(
        "{client}print(client.api.v2010.accounts({sid:?}).fetch().status)\n\
         print(len(client.calls.list()))\n"
    );
    assert_eq!(run_python(&twilio, &code).trim(), "active\n0");
    assert_eq!(run_python(&telnyx, telnyx_part).trim(), "0");
}
