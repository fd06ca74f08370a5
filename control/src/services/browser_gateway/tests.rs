//! The gateway against a user agent standing for the core (its registrar checks the
//! gateway's digest; the test answers and hangs up as the core would), in virtual time.

use super::*;
use switchboard_sip::auth::Algorithm;
use switchboard_sip::registrar::RegistrarConfig;

const CORE: &str = "10.0.0.1:5060";
const GATEWAY: &str = "10.0.0.9:8080";
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=sendrecv\r\n";
const ANSWER: &str = "v=0\r\no=- 2 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 20000 UDP/TLS/RTP/SAVPF 0\r\na=sendrecv\r\n";

struct Rig {
    gateway: Run,
    core: UserAgent,
    /// The gateway as the core sees it (a connection of its transports).
    link: Peer,
    now: Instant,
    events: mpsc::Receiver<SessionEvent>,
    events_tx: mpsc::Sender<SessionEvent>,
}

impl Rig {
    fn new() -> Self {
        let (core_addr, gateway_addr) = (CORE.parse().unwrap(), GATEWAY.parse().unwrap());
        let core = UserAgent::new(UaConfig {
            listeners: vec![Listener {
                transport: Transport::Udp,
                local: core_addr,
                advertised: CORE.into(),
            }],
            user_agent: "core".into(),
            timers: Default::default(),
            realm: "switchboard".into(),
            digest_algorithms: vec![Algorithm::Md5],
            users: HashMap::from([("alice".to_owned(), "pw".to_owned())]),
            digest_secret: None,
            node_id: "test".into(),
            digest_uri: Default::default(),
            registrar: RegistrarConfig::default(),
            session_timers: Default::default(),
            shard: Default::default(),
        });
        let to_core = Peer {
            transport: Transport::Ws,
            remote: core_addr,
            local: gateway_addr,
            conn: None,
        };
        let (events_tx, events) = mpsc::channel(64);
        Self {
            gateway: Run::new(to_core, "switchboard".into()),
            core,
            link: Peer {
                transport: Transport::Ws,
                remote: gateway_addr,
                local: core_addr,
                conn: Some(1),
            },
            now: Instant::now(),
            events,
            events_tx,
        }
    }

    /// Carries messages both ways until neither side has any to send.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            self.gateway.drain_events(self.now);
            while let Some(t) = self.gateway.ua.poll_transmit() {
                let m = SipMessage::parse(&t.data).unwrap();
                self.core.on_message(self.now, m, self.link);
                moved = true;
            }
            while let Some(t) = self.core.poll_transmit() {
                self.gateway.on_core(self.now, t.data);
                moved = true;
            }
            self.gateway.drain_events(self.now);
            if !moved {
                return;
            }
        }
    }

    /// Signs `login` in as `session`, its events to `events`.
    fn open(&mut self, session: SessionId, login: Login, events: mpsc::Sender<SessionEvent>) {
        self.command(Command::Open {
            session,
            login,
            events,
        });
    }

    fn command(&mut self, c: Command) {
        self.gateway.on_command(self.now, c);
        self.pump();
    }

    fn told(&mut self) -> Vec<SessionEvent> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }

    /// The core's INVITE to `uri` (a session's Contact), from +15550001 to alice.
    fn call_from_core(&self, uri: Uri) -> InviteParams {
        InviteParams {
            uri,
            from: "<sip:+15550001@switchboard>".into(),
            to: "<sip:alice@switchboard>".into(),
            peer: self.link,
            body: Some(Body::sdp(ANSWER)),
            credentials: None,
            max_forwards: 70,
            ring_timeout: None,
            headers: Vec::new(),
            asserted: Vec::new(),
        }
    }

    fn core_events(&mut self) -> Vec<UaEvent> {
        std::iter::from_fn(|| self.core.poll_event()).collect()
    }
}

fn login(password: &str) -> Login {
    Login {
        user: "alice".into(),
        password: password.into(),
        account: "AC1".into(),
        connection_id: "1".into(),
        credential_id: None,
    }
}

#[test]
fn a_session_registers_calls_holds_is_called_and_signs_out() {
    let mut rig = Rig::new();
    let events = rig.events_tx.clone();
    rig.open(1, login("pw"), events);
    assert_eq!(rig.told(), vec![SessionEvent::Registered(true)]);
    let bound = rig.core.lookup(rig.now, "alice");
    assert_eq!(bound.len(), 1);
    let contact = bound[0].uri.clone();
    assert!(
        contact.to_string().starts_with("sip:s1@gateway.invalid"),
        "{contact}"
    );
    // The link authenticated: the core's transports may trust it.
    let authenticated = rig.core_events();
    assert!(matches!(
        authenticated.as_slice(),
        [UaEvent::Authenticated { .. }]
    ));

    // The browser's call: an INVITE with its offer, from the login.
    rig.command(Command::Invite {
        session: 1,
        call: "c1".into(),
        to: "+15551230000".into(),
        sdp: OFFER.into(),
        headers: vec![("X-Switchboard-Params".into(), "To=%2B1555".into())],
    });
    let incoming = rig.core_events();
    let [UaEvent::Incoming { leg, request, .. }] = incoming.as_slice() else {
        panic!("{incoming:?}");
    };
    let leg = *leg;
    assert_eq!(request.uri.user(), Some("+15551230000"));
    assert!(
        request
            .headers
            .get("From")
            .unwrap()
            .contains("sip:alice@switchboard")
    );
    assert_eq!(
        request.headers.get("X-Switchboard-Params"),
        Some("To=%2B1555")
    );
    assert_eq!(&request.body[..], OFFER.as_bytes());
    rig.core.respond(rig.now, leg, 180, None);
    rig.core.respond(rig.now, leg, 200, Some(Body::sdp(ANSWER)));
    rig.pump();
    let told = rig.told();
    assert!(
        matches!(&told[0], SessionEvent::Ringing { call, sdp: None, .. } if call == "c1"),
        "{told:?}"
    );
    assert!(
        matches!(&told[1], SessionEvent::Answered { call, sdp: Some(s), .. } if call == "c1" && s == ANSWER),
        "{told:?}"
    );
    assert!(rig.core_events().iter().any(|e| matches!(
        e,
        UaEvent::Leg {
            event: LegEvent::Acked { .. },
            ..
        }
    )));

    // Hold: the browser's description again, sendonly, a version higher.
    rig.command(Command::Hold {
        session: 1,
        call: "c1".into(),
        hold: Some(true),
    });
    let reinvite = rig.core_events();
    let [
        UaEvent::Leg {
            event: LegEvent::ReInvite {
                body: Some(body), ..
            },
            ..
        },
    ] = reinvite.as_slice()
    else {
        panic!("{reinvite:?}");
    };
    let held = String::from_utf8_lossy(&body.data).into_owned();
    assert!(
        held.contains("a=sendonly") && held.contains("o=- 1 2 IN IP4"),
        "{held}"
    );
    rig.core
        .respond_reinvite(rig.now, leg, 200, Some(Body::sdp(ANSWER)));
    rig.pump();
    assert_eq!(
        rig.told(),
        vec![SessionEvent::Held {
            call: "c1".into(),
            held: true,
            ok: true
        }]
    );

    // The far end hangs up.
    rig.core.hangup(rig.now, leg, 200);
    rig.pump();
    assert_eq!(
        rig.told(),
        vec![SessionEvent::Ended {
            call: "c1".into(),
            code: 200
        }]
    );

    // A call to the login reaches the session; the browser answers, then hangs up.
    let params = rig.call_from_core(contact.clone());
    let out = rig.core.invite(rig.now, params);
    rig.pump();
    let told = rig.told();
    let [
        SessionEvent::Incoming {
            call, from, sdp, ..
        },
    ] = told.as_slice()
    else {
        panic!("{told:?}");
    };
    assert_eq!((from.as_str(), sdp.as_str()), ("+15550001", ANSWER));
    let call = call.clone();
    assert!(rig.core_events().iter().any(|e| matches!(
        e,
        UaEvent::Leg {
            event: LegEvent::Progress { code: 180, .. },
            ..
        }
    )));
    rig.command(Command::Answer {
        session: 1,
        call: call.clone(),
        sdp: OFFER.into(),
    });
    let answered = rig.core_events();
    assert!(
        answered.iter().any(
            |e| matches!(e, UaEvent::Leg { leg, event: LegEvent::Answered { .. } } if *leg == out)
        ),
        "{answered:?}"
    );
    rig.core.ack(out, None);
    rig.pump();
    rig.command(Command::Hangup {
        session: 1,
        call,
        code: 603,
    });
    assert!(rig.core_events().iter().any(|e| matches!(
        e,
        UaEvent::Leg {
            event: LegEvent::Bye { .. },
            ..
        }
    )));
    assert!(
        rig.told().is_empty(),
        "the browser that hung up is told nothing more"
    );

    // Signing out removes the registration.
    rig.command(Command::Close { session: 1 });
    assert!(rig.core.lookup(rig.now, "alice").is_empty());
}

#[test]
fn a_wrong_password_is_refused_and_an_unknown_session_is_not_rung() {
    let mut rig = Rig::new();
    let events = rig.events_tx.clone();
    rig.open(7, login("wrong"), events);
    assert_eq!(rig.told(), vec![SessionEvent::Registered(false)]);
    // A call to a contact naming no session gets 480.
    let params = rig.call_from_core("sip:s99@gateway.invalid;transport=ws".try_into().unwrap());
    rig.core.invite(rig.now, params);
    rig.pump();
    let failed = rig.core_events();
    assert!(
        failed.iter().any(|e| matches!(
            e,
            UaEvent::Leg {
                event: LegEvent::Failed { code: 480 },
                ..
            }
        )),
        "{failed:?}"
    );
}

#[test]
fn holding_rewrites_the_direction_and_bumps_the_version() {
    let sdp = "v=0\r\no=- 42 2 IN IP4 127.0.0.1\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=sendrecv\r\n";
    let held = super::run::with_direction(sdp, true);
    assert!(held.contains("o=- 42 3 IN IP4"), "{held}");
    assert!(
        held.contains("a=sendonly\r\n") && !held.contains("sendrecv"),
        "{held}"
    );
    let resumed = super::run::with_direction(&held, false);
    assert!(
        resumed.contains("o=- 42 4 IN IP4") && resumed.contains("a=sendrecv"),
        "{resumed}"
    );
}

/// A browser whose socket dropped keeps its call up; back on a new session of the same login
/// it takes the call back by its token (a wrong token or another login cannot), and hears
/// its end there. A call nobody comes back for is hung up when the wait is over.
#[test]
fn a_browser_back_on_a_new_socket_takes_its_call_back_by_its_token() {
    let mut rig = Rig::new();
    let events = rig.events_tx.clone();
    rig.open(1, login("pw"), events);
    assert_eq!(rig.told(), vec![SessionEvent::Registered(true)]);
    rig.core_events();
    // The browser's call, answered.
    let answered = |rig: &mut Rig, session, call: &str| {
        rig.command(Command::Invite {
            session,
            call: call.into(),
            to: "+15551230000".into(),
            sdp: OFFER.into(),
            headers: Vec::new(),
        });
        let incoming = rig.core_events();
        let leg = (incoming.iter())
            .find_map(|e| match e {
                UaEvent::Incoming { leg, .. } => Some(*leg),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{incoming:?}"));
        rig.core.respond(rig.now, leg, 200, Some(Body::sdp(ANSWER)));
        rig.pump();
        leg
    };
    let leg = answered(&mut rig, 1, "c1");
    let told = rig.told();
    let [SessionEvent::Answered { resume, .. }] = told.as_slice() else {
        panic!("{told:?}");
    };
    let token = resume.clone();
    rig.core_events();

    // The socket drops: the login is off the registrar, the call stays up.
    rig.command(Command::Detach {
        session: 1,
        keep: Duration::from_secs(30),
    });
    assert!(rig.core.lookup(rig.now, "alice").is_empty());
    assert!(
        !rig.core_events().iter().any(|e| matches!(
            e,
            UaEvent::Leg {
                event: LegEvent::Bye { .. },
                ..
            }
        )),
        "the call is kept"
    );

    // Back on session 2: a wrong token, then another login's session, are refused.
    let (tx2, mut events2) = mpsc::channel(64);
    rig.open(2, login("pw"), tx2);
    let resume = |rig: &mut Rig, session, token: &str| {
        rig.command(Command::Resume {
            session,
            call: "CA1".into(),
            token: token.into(),
        })
    };
    resume(&mut rig, 2, "not-the-token");
    let (tx3, mut events3) = mpsc::channel(64);
    let mut bob = login("pw");
    bob.user = "bob".into();
    rig.open(3, bob, tx3);
    resume(&mut rig, 3, &token);
    let refused = std::iter::from_fn(|| events3.try_recv().ok()).last();
    assert_eq!(
        refused,
        Some(SessionEvent::Resumed {
            call: "CA1".into(),
            resume: None
        })
    );
    resume(&mut rig, 2, &token);
    let heard: Vec<SessionEvent> = std::iter::from_fn(|| events2.try_recv().ok()).collect();
    assert_eq!(
        heard[..2],
        [
            SessionEvent::Registered(true),
            SessionEvent::Resumed {
                call: "CA1".into(),
                resume: None
            }
        ],
        "{heard:?}"
    );
    let SessionEvent::Resumed {
        resume: Some(renewed),
        ..
    } = &heard[2]
    else {
        panic!("{heard:?}");
    };
    assert_ne!(*renewed, token, "a new token for the new session");
    // The far end hangs up: session 2 hears it, under the name it gave the call.
    rig.core.hangup(rig.now, leg, 200);
    rig.pump();
    assert_eq!(
        events2.try_recv().ok(),
        Some(SessionEvent::Ended {
            call: "CA1".into(),
            code: 200
        })
    );

    // Session 2 drops too, and nobody comes back: its call ends when the wait is over.
    let leg = answered(&mut rig, 2, "c2");
    rig.core_events();
    rig.command(Command::Detach {
        session: 2,
        keep: Duration::from_secs(30),
    });
    let bye = |rig: &mut Rig| {
        rig.gateway.close_detached(rig.now);
        rig.pump();
        rig.core_events()
            .into_iter()
            .any(|e| matches!(e, UaEvent::Leg { leg: l, event: LegEvent::Bye { .. } } if l == leg))
    };
    rig.now += Duration::from_secs(29);
    assert!(!bye(&mut rig), "not before the wait is over");
    rig.now += Duration::from_secs(2);
    assert!(bye(&mut rig), "hung up when it is");
}

/// A browser attaching a call anew (Telnyx's `attach`, after a reconnection or a reload): the
/// core gets an offerless re-INVITE and offers in its 2xx; the session is told the offer and
/// the call's parties; the browser's answer goes to the core in the ACK. A call not up cannot
/// be attached (the session hears so at once), and a call gone while the browser answers is
/// nothing.
#[test]
fn a_browser_attaching_a_call_gets_the_cores_offer_and_answers_in_the_ack() {
    let mut rig = Rig::new();
    let events = rig.events_tx.clone();
    rig.open(1, login("pw"), events);
    rig.told();
    rig.core_events();
    rig.command(Command::Invite {
        session: 1,
        call: "c1".into(),
        to: "+15551230000".into(),
        sdp: OFFER.into(),
        headers: Vec::new(),
    });
    let leg = (rig.core_events().iter())
        .find_map(|e| match e {
            UaEvent::Incoming { leg, .. } => Some(*leg),
            _ => None,
        })
        .expect("the browser's INVITE");
    // Not up yet: nothing to attach.
    rig.command(Command::Attach {
        session: 1,
        call: "c1".into(),
    });
    let told = rig.told();
    assert!(
        matches!(told.as_slice(), [SessionEvent::Attach { sdp: None, .. }]),
        "{told:?}"
    );
    rig.core.respond(rig.now, leg, 200, Some(Body::sdp(ANSWER)));
    rig.pump();
    rig.told();
    rig.core_events();

    rig.command(Command::Attach {
        session: 1,
        call: "c1".into(),
    });
    let asked = rig.core_events();
    assert!(
        matches!(
            asked.as_slice(),
            [UaEvent::Leg { leg: l, event: LegEvent::ReInvite { body: None, update: false } }] if *l == leg
        ),
        "an offerless re-INVITE: {asked:?}"
    );
    let offer = ANSWER.replace("a=sendrecv", "a=setup:actpass\r\na=sendrecv");
    rig.core
        .respond_reinvite(rig.now, leg, 200, Some(Body::sdp(offer.clone())));
    rig.pump();
    let told = rig.told();
    let [
        SessionEvent::Attach {
            call,
            sdp: Some(sdp),
            from,
            to,
            sip_call_id,
        },
    ] = told.as_slice()
    else {
        panic!("{told:?}");
    };
    assert_eq!((call.as_str(), sdp.as_str()), ("c1", offer.as_str()));
    assert_eq!((from.as_str(), to.as_str()), ("alice", "+15551230000"));
    assert!(!sip_call_id.is_empty());
    assert!(rig.core_events().is_empty(), "the ACK waits for the answer");
    let answer = OFFER.replace("a=sendrecv", "a=setup:active\r\na=sendrecv");
    rig.command(Command::Answer {
        session: 1,
        call: "c1".into(),
        sdp: answer.clone(),
    });
    let acked = rig.core_events();
    assert!(
        matches!(
            acked.as_slice(),
            [UaEvent::Leg { leg: l, event: LegEvent::AckedAnswer { body } }]
                if *l == leg && *body == Body::sdp(answer.clone())
        ),
        "the answer in the ACK: {acked:?}"
    );
    // A second answer is not another ACK.
    rig.command(Command::Answer {
        session: 1,
        call: "c1".into(),
        sdp: OFFER.into(),
    });
    assert!(rig.core_events().is_empty());
}
