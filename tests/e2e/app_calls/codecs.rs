//! An Opus caller answered in Opus and bridged to a G.711 callee.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opus_caller_is_answered_in_opus_and_bridged_to_a_g711_callee() {
    let net = std::sync::Arc::new(Net::new(45));
    let core = start_core(&net, 34400..=34419).await;
    let (tx, mut offers) = mpsc::channel(64);
    core.control.control("+1666", tx);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (phone_a, phone_b) = (rtp_socket(&net, 5), rtp_socket(&net, 6));
    let port_b = phone_b.local_addr().unwrap().port().to_string();
    let uas = uas_media_at(&net, &net.ip(6), &port_b, &[]);
    let callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);
    // A WebRTC-style offer: Opus only (with telephone-event).
    let opus_offer = "111 101\n      a=rtpmap:111 opus/48000/2\n      \
        a=fmtp:111 minptime=10;useinbandfec=1\n      a=rtpmap:101 telephone-event/8000";
    let uac = uac_media_at(&net, &phone_a, 3000, opus_offer);
    let target: SocketAddr = format!("{}:5060", net.ip(1)).parse().unwrap();
    let run = {
        let (net, ip2) = (net.clone(), net.ip(2));
        blocking(move || {
            run_sipp(
                &net,
                &uac,
                &ip2,
                5060,
                target,
                &["-m", "1", "-s", "+16660004"],
                Duration::from_secs(15),
            )
        })
    };
    let parent = next(&mut offers).await.call;
    core.control
        .command(&parent, CallCommand::Answer)
        .await
        .unwrap();
    assert!(matches!(
        next(&mut offers).await.kind,
        EventKind::Answered { .. }
    ));

    // Answered in Opus: a clip reaches the caller as Opus packets.
    let clip = tone::sines(&[800.0], 8000.0, 400);
    core.control
        .command(
            &parent,
            CallCommand::Play {
                clip: clip.into(),
                loops: 1,
                barge_in: false,
            },
        )
        .await
        .unwrap();
    let p = phone_a.try_clone().unwrap();
    let (heard, endpoint_a) = blocking(move || receive_opus(&p, 18)).await.unwrap();
    let share = tone::share_at(&heard[800..], 800.0);
    assert!(share > 0.8, "the clip in Opus: {share}");

    // Bridged to a G.711 callee: Opus in, PCMU out, and back.
    let (child, mut child_events) = call_carrier_b(&core, Some(&parent)).await;
    until(&mut child_events, |e| {
        matches!(e, EventKind::Answered { .. })
    })
    .await;
    core.control
        .command(&parent, CallCommand::Bridge(child.clone()))
        .await
        .unwrap();
    let p = phone_a.try_clone().unwrap();
    let sending = blocking(move || {
        let mut encoder = opus::Encoder::new(48000).unwrap();
        for i in 0..20 {
            p.send_to(&opus_packet(&mut encoder, 600.0, i), endpoint_a)
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let p = phone_b.try_clone().unwrap();
    let (relayed, endpoint_b) = blocking(move || receive_audio(&p, 15, Law::Ulaw))
        .await
        .unwrap();
    sending.await.unwrap();
    let share = tone::share_at(&relayed[800..], 600.0);
    assert!(
        share > 0.8,
        "the caller's Opus reached the callee as PCMU: {share}"
    );
    let p = phone_b.try_clone().unwrap();
    let sending =
        blocking(move || send_audio(&p, endpoint_b, &tone::sines(&[900.0], 6000.0, 400), 1));
    let p = phone_a.try_clone().unwrap();
    let (heard, _) = blocking(move || receive_opus(&p, 15)).await.unwrap();
    sending.await.unwrap();
    let share = tone::share_at(&heard[800..], 900.0);
    assert!(
        share > 0.8,
        "the callee's PCMU reached the caller as Opus: {share}"
    );

    core.control
        .command(&child, CallCommand::Hangup)
        .await
        .unwrap();
    let run = run.await.unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    assert!(
        blocking(move || callee.finished_ok(Duration::from_secs(5)))
            .await
            .unwrap()
    );
}
