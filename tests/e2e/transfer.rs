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
/// whose dialog is Switchboard's joins the two calls: tests/e2e/attended_transfer.rs.) The node
/// runs two call-core shards, and the call is on the shard the foreign Call-ID would be on: the
/// one that would hold such a dialog, had Switchboard one (a Call-ID of the other shard's is
/// asked of it, whose refusal comes in the REFER's NOTIFY).
#[test]
fn an_attended_transfer_of_a_foreign_dialog_is_refused_and_the_call_goes_on() {
    foreign_dialog_refused(154, true);
}

/// The same with the call on the other shard than the foreign Call-ID's: the REFER is taken
/// (202, NOTIFY `100 Trying`), the other shard is asked to replace the dialog, has none, and
/// answers 481, which the last NOTIFY tells; the call goes on.
#[test]
fn an_attended_transfer_of_a_foreign_dialog_asked_of_another_shard_is_refused_in_its_notify() {
    foreign_dialog_refused(89, false);
}

/// A NOTIFY whose sipfrag starts with `status`, answered 200.
fn notify_of(status: &str) -> String {
    format!(
        r#"<recv request="NOTIFY"><action><ereg regexp="^SIP/2.0 {status}" search_in="body" check_it="true" assign_to="n"/></action></recv>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>"#
    )
}

fn foreign_dialog_refused(net_number: u8, same_shard: bool) {
    use switchboard_sip::shard::shard_of_call_id;
    let net = Net::new(net_number);
    let extra = format!(
        "[[trunks]]\nname = \"carrier-c\"\naddress = \"{c}:5060\"\ninbound_sources = [\"{c}/32\"]\n\
         [[routes]]\npattern = \"^\\\\+?1666\"\ntrunk = \"carrier-c\"\n",
        c = net.ip(4)
    );
    let env = [("SWITCHBOARD_SIP__CALL_SHARDS", "2")];
    let server = Server::start_with(&net, &net.two_trunks(&extra), &env);
    // The foreign dialog the scenario's REFER names.
    let foreign = shard_of_call_id("abc@host", 2);
    let on = if same_shard { foreign } else { foreign + 1 };
    let call_id = call_id_on_shard(&net.ip(2), 2, on);
    let outcome = match same_shard {
        true => r#"<recv response="501"/>"#.to_owned(),
        false => format!(
            "<recv response=\"202\"/>\n  {}\n  {}",
            notify_of("100"),
            notify_of("481")
        ),
    };
    let referrer = SippServer::start(
        &net,
        &scenario(
            &net,
            "uas_refer_replaces.xml",
            &[("REFER_OUTCOME", &outcome)],
        ),
        &net.ip(3),
        5060,
        &["-m", "1"],
    );
    let caller = scenario(&net, "uac_talk.xml", &[("TALK_MS", "2000")]);
    let args = ["-m", "1", "-s", "+15551234", "-cid_str", &call_id];
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
    // Nobody else was rung: at most the leg to the other shard, which it refused.
    let log = server.log();
    assert_eq!(log.contains("transferring"), !same_shard, "{log}");
    assert!(!log.contains("trying trunk=Some(\"carrier-c\")"), "{log}");
}
