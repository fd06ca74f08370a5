//! The log as an operator's pipeline reads it: JSON lines, each about a call carrying the
//! call's id and account, and a level changed at run time through the admin API.

use crate::common::voice_app::{ACCOUNT, TOKEN};
use crate::common::*;
use serde_json::Value;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);
const ADMIN: &str = "Authorization: Bearer log-admin-token\r\nContent-Type: application/json\r\n";

/// The log's lines as JSON; every line must be one object.
fn lines(server: &Server) -> Vec<Value> {
    (server.log().lines())
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The `call` span a line was logged in: its id and account.
fn call_of(line: &Value) -> Option<(&str, Option<&str>)> {
    let spans = line["spans"].as_array()?;
    let call = spans.iter().find(|s| s["name"] == "call")?;
    Some((call["id"].as_str()?, call["account"].as_str()))
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

/// Lines logged in `call`'s span.
fn about<'a>(lines: &'a [Value], call: &str) -> Vec<&'a Value> {
    (lines.iter())
        .filter(|l| call_of(l).is_some_and(|(id, _)| id == call))
        .collect()
}

fn level(server: &Server, new: Option<&str>) -> (u16, Value) {
    let (method, body) = match new {
        Some(level) => ("PUT", serde_json::json!({ "level": level }).to_string()),
        None => ("GET", String::new()),
    };
    let (status, body) = server.request(method, "/admin/v1/log", ADMIN, body.as_bytes());
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// With `log.format = "json"` every line the server writes is one JSON object; a routed call's
/// lines (from "trying" to "call ended") carry its id in the `call` span, an application's
/// call its account too, and the lines of the calls the shutdown hangs up name them. The
/// operator reads and changes the level through the admin API: at `debug` a stray datagram's
/// debug line appears, at `warn` the next call logs no info line, and a filter that does not
/// parse is refused with 400 and changes nothing.
#[test]
fn json_lines_name_their_call_and_the_level_changes_at_run_time() {
    let net = Net::new(163);
    let account = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n"
    );
    let mut server = Server::start_with(
        &net,
        &net.two_trunks(&account),
        &[
            ("SWITCHBOARD_LOG__FORMAT", "json"),
            ("SWITCHBOARD_HTTP__ADMIN_TOKEN", "log-admin-token"),
            ("SWITCHBOARD_SHUTDOWN__DRAIN_SECS", "1"),
        ],
    );
    let callee = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", "4"],
    );
    let phone = rig::rtp_socket(&net, 5);
    let call = |seconds: u32, port: u16| {
        let uac = uac_media_at(
            &net,
            &phone,
            seconds * 1000,
            "0\n      a=rtpmap:0 PCMU/8000",
        );
        run_sipp(
            &net,
            &uac,
            &net.ip(2),
            port,
            server.sip,
            &["-s", "+15551234", "-m", "1"],
            LONG,
        )
    };

    // A routed call: its lines name it.
    let run = call(1, 5060);
    assert!(run.status.success(), "{run:?}\n{}", server.log());
    let routed = server.ended_calls(1).remove(0);
    let id = routed["id"].as_str().unwrap().to_owned();
    let all = lines(&server);
    // The start says where the data directory is.
    let data = (all.iter())
        .find(|l| message(l) == "data directory")
        .unwrap();
    assert_eq!(
        data["fields"]["data_dir"],
        net.path("data").display().to_string(),
        "{data}"
    );
    let its: Vec<&str> = about(&all, &id).into_iter().map(message).collect();
    for expected in ["trying", "call ended"] {
        assert!(its.contains(&expected), "{expected:?} in {its:?}");
    }

    // An application's call (the REST API's): its account on its lines.
    let (status, body) = server.http(
        "POST",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
        Some((ACCOUNT, TOKEN)),
        "To=%2B15551234&From=%2B15550001&Twiml=%3CResponse%3E%3CPause%20length%3D%2230%22%2F%3E%3C%2FResponse%3E",
    );
    assert_eq!(status, 201, "{body}");
    let sid = serde_json::from_str::<Value>(&body).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    server.wait_for_log("answered");
    let all = lines(&server);
    let app_lines = about(&all, &sid);
    assert!(!app_lines.is_empty(), "no line names {sid}");
    for line in &app_lines {
        assert_eq!(call_of(line).unwrap().1, Some(ACCOUNT), "{line}");
    }

    // The level: read; at warn a stray datagram logs nothing, at debug the next one does
    // (each stray is followed by an OPTIONS whose answer says the server is past it), and at
    // warn a call logs no info line. The final log decides, once the server is gone.
    // (The harness starts servers with RUST_LOG, which takes the configured level's place.)
    let (status, now) = level(&server, None);
    assert_eq!((status, &now["level"]), (200, &LOG_LEVEL.into()));
    let stray = |level_now: &str| {
        let (status, set) = level(&server, Some(level_now));
        assert_eq!((status, &set["level"]), (200, &level_now.into()), "{set}");
        let socket = std::net::UdpSocket::bind(format!("{}:0", net.ip(8))).unwrap();
        socket
            .send_to(b"not sip at all\r\n\r\n", server.sip)
            .unwrap();
        assert_eq!(options_probe(&net, &server).0, "SIP/2.0 200 OK");
        socket.local_addr().unwrap().to_string()
    };
    let unheard = stray("warn");
    let heard = stray("debug");
    let (status, refused) = level(&server, Some("info,[nonsense"));
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = level(&server, Some(&"info,".repeat(300)));
    assert_eq!(status, 400, "a filter past 1024 bytes: {refused}");
    assert_eq!(
        level(&server, None).1["level"],
        "debug",
        "a refused filter changes nothing"
    );
    assert_eq!(level(&server, Some("warn")).0, 200);
    let run = call(1, 5061);
    assert!(run.status.success(), "{run:?}");
    let quiet = (server.ended_calls(2).into_iter())
        .find(|c| c["id"] != id.as_str())
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .unwrap();
    // Without the token: 401.
    let (status, _) = server.request("GET", "/admin/v1/log", "", b"");
    assert_eq!(status, 401);

    // Back at info, SIGTERM: the drain is over in a second and the calls up are hung up;
    // the lines that say so name them.
    assert_eq!(level(&server, Some("info")).0, 200);
    server.signal("TERM");
    server
        .wait_exit(Duration::from_secs(15))
        .expect("the server stops");
    drop(callee);
    let all = lines(&server);
    let ended: Vec<&str> = (all.iter())
        .filter(|l| message(l) == "call ended")
        .filter_map(|l| call_of(l).map(|(id, _)| id))
        .collect();
    assert!(
        ended.contains(&sid.as_str()),
        "the shutdown's hang-up of {sid}: {ended:?}"
    );
    let stray_lines = |from: &str| {
        (all.iter())
            .filter(|l| message(l) == "unparseable SIP datagram" && l["fields"]["remote"] == from)
            .count()
    };
    assert_eq!(stray_lines(&unheard), 0, "a debug line at warn");
    assert_eq!(stray_lines(&heard), 1, "the debug line at debug");
    let at_warn = about(&all, &quiet);
    assert!(
        at_warn
            .iter()
            .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"),
        "only warnings about the call made at warn: {at_warn:?}"
    );
}
