//! Telnyx's `send_sip_info` against the real binary: Telnyx's official Python SDK
//! (tests/compat/telnyx_sip_info.py) dials a SIPp callee that must receive the INFO the app
//! sends, with its content type and body, before the BYE; bad content types and empty bodies
//! are refused with Telnyx's codes.

use crate::common;

use common::sdk_app::telnyx::{self, CONNECTION, KEY, PUBLIC_KEY};
use common::*;
use std::time::Duration;

#[test]
fn the_official_telnyx_sdk_sends_a_sip_info_the_callee_receives() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    let net = Net::new(227);
    let hooks = format!("{}:18080", net.ip(6));
    let server = Server::start(&net, &net.two_trunks(&telnyx::config(&hooks, "", &[])));
    let callee = SippServer::start(
        &net,
        &scenario(&net, "uas_info.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", "1"],
    );
    let args = [KEY, PUBLIC_KEY, hooks.as_str(), CONNECTION];
    common::sdk_app::sdk_script_with(&python, &server, "telnyx_sip_info.py", &args, |_| None);
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the callee did not get its INFO before the BYE\n{}",
        server.log()
    );
}
