//! Blind transfer by REFER (RFC 3515) on a routed call, heard end to end: the answered callee
//! (SIPp, tests/sipp/uas_refer.xml) refers its caller to +1666…, which routes to carrier-c;
//! it hears 202, NOTIFY 100 Trying, NOTIFY 200 OK (ending the subscription) and a BYE. The
//! target (a SIPp callee whose media is the test's socket) answers, and the caller — never
//! re-INVITEd, its media anchored where it was — hears the target's 1 kHz, and the target the
//! caller's 600 Hz; the caller then hangs up on the target.

use crate::common;

use common::sdk_app::{hear, windows_of};
use common::*;
use std::time::Duration;
use switchboard_media::tone;

#[test]
fn a_phone_transfers_its_caller_with_refer_and_the_two_hear_each_other() {
    let net = Net::new(153);
    let extra = format!(
        "[[trunks]]\nname = \"carrier-c\"\naddress = \"{c}:5060\"\ninbound_sources = [\"{c}/32\"]\n\
         [[routes]]\npattern = \"^\\\\+?1666\"\ntrunk = \"carrier-c\"\n",
        c = net.ip(4)
    );
    let server = Server::start(&net, &net.two_trunks(&extra));
    let target_rtp = rig::rtp_socket(&net, 4);
    let (target, target_media) = phone_telling_media(&net, &target_rtp, (&net.ip(4), 5060));
    let referrer = SippServer::start(
        &net,
        &scenario(&net, "uas_refer.xml", &[("TARGET", "+16665550000")]),
        &net.ip(3),
        5060,
        &["-m", "1"],
    );
    let caller_rtp = rig::rtp_socket(&net, 5);
    let uac = uac_media_at(
        &net,
        &caller_rtp,
        7000,
        "0 101\n      a=rtpmap:0 PCMU/8000\n      a=rtpmap:101 telephone-event/8000",
    );
    std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            run_sipp(
                &net,
                &uac,
                &net.ip(2),
                5060,
                server.sip,
                &["-m", "1", "-s", "+15551234"],
                Duration::from_secs(30),
            )
        });
        // The target is called once the callee's REFER is taken; it talks once it answered.
        let to_switchboard = target_media();
        let talker = target_rtp.try_clone().unwrap();
        let talking = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            send_audio(
                &talker,
                to_switchboard,
                &tone::sines(&[1000.0], 8000.0, 2000),
                1,
            );
        });
        let (heard, from) = hear(
            &caller_rtp,
            Duration::from_secs(10),
            Duration::from_millis(500),
        );
        let from = from.expect("the target's audio reached the caller");
        talking.join().unwrap();
        let listener = target_rtp.try_clone().unwrap();
        let target_hears = std::thread::spawn(move || {
            hear(
                &listener,
                Duration::from_secs(5),
                Duration::from_millis(500),
            )
            .0
        });
        send_audio(&caller_rtp, from, &tone::sines(&[600.0], 8000.0, 2000), 1);
        let target_heard = target_hears.join().unwrap();
        let run = call.join().unwrap();
        assert!(
            windows_of(&heard, 1000.0) >= 15,
            "the caller hears the target's 1 kHz ({} of {} windows)\n{}",
            windows_of(&heard, 1000.0),
            heard.len() / 800,
            server.log()
        );
        assert!(
            windows_of(&target_heard, 600.0) >= 15,
            "the target hears the caller's 600 Hz ({} of {} windows)",
            windows_of(&target_heard, 600.0),
            target_heard.len() / 800
        );
        assert!(
            run.status.success(),
            "the caller's call: {run:?}\n{}",
            server.log()
        );
    });
    let wait = Duration::from_secs(10);
    assert!(referrer.finished_ok(wait), "the referrer: {}", server.log());
    assert!(target.finished_ok(wait), "the target: {}", server.log());
    let call = server.ended_calls(1).remove(0);
    assert_eq!(call["status"], "completed", "{call}");
    assert_eq!(call["hangup_by"], "caller", "{call}");
    assert_eq!(call["trunk_out"], "carrier-c", "{call}");
}

/// An attended transfer (Refer-To naming a dialog to replace, RFC 3891) whose dialog is not
/// Switchboard's (the phone's call with the target does not go through it) is not served: the
/// REFER gets 501, nobody else is rung, and the call goes on until the caller hangs up. (One
/// whose dialog is Switchboard's joins the two calls: tests/e2e/attended_transfer.rs.)
#[test]
fn an_attended_transfer_of_a_foreign_dialog_is_refused_and_the_call_goes_on() {
    let net = Net::new(154);
    let extra = format!(
        "[[trunks]]\nname = \"carrier-c\"\naddress = \"{c}:5060\"\ninbound_sources = [\"{c}/32\"]\n\
         [[routes]]\npattern = \"^\\\\+?1666\"\ntrunk = \"carrier-c\"\n",
        c = net.ip(4)
    );
    let server = Server::start(&net, &net.two_trunks(&extra));
    let referrer = SippServer::start(
        &net,
        &scenario(&net, "uas_refer_replaces.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", "1"],
    );
    let caller = scenario(&net, "uac_talk.xml", &[("TALK_MS", "2000")]);
    let args = ["-m", "1", "-s", "+15551234"];
    let run = run_sipp(
        &net,
        &caller,
        &net.ip(2),
        5060,
        server.sip,
        &args,
        Duration::from_secs(30),
    );
    assert!(
        run.status.success(),
        "the caller's call: {run:?}\n{}",
        server.log()
    );
    assert!(
        referrer.finished_ok(Duration::from_secs(10)),
        "the referrer: {}",
        server.log()
    );
    let call = server.ended_calls(1).remove(0);
    assert_eq!(call["status"], "completed", "{call}");
    assert_eq!(call["trunk_out"], "carrier-b", "{call}");
    assert!(!server.log().contains("transferring"), "{}", server.log());
}
