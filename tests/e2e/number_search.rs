//! Searching and buying numbers within the operator's grants, through the providers' official
//! SDKs: Twilio's AvailablePhoneNumbers and IncomingPhoneNumbers (tests/compat/
//! twilio_available_numbers.py), Telnyx's `/v2/available_phone_numbers` and `/v2/number_orders`
//! (tests/compat/telnyx_number_orders.py). What one account holds leaves every account's search;
//! an order claims all of its numbers or none.

use crate::common;

use common::sdk_app::{sdk_script_with, telnyx};
use common::voice_app::{ACCOUNT, TOKEN};
use common::*;

#[test]
fn the_official_twilio_sdk_searches_and_buys_numbers_within_the_grants() {
    let Some(python) = compat_env("SWITCHBOARD_TWILIO_PYTHON") else {
        return;
    };
    const OTHER: &str = "AC00000000000000000000000000000002";
    let net = Net::new(239);
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         number_ranges = [\"+1666555*\", \"+18005550100-+18005550109\", \"+442071234500-+442071234509\"]\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"{TOKEN}-other\"\n\
         number_ranges = [\"+1666555*\"]\n"
    ));
    let server = Server::start(&net, &config);
    let other_token = format!("{TOKEN}-other");
    let args = [ACCOUNT, TOKEN, OTHER, other_token.as_str()];
    sdk_script_with(
        &python,
        &server,
        "twilio_available_numbers.py",
        &args,
        |_| None,
    );
}

#[test]
fn the_official_telnyx_sdk_searches_and_orders_numbers_within_the_grants() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    let net = Net::new(240);
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{}\"\nauth_token = \"{}\"\ncaller_ids = [\"+1555*\"]\n\
         telnyx_api_keys = [\"{}\"]\ntelnyx_private_key = \"{}\"\n\
         number_ranges = [\"+1666555*\", \"+18005550100-+18005550109\"]\n\
         [[connections]]\nid = \"{}\"\naccount_sid = \"{}\"\n\
         webhook_event_url = \"http://127.0.0.1:9/telnyx\"\n",
        telnyx::ACCOUNT,
        telnyx::TOKEN,
        telnyx::KEY,
        telnyx::SEED,
        telnyx::CONNECTION,
        telnyx::ACCOUNT
    ));
    let server = Server::start(&net, &config);
    let args = [telnyx::KEY, telnyx::CONNECTION];
    sdk_script_with(&python, &server, "telnyx_number_orders.py", &args, |_| None);
}

/// Telnyx's outbound voice profiles through the official SDK (tests/compat/
/// telnyx_outbound_profiles.py): made, listed, changed and deleted, and acting on the calls
/// placed through the Call Control application that names one — its concurrent call limit, its
/// whitelisted destinations, disabled — beside the application's own channel limit and
/// `active`.
#[test]
fn the_official_telnyx_sdk_limits_calls_by_outbound_voice_profiles() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    let net = Net::new(248);
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{}\"\nauth_token = \"{}\"\ncaller_ids = [\"+1555*\"]\n\
         telnyx_api_keys = [\"{}\"]\ntelnyx_private_key = \"{}\"\n",
        telnyx::ACCOUNT,
        telnyx::TOKEN,
        telnyx::KEY,
        telnyx::SEED,
    ));
    let server = Server::start(&net, &config);
    sdk_script_with(
        &python,
        &server,
        "telnyx_outbound_profiles.py",
        &[telnyx::KEY],
        |_| None,
    );
}

/// The same through Telnyx's official Node SDK (tests/compat/telnyx_node_provisioning.js): a
/// number searched and ordered onto an application, an outbound voice profile named in the
/// application's `outbound` refusing a destination it does not whitelist, and once disabled;
/// an IP connection with its address ordered the second number, its address going with it.
#[test]
fn the_official_telnyx_node_sdk_orders_numbers_and_limits_calls_by_profile() {
    let Some(modules) = compat_env("SWITCHBOARD_TELNYX_NODE_PATH") else {
        return;
    };
    let net = Net::new(251);
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{}\"\nauth_token = \"{}\"\ncaller_ids = [\"+1555*\", \"+1666*\"]\n\
         telnyx_api_keys = [\"{}\"]\ntelnyx_private_key = \"{}\"\nnumber_ranges = [\"+1666555*\"]\n",
        telnyx::ACCOUNT,
        telnyx::TOKEN,
        telnyx::KEY,
        telnyx::SEED,
    ));
    let server = Server::start(&net, &config);
    let script = format!(
        "{}/tests/compat/telnyx_node_provisioning.js",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new("node")
        .args([&script, &format!("http://{}", server.http), telnyx::KEY])
        .env("NODE_PATH", &modules)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "stdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{}",
        server.log()
    );
}
