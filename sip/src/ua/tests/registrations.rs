//! Registrations: digest, lookups, no user enumeration, and the client side's challenge.

use super::*;

#[test]
fn register_with_digest_then_lookup() {
    let mut net = Net::new();
    let r = register(&mut net, "alice", 1, None);
    assert_eq!(r.code, 401);
    let creds = crate::auth::answer_challenge(
        &md5_challenge(&r),
        "REGISTER",
        "sip:10.0.0.2",
        "alice",
        "secret",
        1,
    )
    .unwrap();
    assert_eq!(register(&mut net, "alice", 2, Some(&creds)).code, 200);
    let bindings = net.b.lookup(net.now, "alice");
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].target.remote, A.parse().unwrap());
    assert!(
        net.b
            .lookup(net.now + Duration::from_secs(601), "alice")
            .is_empty()
    );
    // The same credentials again (a captured REGISTER replayed) are refused with a stale
    // challenge; signed for another Request-URI, they are refused outright.
    let replay = register(&mut net, "alice", 3, Some(&creds));
    assert_eq!(replay.code, 401);
    assert!(md5_challenge(&replay).contains("stale=true"));
    let other_uri = crate::auth::answer_challenge(
        &md5_challenge(&replay),
        "REGISTER",
        "sip:elsewhere.example",
        "alice",
        "secret",
        1,
    )
    .unwrap();
    let refused = register(&mut net, "alice", 4, Some(&other_uri));
    assert_eq!(refused.code, 401);
    assert!(!md5_challenge(&refused).contains("stale"));
}

/// A name that is no one's is answered exactly like a known name with a wrong password: a
/// challenge, then the same 401 — never a 404 that would tell a scanner which names exist.
#[test]
fn register_does_not_reveal_which_users_exist() {
    let mut net = Net::new();
    let shape = |r: &Response| {
        let challenges: Vec<_> = r.headers.all("WWW-Authenticate").collect();
        (
            r.code,
            r.reason.clone(),
            challenges.len(),
            challenges.iter().any(|c| c.contains("stale")),
        )
    };
    let mut answers = Vec::new();
    for (user, cseq) in [("alice", 1), ("mallory", 1)] {
        let first = register(&mut net, user, cseq, None);
        let creds = crate::auth::answer_challenge(
            &md5_challenge(&first),
            "REGISTER",
            "sip:10.0.0.2",
            user,
            "guess",
            1,
        )
        .unwrap();
        let second = register(&mut net, user, cseq + 1, Some(&creds));
        answers.push((shape(&first), shape(&second)));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!((answers[0].0).0, 401);
    assert_eq!((answers[0].1).0, 401);
}

#[test]
fn stray_in_dialog_requests_get_481() {
    let mut net = Net::new();
    let text = "BYE sip:x@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKbye\r\nFrom: <sip:a@x>;tag=1\r\n\
        To: <sip:b@y>;tag=2\r\nCall-ID: nope\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
    let peer = Peer {
        transport: Transport::Udp,
        remote: A.parse().unwrap(),
        local: B.parse().unwrap(),
        conn: None,
    };
    net.b
        .on_message(net.now, SipMessage::parse(text.as_bytes()).unwrap(), peer);
    assert_eq!(
        first_line(&net.b.poll_transmit().unwrap().data),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
}

/// A client registration: challenged once, answered with the credentials, bound at the
/// registrar; a wrong password ends in the 401 after one answered challenge (no loop); expires
/// 0 removes the binding.
#[test]
fn a_registration_answers_one_challenge_and_reports_the_final_answer() {
    use super::RegisterParams;
    let mut net = Net::new();
    let peer = net.a.peer_for(Transport::Udp, B.parse().unwrap()).unwrap();
    let params = |password: &str, expires: u32| RegisterParams {
        aor: Uri::try_from("sip:alice@10.0.0.2").unwrap(),
        contact: "sip:s1@gateway.invalid;transport=ws".into(),
        expires,
        peer,
        credentials: Some(("alice".into(), password.into())),
    };
    let id = net.a.register(net.now, params("secret", 600)).unwrap();
    net.run();
    match events(&mut net.a).as_slice() {
        [
            UaEvent::Registered {
                registration,
                code: 200,
            },
        ] => assert_eq!(*registration, id),
        other => panic!("{other:?}"),
    }
    let registers = |net: &Net| {
        net.wire_log
            .iter()
            .filter(|l| l.starts_with("REGISTER"))
            .count()
    };
    assert_eq!(
        registers(&net),
        2,
        "one challenge, one answer: {:?}",
        net.wire_log
    );
    let bound = net.b.lookup(net.now, "alice");
    assert_eq!(bound.len(), 1);
    assert!(
        bound[0]
            .uri
            .to_string()
            .starts_with("sip:s1@gateway.invalid;transport=")
    );

    net.wire_log.clear();
    let wrong = net.a.register(net.now, params("wrong", 600)).unwrap();
    net.run();
    match events(&mut net.a).as_slice() {
        [
            UaEvent::Registered {
                registration,
                code: 401,
            },
        ] => assert_eq!(*registration, wrong),
        other => panic!("{other:?}"),
    }
    assert_eq!(registers(&net), 2, "{:?}", net.wire_log);

    net.a.register(net.now, params("secret", 0)).unwrap();
    net.run();
    assert!(matches!(
        events(&mut net.a).as_slice(),
        [UaEvent::Registered { code: 200, .. }]
    ));
    assert!(net.b.lookup(net.now, "alice").is_empty(), "unregistered");
}
