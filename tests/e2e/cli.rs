//! The command line: `check-config` (defaults, file, environment, errors naming the key),
//! `telnyx-public-key`, `calls list` on a database created on first use, the data directory,
//! `--version`. Each runs with its temporary directory as HOME (and no XDG_DATA_HOME or
//! SWITCHBOARD_DATA_DIR), so the default data directory is the test's own.

use std::process::Command;

fn switchboard(
    args: &[&str],
    env: &[(&str, &str)],
    dir: &std::path::Path,
) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_DATA_HOME")
        .env_remove("SWITCHBOARD_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run switchboard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_merges_defaults_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, _) = switchboard(&["check-config"], &[], dir.path());
    assert!(ok);
    let data = dir.path().join(".local/share/switchboard");
    assert!(
        out.contains("rtp_ports = \"20000-29999\"")
            && out.contains(&format!("data_dir = \"{}\"", data.display()))
            && out.contains(&format!(
                "database_url = \"sqlite://{}/switchboard.db\"",
                data.display()
            )),
        "{out}"
    );

    let file = dir.path().join("sb.toml");
    std::fs::write(&file, "[media]\nrtp_ports = \"30000-30099\"\n[[trunks]]\nname = \"t\"\naddress = \"127.0.0.1:5070\"\n").unwrap();
    let env = [
        ("SWITCHBOARD_SIP__PUBLIC_IP", "203.0.113.7"),
        ("SWITCHBOARD_MEDIA__RTP_TIMEOUT_SECS", "15"),
    ];
    let (ok, out, err) = switchboard(
        &["check-config", "--config", file.to_str().unwrap()],
        &env,
        dir.path(),
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("rtp_ports = \"30000-30099\""),
        "file value: {out}"
    );
    assert!(
        out.contains("public_ip = \"203.0.113.7\""),
        "environment value: {out}"
    );
    assert!(out.contains("rtp_timeout_secs = 15"));
    assert!(out.contains("name = \"t\""));
}

/// Passwords, tokens, keys and credentials in URLs never appear in what check-config prints.
#[test]
fn check_config_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sb.toml");
    let secrets = [
        "trunk-pass-1",
        "user-pass-2",
        "auth-token-3",
        "signing-key-4",
        "key-secret-5",
        "admin-token-6",
        "db-pass-7",
        "url-pass-8",
        "digest-secret-9",
        "KEYtelnyx-secret-10",
        // A 32-byte Ed25519 seed, base64.
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "hook-pass-12",
        "stt-token-13",
    ];
    std::fs::write(
        &file,
        format!(
            "[sip]\ndigest_secret = \"{}\"\n[http]\nadmin_token = \"{}\"\n\
             [speech]\nhttp_token = \"{}\"\n\
             [storage]\ndatabase_url = \"postgres://sb:{}@db.example.com/sb\"\n\
             [[trunks]]\nname = \"t\"\naddress = \"127.0.0.1:5070\"\nusername = \"u\"\npassword = \"{}\"\n\
             [[users]]\nusername = \"alice\"\npassword = \"{}\"\n\
             [[accounts]]\nsid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"{}\"\ncaller_ids = [\"+1555*\"]\n\
             signing_key = \"{}\"\n\
             api_keys = [{{ sid = \"SK0123456789abcdef0123456789abcdef\", secret = \"{}\" }}]\n\
             telnyx_api_keys = [\"{}\"]\ntelnyx_private_key = \"{}\"\n\
             [[connections]]\nid = \"1494404757140276705\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
             webhook_event_url = \"https://app:{}@app.example.com/telnyx\"\n\
             [[numbers]]\nphone_number = \"+15551230000\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
             voice_url = \"https://app:{}@app.example.com/voice\"\n",
            secrets[8], secrets[5], secrets[12], secrets[6], secrets[0], secrets[1], secrets[2], secrets[3], secrets[4],
            secrets[9], secrets[10], secrets[11], secrets[7]
        ),
    )
    .unwrap();
    let (ok, out, err) = switchboard(
        &["check-config", "--config", file.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert!(ok, "{err}");
    for s in secrets {
        assert!(!out.contains(s), "{s} printed:\n{out}");
    }
    assert!(out.contains("password = \"***\"") && out.contains("auth_token = \"***\""));
    assert!(out.contains("postgres://***@db.example.com/sb"), "{out}");
    assert!(out.contains("https://***@app.example.com/voice"), "{out}");
    assert!(out.contains("https://***@app.example.com/telnyx"), "{out}");

    // The public half of the Telnyx key: the reference's vector for this seed.
    let (ok, out, err) = switchboard(
        &[
            "telnyx-public-key",
            "--config",
            file.to_str().unwrap(),
            "AC0123456789abcdef0123456789abcdef",
        ],
        &[],
        dir.path(),
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=");
    let (ok, _, err) = switchboard(
        &[
            "telnyx-public-key",
            "--config",
            file.to_str().unwrap(),
            "ACnone",
        ],
        &[],
        dir.path(),
    );
    assert!(!ok && err.contains("no account ACnone"), "{err}");
}

#[test]
fn check_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = switchboard(
        &["check-config"],
        &[("SWITCHBOARD_HTTP__LISTEN", "not an address")],
        dir.path(),
    );
    assert!(!ok);
    assert!(err.contains("http.listen"), "{err}");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[[routes]]\npattern = \"^1\"\ntrunk = \"nowhere\"\n").unwrap();
    let (ok, _, err) = switchboard(
        &["check-config", "--config", file.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert!(!ok);
    assert!(
        err.contains("routes[0].trunk") && err.contains("nowhere"),
        "{err}"
    );
    let (ok, _, err) = switchboard(
        &["check-config", "--config", "/does/not/exist.toml"],
        &[],
        dir.path(),
    );
    assert!(!ok && err.contains("does not exist"), "{err}");
    // Telnyx's parts: a connection of no account, a seed that is not 32 bytes.
    for (toml, key) in [
        (
            "[[connections]]\nid = \"1\"\naccount_sid = \"ACnone\"\nwebhook_event_url = \"http://a/\"\n",
            "connections[0].account_sid",
        ),
        (
            "[[accounts]]\nsid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"t\"\ncaller_ids = [\"+1555*\"]\ntelnyx_private_key = \"c2hvcnQ=\"\n",
            "accounts[0].telnyx_private_key",
        ),
    ] {
        std::fs::write(&file, toml).unwrap();
        let (ok, _, err) = switchboard(
            &["check-config", "--config", file.to_str().unwrap()],
            &[],
            dir.path(),
        );
        assert!(!ok && err.contains(key), "{key}: {err}");
    }
    // A misspelt key is named too.
    std::fs::write(&file, "[sip]\nlisen = []\n").unwrap();
    let (ok, _, err) = switchboard(
        &["check-config", "--config", file.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert!(!ok && err.contains("lisen"), "{err}");
}

#[test]
fn calls_list_creates_the_database_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = switchboard(&["calls", "list", "--json"], &[], dir.path());
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "[]");
    assert!(
        dir.path()
            .join(".local/share/switchboard/switchboard.db")
            .exists(),
        "SQLite file and directory created in the default data directory"
    );
    let (ok, out, _) = switchboard(&["calls", "list"], &[], dir.path());
    assert!(ok && out.starts_with("ID"), "{out}");
}

/// The data directory holds the database, recordings, caches and speech models whatever the
/// working directory: given with --data-dir (relative ones taken from the working directory),
/// SWITCHBOARD_DATA_DIR or the file's `data_dir`; paths given absolute stay where they are.
#[test]
fn data_paths_are_taken_from_the_data_directory_not_the_working_one() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let state = dir.path().join("state");
    let expect = |out: &str, data: &std::path::Path| {
        for line in [
            format!("data_dir = \"{}\"", data.display()),
            format!(
                "database_url = \"sqlite://{}/switchboard.db\"",
                data.display()
            ),
            format!("recordings_dir = \"{}/recordings\"", data.display()),
            format!("cache_dir = \"{}/cache\"", data.display()),
            format!(
                "quarantine_file = \"{}/store-quarantine.jsonl\"",
                data.display()
            ),
            format!("dir = \"{}/speech\"", data.display()),
        ] {
            assert!(out.contains(&line), "{line} in\n{out}");
        }
    };
    // --data-dir, relative: from the working directory.
    let (ok, out, err) = switchboard(&["check-config", "--data-dir", "../state"], &[], &elsewhere);
    assert!(ok, "{err}");
    expect(&out, &elsewhere.join("../state"));
    // The environment's.
    let state_text = state.to_str().unwrap();
    let (ok, out, _) = switchboard(
        &["check-config"],
        &[("SWITCHBOARD_DATA_DIR", state_text)],
        &elsewhere,
    );
    assert!(ok);
    expect(&out, &state);
    // The file's, and an absolute path the file gives stays.
    let file = dir.path().join("sb.toml");
    std::fs::write(
        &file,
        format!("data_dir = \"{state_text}\"\n[storage]\nrecordings_dir = \"/srv/recordings\"\n"),
    )
    .unwrap();
    let (ok, out, err) = switchboard(
        &["check-config", "--config", file.to_str().unwrap()],
        &[],
        &elsewhere,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("recordings_dir = \"/srv/recordings\""),
        "{out}"
    );
    assert!(
        out.contains(&format!("data_dir = \"{state_text}\"")),
        "{out}"
    );
    // The database is created there, not in the working directory.
    let (ok, out, err) = switchboard(
        &["calls", "list", "--json", "--data-dir", state_text],
        &[],
        &elsewhere,
    );
    assert!(ok && out.trim() == "[]", "{err}");
    assert!(state.join("switchboard.db").exists());
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing in the working directory"
    );
}

/// `switchboard` alone says what to do first: serve on the defaults, check a configuration.
#[test]
fn no_command_says_where_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = switchboard(&[], &[], dir.path());
    assert!(!ok, "{out}");
    for step in [
        "Start here:",
        "switchboard serve",
        "switchboard check-config -c FILE",
    ] {
        assert!(err.contains(step), "{step:?} not in:\n{err}");
    }
}

#[test]
fn version() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, _) = switchboard(&["--version"], &[], dir.path());
    assert!(ok);
    assert_eq!(
        out.trim(),
        format!("switchboard {}", env!("CARGO_PKG_VERSION"))
    );
}

/// The operator's readings of a running server's store: `calls tail`, started before the
/// call, prints it answered and then completed; `calls show` gives its record, its legs
/// (codec, media address, counters) and its events in order; `numbers` and `accounts` list the configuration's,
/// the account with the limits in force.
#[test]
fn the_operator_follows_a_call_and_reads_it_whole() {
    use crate::common::voice_app::{ACCOUNT, numbers_config};
    use crate::common::*;
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let net = Net::new(29);
    let config = net.two_trunks(&numbers_config(
        "http://127.0.0.1:9",
        &[("+15557770100", "voice_url = \"{base}/voice\"")],
    ));
    let server = Server::start(&net, &config);
    let data = net.path("data");
    // `switchboard ARGS --config …` against the server's store.
    let switchboard_on = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(args)
            .arg("--config")
            .arg(server.config_path())
            .env("SWITCHBOARD_DATA_DIR", &data)
            .output()
            .unwrap()
    };
    let read = |args: &[&str]| {
        let out = switchboard_on(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut tail = owned(
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["calls", "tail", "--config"])
            .arg(server.config_path())
            .env("SWITCHBOARD_DATA_DIR", &data)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });

    // A three-second call through the trunks.
    let callee = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", "1"],
    );
    let phone = rig::rtp_socket(&net, 5);
    let uac = uac_media_at(&net, &phone, 3000, "0\n      a=rtpmap:0 PCMU/8000");
    let run = run_sipp(
        &net,
        &uac,
        &net.ip(2),
        5060,
        server.sip,
        &["-s", "+15551234", "-m", "1"],
        Duration::from_secs(60),
    );
    assert!(run.status.success(), "{run:?}\n{}", server.log());
    drop(callee);
    let call = server.ended_calls(1).remove(0);
    let id = call["id"].as_str().unwrap().to_owned();

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen
        .iter()
        .any(|l: &String| l.contains(&id) && l.contains("completed"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("calls tail printed {seen:#?}"),
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    let states: Vec<&str> = (seen.iter())
        .filter(|l| l.contains(&id))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(states.last(), Some(&"completed"), "{seen:#?}");
    assert!(
        states.contains(&"in-progress"),
        "answered, then completed: {seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("+15550001 -> +15551234") || l.contains("-> +15551234")),
        "{seen:#?}"
    );

    // The call whole.
    let shown: serde_json::Value =
        serde_json::from_str(&read(&["calls", "show", &id, "--json"])).unwrap();
    assert_eq!(shown["call"]["status"], "completed", "{shown}");
    let legs = shown["call"]["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2, "{shown}");
    assert!(
        legs.iter()
            .all(|l| l["codec"].is_string() && l["remote_rtp"].is_string()),
        "{shown}"
    );
    let events = shown["events"].as_array().unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "in order: {shown}"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"answered") && kinds.last() == Some(&"hangup"),
        "{kinds:?}"
    );
    let text = read(&["calls", "show", &id]);
    assert!(
        text.contains(&id) && text.contains("leg caller") && text.contains("hangup"),
        "{text}"
    );
    let missing = switchboard_on(&["calls", "show", "CA00000000000000000000000000000000"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no call CA0000"));

    // Numbers and accounts.
    let numbers: serde_json::Value = serde_json::from_str(&read(&["numbers", "--json"])).unwrap();
    assert_eq!(numbers[0]["phone_number"], "+15557770100", "{numbers}");
    assert_eq!(numbers[0]["account_sid"], ACCOUNT, "{numbers}");
    assert_eq!(numbers[0]["source"], "config", "{numbers}");
    let accounts: serde_json::Value = serde_json::from_str(&read(&["accounts", "--json"])).unwrap();
    assert_eq!(accounts[0]["sid"], ACCOUNT, "{accounts}");
    assert_eq!(
        accounts[0]["max_calls"], 100,
        "the [limits] default: {accounts}"
    );
    assert_eq!(accounts[0]["configured_numbers"], 1, "{accounts}");
}

/// The example systemd unit (`config/switchboard.service`) is one systemd accepts, and its
/// commands are the binary's: with the binary and configuration paths pointed at the test's,
/// `systemd-analyze verify` finds nothing to say and the unit's pre-start check passes on a
/// good file and stops the unit on a bad one.
#[test]
fn the_example_systemd_unit_verifies_and_its_commands_run() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/switchboard.service"
    ))
    .unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, "[media]\nrtp_ports = \"30000-30099\"\n").unwrap();
    let unit = unit
        .replace(
            "/usr/local/bin/switchboard",
            env!("CARGO_BIN_EXE_switchboard"),
        )
        .replace(
            "/etc/switchboard/switchboard.toml",
            config.to_str().unwrap(),
        );
    let path = dir.path().join("switchboard.service");
    std::fs::write(&path, &unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/test.sh installs systemd)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");

    let pre = (unit.lines())
        .find_map(|l| l.strip_prefix("ExecStartPre="))
        .expect("a pre-start check");
    let run = |line: &str| {
        let mut words = line.split_whitespace();
        let status = Command::new(words.next().unwrap())
            .args(words)
            .env("HOME", dir.path())
            .env("SWITCHBOARD_DATA_DIR", dir.path())
            .output()
            .unwrap();
        (
            status.status.success(),
            String::from_utf8_lossy(&status.stderr).into_owned(),
        )
    };
    let (ok, err) = run(pre);
    assert!(ok, "{err}");
    std::fs::write(&config, "[media]\nrtp_ports = \"none\"\n").unwrap();
    let (ok, err) = run(pre);
    assert!(!ok && err.contains("media.rtp_ports"), "{err}");
    assert!(
        (unit.lines()).any(|l| l.starts_with("ExecStart=") && l.contains(" serve --config ")),
        "{unit}"
    );
}

/// The README and docs/ link only inside the repository, and every link finds its file.
#[test]
fn the_documentations_links_stay_in_the_repository_and_resolve() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    let mut links = 0;
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        let mut fenced = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            }
            if fenced {
                continue;
            }
            for piece in line.split("](").skip(1) {
                let target = piece.split(')').next().unwrap();
                let file = target.split('#').next().unwrap();
                assert!(
                    !target.contains("://") && !target.starts_with("mailto:"),
                    "{}: {target} leaves the repository",
                    doc.display()
                );
                if file.is_empty() {
                    continue;
                }
                let resolved = doc.parent().unwrap().join(file);
                assert!(resolved.exists(), "{}: {target} is missing", doc.display());
                links += 1;
            }
        }
    }
    assert!(links >= 10, "{links} links checked");
}

/// A server whose configuration declares no account makes one at its first start, prints its
/// SID, auth token and Telnyx API key, and keeps it in the data directory: the Twilio REST API
/// and the Telnyx API answer those credentials, and the next start prints the same account.
#[test]
fn a_server_without_accounts_makes_one_prints_it_and_keeps_it() {
    use crate::common::*;
    let net = Net::new(235);
    let field = |log: &str, key: &str| -> String {
        let line = (log.lines())
            .find(|l| l.contains("this server's own account"))
            .unwrap_or_else(|| panic!("no account printed:\n{log}"));
        let at = line.find(&format!("{key}=")).expect(key) + key.len() + 1;
        line[at..].split_whitespace().next().unwrap().to_owned()
    };
    let server = Server::start(&net, "");
    let log = server.log();
    let (sid, token, key) = (
        field(&log, "account_sid"),
        field(&log, "auth_token"),
        field(&log, "telnyx_api_key"),
    );
    assert_eq!(field(&log, "made_now"), "true");
    assert!(sid.starts_with("AC") && sid.len() == 34, "{sid}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let get =
        |path: String,
         auth: Box<dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Send>| {
            let url = format!("http://{}{path}", server.http);
            rt.block_on(async move {
                let clients = switchboard_control::infra::egress::Clients::default();
                let client = clients.for_url(&url, Default::default()).unwrap();
                let response = auth(client.get(url)).send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            })
        };
    let (sid_, token_) = (sid.clone(), token.clone());
    let (status, body) = get(
        format!("/2010-04-01/Accounts/{sid}.json"),
        Box::new(move |r| r.basic_auth(&sid_, Some(&token_))),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&sid), "{body}");
    let wrong = sid.clone();
    let (status, _) = get(
        format!("/2010-04-01/Accounts/{sid}.json"),
        Box::new(move |r| r.basic_auth(&wrong, Some("not-the-token"))),
    );
    assert_eq!(status, 401);
    let bearer = key.clone();
    let (status, body) = get(
        "/v2/call_control_applications".into(),
        Box::new(move |r| r.bearer_auth(&bearer)),
    );
    assert_eq!(status, 200, "{body}");
    drop(server);

    let again = Server::start(&net, "");
    let log = again.log();
    assert_eq!(field(&log, "account_sid"), sid);
    assert_eq!(field(&log, "auth_token"), token);
    assert_eq!(field(&log, "made_now"), "false");
}
