//! `<Dial><Application>` against the real binary, driven by Twilio's official Python SDK
//! (tests/compat/twilio_application_dial.py): the SDK creates a TwiML App and answers TwiML
//! built with its `VoiceResponse`. A caller dialing the App is handed to it through a leg to
//! the node's own SIP: the test is the caller, who hears the App's tone through both legs and
//! presses 7 for the App's `<Gather>`; the App's `<Hangup><Parameter>` comes back to the
//! dial's action as `ReturnParam_*`. The App told the caller's `To` (`copyParentTo`) rejects
//! busy with a `<Parameter>`; an App that does not exist fails the dial with Twilio's 21218.

use crate::common;

use common::sdk_app::{sdk_script_with, windows_of};
use common::voice_app::*;
use common::*;
use std::sync::Arc;
use std::time::Duration;

const ACCEPT: &str = "+17775550800";
const REJECT: &str = "+17775550801";
const MISSING: &str = "+17775550802";

#[test]
fn a_caller_handed_to_a_twiml_app_is_heard_by_it_and_comes_back_with_its_parameters() {
    let Some(python) = compat_env("SWITCHBOARD_TWILIO_PYTHON") else {
        return;
    };
    let net = Arc::new(Net::new(237));
    let at = format!("{}:18090", net.ip(9));
    let base = format!("http://{at}");
    let config = net.two_trunks(&numbers_config(
        &base,
        &[
            (ACCEPT, "voice_url = \"{base}/voice\""),
            (REJECT, "voice_url = \"{base}/voice-reject\""),
            (MISSING, "voice_url = \"{base}/voice-missing\""),
        ],
    ));
    let server = Server::start(&net, &config);
    let mut placed = Vec::new();
    let args = [ACCOUNT, TOKEN, at.as_str(), ACCEPT, REJECT, MISSING];
    sdk_script_with(
        &python,
        &server,
        "twilio_application_dial.py",
        &args,
        |line| {
            let which = line.strip_prefix("CALL ")?;
            let number = match which {
                "accept" => ACCEPT,
                "reject" => REJECT,
                _ => MISSING,
            };
            let (phone, caller) = call_with_phone(&net, &server, number);
            if which == "accept" {
                // Ringback, then the App's second of 1 kHz through the two legs; then the
                // caller's digit, through them the other way, to the App's <Gather>.
                let (heard, endpoint) =
                    listen(&phone, Duration::from_millis(1500), Duration::from_secs(20));
                assert!(
                    windows_of(&heard, 1000.0) >= 6,
                    "the App's tone did not reach the caller: {}",
                    server.log()
                );
                let mut seq = 500;
                send_rfc4733(&phone, endpoint.unwrap(), 7, &mut seq, 80_000);
            }
            let run = caller.join().unwrap();
            assert_eq!(
                (run.successful, run.failed),
                (1, 0),
                "{which}: {}\n{}",
                run.errors,
                server.log()
            );
            placed.push(which.to_owned());
            Some("go".into())
        },
    );
    assert_eq!(placed, ["accept", "reject", "missing"]);
}
