//! The call core driven through its sans-IO surface in virtual time: a carrier's user agent
//! calls through the core to another carrier's, every message encoded and parsed again on the
//! way, and the clock moves only when a test says so. There is no media engine: the rig hands
//! the core port pairs as a driver would, keeps the media commands it gets, and answers a
//! release with the engine's `Released`. What the core writes to the store is read from its
//! outputs. Applications reach the core as through [`CallControl`], their events read as it
//! sends them.

use super::*;
use crate::call::routing::{Route, Trunk};
use std::collections::HashMap;
use std::net::SocketAddr;
use switchboard_media::record::RecordingSaved;
use switchboard_media::{Endpoint, EndpointStats, MediaError, MediaOp, SourcePolicy};
use switchboard_sip::message::Uri;
use switchboard_sip::registrar::RegistrarConfig;
use switchboard_sip::transaction::Timers;
use switchboard_sip::transport::Transport;
use switchboard_sip::ua::{Listener, UaConfig};

const CORE: &str = "10.0.0.1:5060";
const CALLER: &str = "10.0.0.2:5060";
const CALLEE: &str = "10.0.0.3:5060";
const RING_TIMEOUT: Duration = Duration::from_secs(30);

fn addr(a: &str) -> SocketAddr {
    a.parse().unwrap()
}

fn ua(at: &str) -> UserAgent {
    UserAgent::new(UaConfig {
        listeners: vec![Listener {
            transport: Transport::Udp,
            local: addr(at),
            advertised: at.to_owned(),
        }],
        user_agent: "test".into(),
        timers: Timers::default(),
        realm: "test".into(),
        digest_algorithms: vec![switchboard_sip::auth::Algorithm::Md5],
        users: HashMap::new(),
        digest_secret: None,
        node_id: "test".into(),
        digest_uri: Default::default(),
        registrar: RegistrarConfig::default(),
        session_timers: Default::default(),
    })
}

fn trunk(name: &str, at: &str) -> Trunk {
    Trunk {
        name: name.into(),
        address: addr(at),
        transport: Transport::Udp,
        inbound_sources: vec![format!("{}/32", addr(at).ip()).parse().unwrap()],
        credentials: None,
        rtp_source: SourcePolicy::Strict,
        srtp: Default::default(),
        trusted: true,
        tls: None,
        options_interval: None,
    }
}

fn sdp(ip: &str, port: u16) -> Body {
    sdp_with(ip, port, 1, "sendrecv")
}

/// An SDP of version `version` with the direction attribute `direction`.
fn sdp_with(ip: &str, port: u16, version: u32, direction: &str) -> Body {
    Body::sdp(format!(
        "v=0\r\no=- 1 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n"
    ))
}

fn text(body: &Option<Body>) -> String {
    body.as_ref()
        .map(|b| String::from_utf8_lossy(&b.data).into_owned())
        .unwrap_or_default()
}

/// The core between two carriers, and the clock.
struct Rig {
    core: CallCore,
    caller: UserAgent,
    callee: UserAgent,
    /// Port numbers for the pairs the rig hands the core, and the next endpoint id.
    ports: std::ops::RangeInclusive<u16>,
    next_endpoint: u64,
    /// The media commands the core gave, in order.
    media: Vec<MediaCommand>,
    /// The driver binds no pair (the range is used up).
    unbound: bool,
    /// The RTP port of each pair handed to the core.
    port_of: HashMap<EndpointId, u16>,
    /// The recording each endpoint is making, as the engine would save it.
    recording: HashMap<EndpointId, RecordingSaved>,
    /// What the core wrote to the store, in order.
    writes: Vec<StoreWrite>,
    now: Instant,
    /// Every message on the wire: who sent it to whom, and its first line.
    wire: Vec<String>,
    /// The core's messages whole, as sent.
    sent_by_core: Vec<String>,
    /// What the caller sends is lost on the way (its peer went away).
    caller_lost: bool,
    /// Routed calls handed to the route services.
    served: Vec<crate::call::ServeRoute>,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// A rig whose media pairs have RTP ports from `ports`.
    async fn new(ports: std::ops::RangeInclusive<u16>) -> Self {
        Self::routed(ports, Default::default()).await
    }

    /// A rig whose route to the callee's trunk asks for `features`.
    async fn routed(
        ports: std::ops::RangeInclusive<u16>,
        features: crate::call::routing::RouteFeatures,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let routing = Routing {
            trunks: vec![trunk("carrier-a", CALLER), trunk("carrier-b", CALLEE)],
            routes: vec![Route {
                pattern: regex::Regex::new(".*").unwrap(),
                target: crate::call::routing::Target::Trunks(vec!["carrier-b".into()]),
                features,
            }],
            ..Routing::default()
        };
        let (core, _control) = CallCore::new(
            ua(CORE),
            routing,
            CoreConfig {
                ring_timeout: RING_TIMEOUT,
                shutdown_grace: Duration::from_secs(5),
                recordings_dir: dir.path().join("recordings"),
                liveness: None,
                source_rate: None,
                caller_ids: None,
                account_limits: None,
                sip_trace: None,
            },
        );
        Self {
            core,
            caller: ua(CALLER),
            callee: ua(CALLEE),
            ports,
            next_endpoint: 1,
            media: Vec::new(),
            unbound: false,
            port_of: HashMap::new(),
            recording: HashMap::new(),
            writes: Vec::new(),
            now: Instant::now(),
            wire: Vec::new(),
            sent_by_core: Vec::new(),
            caller_lost: false,
            served: Vec::new(),
            _dir: dir,
        }
    }

    /// The caller dials +15551234 through the core.
    fn call(&mut self) -> LegId {
        self.call_asserting(Vec::new())
    }

    /// [`Rig::call`] with identity headers the caller's carrier vouches for.
    fn call_asserting(&mut self, asserted: Vec<(String, String)>) -> LegId {
        let peer = self.caller.peer_for(Transport::Udp, addr(CORE)).unwrap();
        self.caller.invite(
            self.now,
            InviteParams {
                uri: Uri::try_from("sip:+15551234@10.0.0.1:5060").unwrap(),
                from: "<sip:+15550000@10.0.0.2>".into(),
                to: "<sip:+15551234@10.0.0.1>".into(),
                peer,
                body: Some(sdp("10.0.0.2", 4000)),
                credentials: None,
                max_forwards: 70,
                ring_timeout: None,
                headers: Vec::new(),
                asserted,
            },
        )
    }

    /// Moves messages until all three are quiet: the core's first, then the caller's, then
    /// the callee's, so that what a test queued on the caller reaches the core first.
    fn run(&mut self) {
        loop {
            let mut moved = false;
            while let Some(output) = self.core.poll_output() {
                let t = match output {
                    Output::Transmit(t) => t,
                    Output::Media(command) => {
                        self.engine(command);
                        moved = true;
                        continue;
                    }
                    Output::Serve(serve) => {
                        self.served.push(serve);
                        continue;
                    }
                    Output::Store(write) => {
                        self.writes.push(*write);
                        continue;
                    }
                    _ => continue,
                };
                moved = true;
                let to = t.peer.remote;
                let name = if to == addr(CALLER) {
                    "caller"
                } else {
                    "callee"
                };
                self.wire
                    .push(format!("core>{name} {}", first_line(&t.data)));
                (self.sent_by_core).push(String::from_utf8_lossy(&t.data).into_owned());
                let msg = SipMessage::parse(&t.data).expect("the core sent a parseable message");
                let peer = Peer {
                    transport: Transport::Udp,
                    remote: addr(CORE),
                    local: to,
                    conn: None,
                };
                let ua = if to == addr(CALLER) {
                    &mut self.caller
                } else {
                    &mut self.callee
                };
                ua.on_message(self.now, msg, peer);
            }
            for (name, from) in [("caller", CALLER), ("callee", CALLEE)] {
                loop {
                    let ua = if name == "caller" {
                        &mut self.caller
                    } else {
                        &mut self.callee
                    };
                    let Some(t) = ua.poll_transmit() else { break };
                    moved = true;
                    if name == "caller" && self.caller_lost {
                        continue;
                    }
                    self.wire
                        .push(format!("{name}>core {}", first_line(&t.data)));
                    let message = SipMessage::parse(&t.data).expect("a parseable message");
                    let peer = Peer {
                        transport: Transport::Udp,
                        remote: addr(from),
                        local: addr(CORE),
                        conn: None,
                    };
                    self.top_up();
                    self.core
                        .handle_inbound(self.now, Inbound { message, peer });
                }
            }
            // Events to applications go out as the driver sends them.
            self.core.outlets.flush();
            if !moved {
                return;
            }
        }
    }

    /// Binds nothing, as a driver would bind pairs: hands the core pairs with the rig's
    /// ports until it wants no more (the ports come round again: nothing is bound).
    fn top_up(&mut self) {
        if self.unbound {
            return self.core.handle_reserve_failed(MediaError::PortsExhausted);
        }
        let span = u64::from(self.ports.end() - self.ports.start()) / 2 + 1;
        for _ in 0..self.core.endpoints_wanted() {
            let n = self.next_endpoint;
            self.next_endpoint += 1;
            let port = self.ports.start() + u16::try_from(2 * (n % span)).unwrap();
            let id = EndpointId::unallocated(n);
            self.port_of.insert(id, port);
            self.core.handle_reserved(Endpoint {
                id,
                rtp: SocketAddr::new("127.0.0.1".parse().unwrap(), port),
            });
        }
    }

    /// The engine's side of a media command: kept, and a release answered with the
    /// endpoint's (empty) final counters, as a worker does.
    fn engine(&mut self, command: MediaCommand) {
        match &command {
            MediaCommand::Media {
                id,
                op: MediaOp::RecordStart(spec),
            } => {
                let saved = RecordingSaved {
                    recording: spec.recording,
                    path: spec.path.clone(),
                    duration_ms: 0,
                    channels: spec.channels.count(),
                    bytes: 0,
                    dropped_frames: 0,
                    error: None,
                };
                self.recording.insert(*id, saved);
            }
            MediaCommand::Media {
                id,
                op: MediaOp::RecordStop,
            } => self.recording_saved(*id),
            MediaCommand::Release { id } => {
                let (id, stats) = (*id, EndpointStats::default());
                (self.core).handle_media_event(self.now, MediaEvent::Released { id, stats });
                self.recording_saved(id);
            }
            _ => {}
        }
        self.media.push(command);
    }

    /// The recorder finished the endpoint's recording, if it had one.
    fn recording_saved(&mut self, id: EndpointId) {
        if let Some(saved) = self.recording.remove(&id) {
            (self.core).handle_media_event(self.now, MediaEvent::RecordingSaved(saved));
        }
    }

    /// An application's request, as through [`CallControl`].
    fn request(&mut self, request: AppRequest) {
        self.top_up();
        self.core.on_request(self.now, request);
        self.core.process(self.now);
        self.run();
    }

    /// An application's command on `call`, and the core's reply.
    fn command(&mut self, call: &str, command: CallCommand) -> Result<(), CallError> {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        self.request(AppRequest::Command {
            call: call.to_owned(),
            command,
            reply,
        });
        answer.try_recv().expect("the core replies at once")
    }

    /// Moves the clock by `secs`, firing every timer due on the way.
    fn advance(&mut self, secs: u64) {
        let end = self.now + Duration::from_secs(secs);
        loop {
            let next = [
                self.core.poll_timeout(self.now),
                self.caller.poll_timeout(),
                self.callee.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.top_up();
                    self.core.handle_timeout(self.now);
                    self.caller.handle_timeout(self.now);
                    self.callee.handle_timeout(self.now);
                    self.run();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// The callee's new leg.
    fn incoming(&mut self) -> LegId {
        match events(&mut self.callee).into_iter().next() {
            Some(UaEvent::Incoming { leg, .. }) => leg,
            other => panic!("no call reached the callee: {other:?}\n{:#?}", self.wire),
        }
    }

    /// The call's record as last written, once its media is back from the engine and the
    /// core has closed it.
    fn record(&mut self) -> CallRecord {
        self.run();
        let closed = (self.writes.iter().rev()).find_map(|w| match w {
            StoreWrite::Call(c) if c.ended_at.is_some() && !c.legs.is_empty() => Some(c),
            _ => None,
        });
        match closed {
            Some(call) => call.clone(),
            None => panic!("the call was never closed:\n{:#?}", self.wire),
        }
    }

    /// The events of `call` the core wrote to the store, in order.
    fn stored_events(&self, call: &str) -> Vec<&crate::infra::store::EventRow> {
        (self.writes.iter())
            .filter_map(|w| match w {
                StoreWrite::Event(e) if e.call_id == call => Some(e),
                _ => None,
            })
            .collect()
    }

    fn sent(&self, what: &str) -> usize {
        self.wire.iter().filter(|l| l.starts_with(what)).count()
    }
}

fn first_line(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    text.lines().next().unwrap_or_default().to_owned()
}

fn events(ua: &mut UserAgent) -> Vec<UaEvent> {
    std::iter::from_fn(|| ua.poll_event()).collect()
}

fn leg_events(ua: &mut UserAgent) -> Vec<LegEvent> {
    events(ua)
        .into_iter()
        .filter_map(|e| match e {
            UaEvent::Leg { event, .. } => Some(event),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_unanswered_callee_is_cancelled_at_the_ring_timeout_and_the_caller_told() {
    let mut rig = Rig::new(41000..=41009).await;
    rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee.respond(rig.now, callee, 180, None);
    rig.run();
    assert!(
        matches!(
            leg_events(&mut rig.caller)[..],
            [LegEvent::Progress { code: 180, .. }]
        ),
        "{:#?}",
        rig.wire
    );
    // Just before the timeout nothing is cancelled; just after, the callee is.
    rig.advance(RING_TIMEOUT.as_secs() - 1);
    assert_eq!(rig.sent("core>callee CANCEL"), 0, "{:#?}", rig.wire);
    rig.advance(2);
    assert_eq!(rig.sent("core>callee CANCEL"), 1, "{:#?}", rig.wire);
    let caller_saw = leg_events(&mut rig.caller);
    assert!(
        caller_saw
            .iter()
            .any(|e| matches!(e, LegEvent::Failed { code: 408 | 480 })),
        "{caller_saw:?}\n{:#?}",
        rig.wire
    );
    let record = rig.record();
    assert_eq!(record.status, CallStatus::NoAnswer, "{record:?}");
    assert_eq!(record.hangup_by, Some(HangupBy::System));
}

#[tokio::test]
async fn a_callee_answer_that_crosses_the_callers_cancel_is_acked_and_hung_up() {
    let mut rig = Rig::new(41010..=41019).await;
    let caller = rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee.respond(rig.now, callee, 180, None);
    rig.run();
    // The caller gives up as the callee answers: the CANCEL reaches the core first.
    rig.caller.hangup(rig.now, caller, 487);
    rig.callee
        .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    let wire = rig.wire.join("\n");
    assert!(
        wire.contains("caller>core CANCEL") && wire.contains("core>caller SIP/2.0 487"),
        "{wire}"
    );
    // The answer came too late: the callee is acknowledged and sent a BYE, once.
    assert_eq!(rig.sent("core>callee ACK"), 1, "{wire}");
    assert_eq!(rig.sent("core>callee BYE"), 1, "{wire}");
    assert!(
        leg_events(&mut rig.callee)
            .iter()
            .any(|e| matches!(e, LegEvent::Bye)),
        "{wire}"
    );
    // Nothing more: no retransmission of the BYE once answered, no answer to the caller.
    rig.advance(40);
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    assert_eq!(
        rig.sent("core>caller SIP/2.0 200"),
        1,
        "only the CANCEL's 200"
    );
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Canceled, "{record:?}");
    assert_eq!(record.hangup_by, Some(HangupBy::Caller));
}

#[tokio::test]
async fn an_answered_call_relays_the_answer_and_the_callers_bye() {
    let mut rig = Rig::new(41020..=41029).await;
    let caller = rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee
        .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    // The caller gets the answer with the core's media address in it, and acknowledges it.
    let answered = leg_events(&mut rig.caller);
    let Some(LegEvent::Answered { body: Some(body) }) = answered.first() else {
        panic!("{answered:?}\n{:#?}", rig.wire);
    };
    let answer = String::from_utf8_lossy(&body.data).into_owned();
    assert!(answer.contains("c=IN IP4 127.0.0.1"), "{answer}");
    rig.caller.ack(caller, None);
    rig.run();
    assert_eq!(rig.sent("core>callee ACK"), 1, "{:#?}", rig.wire);
    // Still up a while later (no ACK timeout, no session ended by a timer).
    rig.advance(120);
    assert_eq!(rig.sent("core>callee BYE"), 0, "{:#?}", rig.wire);
    rig.caller.hangup(rig.now, caller, 0);
    rig.run();
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    assert_eq!(
        rig.sent("callee>core SIP/2.0 200"),
        2,
        "the INVITE's and the BYE's"
    );
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.hangup_by, Some(HangupBy::Caller));
    // Dated by the instants the core was given: two minutes of virtual time.
    assert_eq!(record.duration_secs, 120, "{record:?}");
    assert_eq!(
        record.ended_at.unwrap() - record.answered_at.unwrap(),
        120_000
    );
    assert_eq!(record.trunk_in.as_deref(), Some("carrier-a"));
    assert_eq!(record.trunk_out.as_deref(), Some("carrier-b"));
}

#[tokio::test]
async fn while_the_store_is_overloaded_new_calls_get_503_and_nothing_is_written() {
    let mut rig = Rig::new(41260..=41269).await;
    rig.core.set_store_overloaded(true);
    rig.call();
    rig.run();
    assert!(
        matches!(
            leg_events(&mut rig.caller)[..],
            [LegEvent::Failed { code: 503 }]
        ),
        "{:#?}",
        rig.wire
    );
    assert_eq!(rig.sent("core>callee"), 0, "{:#?}", rig.wire);
    assert!(rig.writes.is_empty(), "{:?}", rig.writes);
    // Once the writer catches up, calls are taken and their rows written again.
    rig.core.set_store_overloaded(false);
    rig.call();
    rig.run();
    assert_eq!(rig.sent("core>callee INVITE"), 1, "{:#?}", rig.wire);
    assert!(
        (rig.writes.iter()).any(|w| matches!(w, StoreWrite::Call(c) if c.to == "+15551234")),
        "{:?}",
        rig.writes
    );
}

/// An answered call: the caller's leg and the callee's.
async fn answered(rig: &mut Rig) -> (LegId, LegId) {
    let caller = rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee
        .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    assert!(
        matches!(leg_events(&mut rig.caller)[..], [LegEvent::Answered { .. }]),
        "{:#?}",
        rig.wire
    );
    rig.caller.ack(caller, None);
    rig.run();
    (caller, callee)
}

/// The media engine is the driver's: the core takes two of the pairs it was handed, asks
/// for them on one worker, bridges them before the callee is reached, tells each what its
/// peer's description said as the descriptions arrive, and gives both back at the hang-up.
#[tokio::test]
async fn a_routed_calls_media_is_two_ready_pairs_bridged_configured_and_given_back() {
    let mut rig = Rig::new(41300..=41319).await;
    let caller = rig.call();
    rig.run();
    let callee = rig.incoming();
    let (a, b) = match &rig.media[..] {
        [
            MediaCommand::Activate { id: a, near: None },
            MediaCommand::Activate {
                id: b,
                near: Some(near),
            },
            MediaCommand::Configure { id: ca, config },
            MediaCommand::Bridge { a: ba, b: bb },
        ] if near == a && ca == a && (ba, bb) == (a, b) => {
            let caller_rtp = Some(addr("10.0.0.2:4000"));
            assert_eq!(config.remote_rtp, caller_rtp, "the caller's offer");
            assert!(!config.expect_rtp, "not answered yet");
            (*a, *b)
        }
        other => panic!("{other:#?}"),
    };
    // The callee is offered the second pair's port, the caller answered with the first's.
    let offer = (rig.sent_by_core.iter())
        .find(|m| m.starts_with("INVITE"))
        .expect("an INVITE to the callee");
    let b_port = rig.port_of[&b];
    assert!(offer.contains(&format!("m=audio {b_port} ")), "{offer}");
    rig.media.clear();
    rig.callee
        .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    let answered: Vec<_> = (rig.media.iter())
        .filter_map(|c| match c {
            MediaCommand::Configure { id, config } => Some((*id, config.remote_rtp)),
            _ => None,
        })
        .collect();
    assert!(
        answered.contains(&(b, Some(addr("10.0.0.3:5000")))),
        "the callee's answer configures its pair: {answered:?}"
    );
    let answer = (rig.sent_by_core.iter())
        .find(|m| m.starts_with("SIP/2.0 200") && m.contains("m=audio"))
        .expect("the caller's 200");
    let a_port = rig.port_of[&a];
    assert!(answer.contains(&format!("m=audio {a_port} ")), "{answer}");
    rig.caller.ack(caller, None);
    rig.run();
    rig.media.clear();
    rig.caller.hangup(rig.now, caller, 200);
    rig.run();
    let released: Vec<_> = (rig.media.iter())
        .filter_map(|c| match c {
            MediaCommand::Release { id } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(released, [a, b], "{:#?}", rig.media);
    assert_eq!(rig.record().status, CallStatus::Completed);
}

/// With no pair ready (the driver could bind none: the range is used up), a call is refused
/// with 503 and nothing is asked of the engine.
#[tokio::test]
async fn with_no_pair_ready_a_call_is_refused_503_and_the_engine_asked_nothing() {
    let mut rig = Rig::new(41320..=41329).await;
    rig.unbound = true;
    rig.call();
    rig.run();
    assert_eq!(rig.sent("core>caller SIP/2.0 503"), 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee"), 0, "{:#?}", rig.wire);
    assert!(rig.media.is_empty(), "{:#?}", rig.media);
    let refused = (rig.writes.iter().rev())
        .find_map(|w| match w {
            StoreWrite::Call(c) if c.ended_at.is_some() => Some(c.clone()),
            _ => None,
        })
        .expect("the refused call's record");
    assert_eq!(refused.status, CallStatus::Failed);
    assert_eq!(refused.hangup_cause.as_deref(), Some("no-media-ports"));
    // Pairs again: calls are taken again.
    rig.unbound = false;
    rig.call();
    rig.run();
    rig.incoming();
}

#[tokio::test]
async fn early_media_reaches_the_caller_with_the_cores_address_before_the_answer() {
    let mut rig = Rig::new(41030..=41039).await;
    rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee
        .respond(rig.now, callee, 183, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    let progress = leg_events(&mut rig.caller);
    let [LegEvent::Progress { code: 183, body }] = &progress[..] else {
        panic!("{progress:?}\n{:#?}", rig.wire);
    };
    let early = text(body);
    assert!(
        early.contains("c=IN IP4 127.0.0.1") && !early.contains("10.0.0.3"),
        "the core anchors early media: {early}"
    );
    assert!(early.contains("RTP/AVP 0"), "{early}");
}

#[tokio::test]
async fn a_hold_re_invite_is_relayed_to_the_other_party_and_its_answer_back() {
    let mut rig = Rig::new(41040..=41049).await;
    let (caller, callee) = answered(&mut rig).await;
    assert!(
        rig.caller
            .reinvite(rig.now, caller, sdp_with("10.0.0.2", 4000, 2, "sendonly"))
    );
    rig.run();
    let relayed = leg_events(&mut rig.callee);
    let Some(LegEvent::ReInvite { body, .. }) = relayed
        .iter()
        .find(|e| matches!(e, LegEvent::ReInvite { .. }))
    else {
        panic!("{relayed:?}\n{:#?}", rig.wire);
    };
    let offer = text(body);
    assert!(
        offer.contains("a=sendonly") && offer.contains("c=IN IP4 127.0.0.1"),
        "{offer}"
    );
    // The caller waits for the callee's answer; it comes back rewritten.
    assert_eq!(
        rig.sent("core>caller SIP/2.0 200"),
        1,
        "only the INVITE's so far"
    );
    let held = sdp_with("10.0.0.3", 5000, 2, "recvonly");
    rig.callee
        .respond_reinvite(rig.now, callee, 200, Some(held));
    rig.run();
    let result = leg_events(&mut rig.caller);
    let Some(LegEvent::ReInviteResult { code: 200, body }) = result.first() else {
        panic!("{result:?}\n{:#?}", rig.wire);
    };
    let answer = text(body);
    assert!(
        answer.contains("a=recvonly") && answer.contains("c=IN IP4 127.0.0.1"),
        "{answer}"
    );
}

/// A new offer in an UPDATE (RFC 3311) goes on as an UPDATE to a party that allows one (its
/// Allow in its 200), its answer comes back rewritten, and no ACK follows on either leg, nor a
/// hang-up for the want of one.
#[tokio::test]
async fn an_update_is_relayed_as_an_update_and_answered_without_an_ack() {
    let mut rig = Rig::new(41130..=41139).await;
    let (caller, callee) = answered(&mut rig).await;
    let hold = sdp_with("10.0.0.2", 4000, 2, "sendonly");
    assert!(rig.caller.offer(rig.now, caller, hold, true));
    rig.run();
    assert_eq!(rig.sent("core>callee UPDATE"), 1, "{:#?}", rig.wire);
    let relayed = leg_events(&mut rig.callee);
    let Some(LegEvent::ReInvite { body, update: true }) = relayed
        .iter()
        .find(|e| matches!(e, LegEvent::ReInvite { .. }))
    else {
        panic!("{relayed:?}\n{:#?}", rig.wire);
    };
    let offer = text(body);
    assert!(
        offer.contains("a=sendonly") && offer.contains("c=IN IP4 127.0.0.1"),
        "{offer}"
    );
    let held = sdp_with("10.0.0.3", 5000, 2, "recvonly");
    rig.callee
        .respond_reinvite(rig.now, callee, 200, Some(held));
    rig.run();
    let result = leg_events(&mut rig.caller);
    let Some(LegEvent::ReInviteResult { code: 200, body }) = result.first() else {
        panic!("{result:?}\n{:#?}", rig.wire);
    };
    let answer = text(body);
    assert!(
        answer.contains("a=recvonly") && answer.contains("c=IN IP4 127.0.0.1"),
        "{answer}"
    );
    rig.advance(40);
    assert_eq!(
        rig.sent("core>callee ACK"),
        1,
        "the INVITE's only: {:#?}",
        rig.wire
    );
    assert_eq!(
        rig.sent("caller>core ACK"),
        1,
        "the INVITE's only: {:#?}",
        rig.wire
    );
    assert_eq!(rig.sent("core>caller BYE") + rig.sent("core>callee BYE"), 0);
}

/// Session timers (RFC 4028) on each leg of a routed call: the caller asked for 1800 s and
/// refreshes; the core refreshes toward the callee (which asked it to) with an UPDATE at half
/// the interval. When the caller's refreshes stop arriving, the core ends the call 32 s before
/// the interval runs out: a BYE to each party, `session-expired` in the record.
#[tokio::test]
async fn a_routed_call_whose_caller_stops_refreshing_ends_at_the_session_expiry() {
    let mut rig = Rig::new(41140..=41149).await;
    answered(&mut rig).await;
    rig.advance(1000);
    assert_eq!(rig.sent("caller>core UPDATE"), 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee UPDATE"), 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>caller BYE") + rig.sent("core>callee BYE"), 0);
    // The caller's UPDATE at 900 s was its last to arrive: the session ends at 900 + 1768 s.
    rig.caller_lost = true;
    rig.advance(1667);
    assert_eq!(rig.sent("core>caller BYE") + rig.sent("core>callee BYE"), 0);
    rig.advance(2);
    // (The caller's BYE is sent again, unanswered: the caller is gone.)
    assert!(rig.sent("core>caller BYE") >= 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee UPDATE"), 2, "at 900 s and 1800 s");
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.hangup_cause.as_deref(), Some("session-expired"));
    assert_eq!(record.hangup_by, Some(HangupBy::System));
}

/// Between two trusted trunks (RFC 3325's trust domain) the caller's P-Asserted-Identity,
/// Privacy, Diversion and History-Info reach the callee as they came; toward a trunk outside
/// it none does.
#[tokio::test]
async fn identities_pass_between_trusted_trunks_and_no_further() {
    let header = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    let asserted = vec![
        header("P-Asserted-Identity", "<sip:+15550000@carrier-a.example>"),
        header("P-Asserted-Identity", "<tel:+15550000>"),
        header("Privacy", "id"),
        header(
            "Diversion",
            "<sip:+15557777@carrier-a.example>;reason=no-answer",
        ),
        header("History-Info", "<sip:+15557777@carrier-a.example>;index=1"),
    ];
    let mut rig = Rig::new(41150..=41159).await;
    rig.call_asserting(asserted.clone());
    rig.run();
    let invite = match events(&mut rig.callee).into_iter().next() {
        Some(UaEvent::Incoming { request, .. }) => request,
        other => panic!("{other:?}"),
    };
    for name in [
        "P-Asserted-Identity",
        "Privacy",
        "Diversion",
        "History-Info",
    ] {
        let sent: Vec<&str> = (asserted.iter())
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        let got: Vec<&str> = invite.headers.all(name).collect();
        assert_eq!(got, sent, "{name}");
    }

    let mut rig = Rig::new(41160..=41169).await;
    rig.core.routing.trunks[1].trusted = false;
    rig.call_asserting(asserted);
    rig.run();
    let invite = match events(&mut rig.callee).into_iter().next() {
        Some(UaEvent::Incoming { request, .. }) => request,
        other => panic!("{other:?}"),
    };
    for name in [
        "P-Asserted-Identity",
        "Privacy",
        "Diversion",
        "History-Info",
    ] {
        assert_eq!(invite.headers.get(name), None, "{name}");
    }
}

#[tokio::test]
async fn shutdown_hangs_up_both_parties_and_closes_the_record() {
    let mut rig = Rig::new(41050..=41059).await;
    answered(&mut rig).await;
    assert!(!rig.core.is_done());
    rig.core.begin_shutdown(rig.now);
    rig.run();
    assert_eq!(rig.sent("core>caller BYE"), 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.hangup_by, Some(HangupBy::System));
    assert!(rig.core.is_done(), "no call left once the media is back");
}

/// The events an application received so far.
fn received(events: &mut mpsc::Receiver<CallEvent>) -> Vec<EventKind> {
    std::iter::from_fn(|| events.try_recv().ok())
        .map(|e| e.kind)
        .collect()
}

/// An incoming call an application answered: the caller's leg, the call's SID, the
/// application's events.
fn answered_by_app(rig: &mut Rig) -> (LegId, String, mpsc::Receiver<CallEvent>) {
    let (caller, sid, app) = offered_to_app(rig);
    rig.command(&sid, CallCommand::Answer).unwrap();
    assert!(
        matches!(leg_events(&mut rig.caller)[..], [LegEvent::Answered { .. }]),
        "{:#?}",
        rig.wire
    );
    rig.caller.ack(caller, None);
    rig.run();
    (caller, sid, app)
}

#[tokio::test]
async fn an_application_call_is_hung_up_at_its_time_limit_and_not_before() {
    let mut rig = Rig::new(41060..=41069).await;
    let (_, sid, mut app) = answered_by_app(&mut rig);
    // A limit set, then replaced by a longer one: only the last counts.
    rig.command(&sid, CallCommand::LimitDuration(Duration::from_secs(5)))
        .unwrap();
    rig.command(&sid, CallCommand::LimitDuration(Duration::from_secs(60)))
        .unwrap();
    rig.advance(59);
    assert_eq!(rig.sent("core>caller BYE"), 0, "{:#?}", rig.wire);
    rig.advance(2);
    assert_eq!(rig.sent("core>caller BYE"), 1, "{:#?}", rig.wire);
    // The application hears of the hang-up with its cause once the media is back.
    let record = rig.record();
    assert_eq!(
        record.hangup_cause.as_deref(),
        Some("time-limit"),
        "{record:?}"
    );
    let heard = received(&mut app);
    assert!(
        heard.iter().any(|k| matches!(
            k,
            EventKind::Hangup { cause: Some(c), .. } if c == "time-limit"
        )),
        "{heard:?}"
    );
}

#[tokio::test]
async fn a_gather_ends_at_its_timeout() {
    let mut rig = Rig::new(41070..=41079).await;
    let (_, sid, mut app) = answered_by_app(&mut rig);
    received(&mut app);
    let spec = GatherSpec {
        timeout: Duration::from_secs(5),
        first_timeout: None,
        total_timeout: None,
        finish_on_key: Some('#'),
        num_digits: None,
        after_playback: false,
    };
    rig.command(&sid, CallCommand::Gather(spec)).unwrap();
    rig.advance(4);
    assert_eq!(gather_ends(&mut app), []);
    rig.advance(2);
    assert_eq!(gather_ends(&mut app), [(String::new(), "timeout")]);
}

#[tokio::test]
async fn an_alarm_rings_once_when_due_a_new_one_replaces_it_and_a_cleared_one_is_silent() {
    let mut rig = Rig::new(41180..=41189).await;
    let (_, sid, mut app) = answered_by_app(&mut rig);
    received(&mut app);
    let alarms = |app: &mut mpsc::Receiver<CallEvent>| -> Vec<u64> {
        (received(app).into_iter())
            .filter_map(|k| match k {
                EventKind::Alarm { id } => Some(id),
                _ => None,
            })
            .collect()
    };
    let set = |id, secs| CallCommand::SetAlarm {
        id,
        after: Duration::from_secs(secs),
    };
    rig.command(&sid, set(1, 10)).unwrap();
    rig.advance(9);
    assert_eq!(alarms(&mut app), Vec::<u64>::new());
    rig.advance(2);
    assert_eq!(alarms(&mut app), [1]);
    rig.advance(30);
    assert_eq!(alarms(&mut app), Vec::<u64>::new(), "an alarm rings once");
    // A second alarm replaces the first: only the second rings, at its own time.
    rig.command(&sid, set(2, 5)).unwrap();
    rig.command(&sid, set(3, 20)).unwrap();
    rig.advance(6);
    assert_eq!(alarms(&mut app), Vec::<u64>::new());
    rig.advance(15);
    assert_eq!(alarms(&mut app), [3]);
    // Cleared: silent.
    rig.command(&sid, set(4, 5)).unwrap();
    rig.command(&sid, CallCommand::ClearAlarm).unwrap();
    rig.advance(10);
    assert_eq!(alarms(&mut app), Vec::<u64>::new());
    // An ended call's alarm does not ring, and the alarm is not part of its history.
    rig.command(&sid, set(5, 5)).unwrap();
    rig.command(&sid, CallCommand::Hangup).unwrap();
    rig.advance(10);
    assert_eq!(alarms(&mut app), Vec::<u64>::new());
    let record = rig.record();
    let stored = rig.stored_events(&record.id);
    let kinds: Vec<&str> = stored.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"hangup") && !kinds.contains(&"alarm"),
        "{kinds:?}"
    );
}

/// The gather's events so far: (digits, reason) of each end.
fn gather_ends(app: &mut mpsc::Receiver<CallEvent>) -> Vec<(String, &'static str)> {
    received(app)
        .into_iter()
        .filter_map(|k| match k {
            EventKind::GatherEnded { digits, reason } => Some((digits, reason)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_digit_restarts_the_gathers_wait_from_when_it_arrived() {
    let mut rig = Rig::new(41100..=41109).await;
    let (caller, sid, mut app) = answered_by_app(&mut rig);
    received(&mut app);
    let spec = GatherSpec {
        timeout: Duration::from_secs(5),
        first_timeout: None,
        total_timeout: Some(Duration::from_secs(20)),
        finish_on_key: Some('#'),
        num_digits: None,
        after_playback: false,
    };
    rig.command(&sid, CallCommand::Gather(spec)).unwrap();
    rig.advance(3);
    let relay = Body {
        content_type: "application/dtmf-relay".into(),
        data: "Signal=7\r\nDuration=160\r\n".into(),
    };
    assert!(rig.caller.info(rig.now, caller, relay));
    rig.run();
    // Five seconds from the digit (t = 3 s), not from the gather (t = 0).
    rig.advance(4);
    assert_eq!(gather_ends(&mut app), []);
    rig.advance(2);
    assert_eq!(gather_ends(&mut app), [("7".to_owned(), "timeout")]);
}

/// The core's view of `call` now, as a dialect asks for it.
fn view(rig: &mut Rig, call: &str) -> Result<CallView, CallError> {
    let (reply, mut answer) = tokio::sync::oneshot::channel();
    rig.request(AppRequest::View(call.to_owned(), reply));
    answer.try_recv().expect("the core replies at once")
}

fn recording(sid: &str) -> CallCommand {
    CallCommand::RecordStart(RecordOptions {
        channels: switchboard_media::record::Channels::Mono,
        format: switchboard_media::record::RecordFormat::Pcm16,
        tracks: switchboard_media::TapTracks::Both,
        trim_silence: false,
        sid: Some(sid.to_owned()),
        origin: RecordingOrigin::Api,
        stop: Default::default(),
    })
}

#[tokio::test]
async fn the_cores_view_of_a_call_names_its_status_and_the_recording_running() {
    let mut rig = Rig::new(41110..=41119).await;
    let (_, sid, mut app) = offered_to_app(&mut rig);
    let ringing = view(&mut rig, &sid).unwrap();
    assert_eq!(
        (ringing.status, ringing.is_up()),
        (CallStatus::Ringing, false)
    );
    rig.command(&sid, CallCommand::Answer).unwrap();
    assert!(view(&mut rig, &sid).unwrap().is_up());
    received(&mut app);
    rig.command(&sid, recording("RE1")).unwrap();
    assert_eq!(
        view(&mut rig, &sid).unwrap().recording.as_deref(),
        Some("RE1")
    );
    // A new recording replaces the one running.
    rig.command(&sid, recording("RE2")).unwrap();
    assert_eq!(
        view(&mut rig, &sid).unwrap().recording.as_deref(),
        Some("RE2")
    );
    rig.command(&sid, CallCommand::RecordStop).unwrap();
    assert_eq!(view(&mut rig, &sid).unwrap().recording, None);
    let started: Vec<_> = received(&mut app)
        .into_iter()
        .filter_map(|k| match k {
            EventKind::RecordingStarted { recording } => Some(recording),
            _ => None,
        })
        .collect();
    assert_eq!(started, ["RE1", "RE2"]);
    assert_eq!(
        view(&mut rig, "CA00000000000000000000000000000000"),
        Err(CallError::NotFound(
            "CA00000000000000000000000000000000".into()
        ))
    );
}

/// An incoming call offered to an application, not answered: the caller's leg, the call's SID
/// and the application's events.
fn offered_to_app(rig: &mut Rig) -> (LegId, String, mpsc::Receiver<CallEvent>) {
    let (tx, mut app) = mpsc::channel(64);
    rig.request(AppRequest::Control {
        dialed: api::Dialed::Prefix(String::new()),
        events: tx,
    });
    let caller = rig.call();
    rig.run();
    match app.try_recv() {
        Ok(CallEvent {
            call,
            kind: EventKind::Incoming { to, .. },
            ..
        }) => {
            assert_eq!(to, "+15551234");
            (caller, call, app)
        }
        other => panic!("the application was not offered the call: {other:?}"),
    }
}

#[tokio::test]
async fn an_incoming_call_left_without_a_command_is_rejected_and_a_command_stands_the_wait_down() {
    let mut rig = Rig::new(41080..=41089).await;
    let (_, sid, _app) = offered_to_app(&mut rig);
    rig.command(
        &sid,
        CallCommand::ExpectCommand(Some(Duration::from_secs(2))),
    )
    .unwrap();
    rig.advance(1);
    assert_eq!(rig.sent("core>caller SIP/2.0 480"), 0, "{:#?}", rig.wire);
    rig.advance(2);
    assert_eq!(rig.sent("core>caller SIP/2.0 480"), 1, "{:#?}", rig.wire);
    let record = rig.record();
    assert_eq!(
        (record.status, record.hangup_cause.as_deref()),
        (CallStatus::NoAnswer, Some("no-command"))
    );

    // Another call: a command within the wait (any: here a time limit) stands it down.
    let mut rig = Rig::new(41090..=41099).await;
    let (_, sid, _app) = offered_to_app(&mut rig);
    rig.command(
        &sid,
        CallCommand::ExpectCommand(Some(Duration::from_secs(2))),
    )
    .unwrap();
    rig.command(&sid, CallCommand::LimitDuration(Duration::from_secs(3600)))
        .unwrap();
    rig.advance(10);
    assert_eq!(rig.sent("core>caller SIP/2.0 480"), 0, "{:#?}", rig.wire);
    // It is for unanswered incoming calls only.
    rig.command(&sid, CallCommand::Answer).unwrap();
    assert!(matches!(
        rig.command(
            &sid,
            CallCommand::ExpectCommand(Some(Duration::from_secs(1)))
        ),
        Err(CallError::InvalidState { .. })
    ));
}

/// A call a route connects is a call like any other: the core's view finds it, an observer
/// hears its events, it takes the commands on its caller's media and a time limit (both
/// parties hung up at it), and refuses the ones that would answer it or move it.
#[tokio::test]
async fn a_routed_call_takes_commands_and_is_hung_up_on_both_legs_at_its_time_limit() {
    let mut rig = Rig::new(41120..=41129).await;
    answered(&mut rig).await;
    let sid = rig
        .core
        .sids
        .keys()
        .next()
        .cloned()
        .expect("a routed call has a SID");
    assert_eq!(view(&mut rig, &sid).unwrap().status, CallStatus::InProgress);
    let (tx, mut observer) = mpsc::channel(64);
    rig.request(AppRequest::Subscribe {
        call: sid.clone(),
        events: tx,
    });
    assert_eq!(
        rig.command(&sid, CallCommand::Answer),
        Err(CallError::Routed)
    );
    let elsewhere = CallCommand::Bridge("CA00000000000000000000000000000000".into());
    assert_eq!(rig.command(&sid, elsewhere), Err(CallError::Routed));
    rig.command(&sid, recording("RE1")).unwrap();
    assert_eq!(
        view(&mut rig, &sid).unwrap().recording.as_deref(),
        Some("RE1")
    );
    rig.command(&sid, CallCommand::LimitDuration(Duration::from_secs(60)))
        .unwrap();
    rig.advance(59);
    assert_eq!(rig.sent("core>caller BYE"), 0, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee BYE"), 0, "{:#?}", rig.wire);
    rig.advance(2);
    assert_eq!(rig.sent("core>caller BYE"), 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.hangup_cause.as_deref(), Some("time-limit"));
    let legs: Vec<&str> = record.legs.iter().map(|l| l.leg.as_str()).collect();
    assert_eq!(legs, ["caller", "callee"], "both legs, in the call's order");
    // The hang-up, then the recording it stopped, saved.
    let heard = received(&mut observer);
    assert!(
        matches!(
            &heard[..],
            [
                EventKind::RecordingStarted { .. },
                EventKind::Hangup { cause: Some(c), .. },
                EventKind::RecordingSaved { error: None, .. },
            ] if c == "time-limit"
        ),
        "{heard:?}"
    );
}

#[tokio::test]
async fn a_route_that_asks_for_services_hands_its_call_to_them_at_the_answer_and_hears_back() {
    use crate::call::routing::{RouteFeatures, RouteServices, RouteStream, StreamProtocol};
    use switchboard_media::TapTracks;
    let services = RouteServices {
        stream: Some(RouteStream {
            url: "wss://bot.example/media".into(),
            tracks: TapTracks::Inbound,
            protocol: StreamProtocol::Twilio,
        }),
        transcribe: Some(TapTracks::Both),
        detect_machine: true,
    };
    let features = RouteFeatures {
        services: services.clone(),
        ..Default::default()
    };
    let mut rig = Rig::routed(41240..=41249, features).await;
    let caller = rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee.respond(rig.now, callee, 180, None);
    rig.run();
    assert!(rig.served.is_empty(), "served before the answer");
    rig.callee
        .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    rig.caller.ack(caller, None);
    rig.run();
    let sid = rig.core.sids.keys().next().cloned().expect("a SID");
    let [served] = &rig.served[..] else {
        panic!("served {:?}", rig.served);
    };
    assert_eq!(served.call, sid);
    assert_eq!(
        (served.from.as_str(), served.to.as_str()),
        ("+15550000", "+15551234")
    );
    assert_eq!(served.services, services);
    // What the services find comes back as the call's events: a final transcript is kept in
    // its history, an interim one only shown to its observers.
    let (tx, mut observer) = mpsc::channel(64);
    rig.request(AppRequest::Subscribe {
        call: sid.clone(),
        events: tx,
    });
    let transcript = |text: &str, is_final| {
        CallCommand::Report(EventKind::Transcript {
            track: "outbound",
            text: text.into(),
            confidence: 0.9,
            is_final,
        })
    };
    rig.command(&sid, transcript("hello", false)).unwrap();
    rig.command(&sid, transcript("hello there", true)).unwrap();
    let detected = EventKind::MachineDetection {
        result: "human",
        after_ms: 1200,
    };
    rig.command(&sid, CallCommand::Report(detected.clone()))
        .unwrap();
    let heard = received(&mut observer);
    assert_eq!(heard.len(), 3, "{heard:?}");
    assert_eq!(heard[2], detected);
    let stored: Vec<bool> = heard.iter().map(EventKind::stored).collect();
    assert_eq!(stored, [false, true, true]);
    // The core's own events are not another part's to report.
    let forged = CallCommand::Report(EventKind::Answered { codec: None });
    assert!(matches!(
        rig.command(&sid, forged),
        Err(CallError::BadArgument(_))
    ));
    // A route without services serves none.
    let mut plain = Rig::new(41250..=41259).await;
    answered(&mut plain).await;
    assert!(plain.served.is_empty(), "{:?}", plain.served);
}

/// A URI dialed over TLS by a host name has the transports check that name in the
/// certificate there; one dialed by address, over another transport, or at a trunk's address
/// (whose `tls_name` rules) tells them nothing.
#[tokio::test]
async fn a_tls_uri_dialed_by_name_names_the_certificate_to_expect() {
    let mut rig = Rig::new(41170..=41179).await;
    while rig.core.poll_output().is_some() {}
    let hop: SocketAddr = "10.0.0.9:5061".parse().unwrap();
    let peer = |transport, remote| Peer {
        transport,
        remote,
        local: addr(CORE),
        conn: None,
    };
    let uri = |text: &str| Uri::try_from(text).unwrap();
    let named = |core: &mut CallCore| {
        std::iter::from_fn(|| core.poll_output())
            .filter_map(|o| match o {
                Output::TlsName { addr, name } => Some((addr, name.to_str().into_owned())),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let tls = peer(Transport::Tls, hop);
    rig.core
        .name_tls_destination(&uri("sips:alice@pbx.example.com"), hop, &tls);
    assert_eq!(named(&mut rig.core), [(hop, "pbx.example.com".to_owned())]);
    rig.core
        .name_tls_destination(&uri("sips:alice@10.0.0.9:5061"), hop, &tls);
    rig.core.name_tls_destination(
        &uri("sip:alice@pbx.example.com"),
        hop,
        &peer(Transport::Udp, hop),
    );
    let trunk = addr(CALLEE);
    rig.core.name_tls_destination(
        &uri("sips:bob@carrier.example.com"),
        trunk,
        &peer(Transport::Tls, trunk),
    );
    assert!(named(&mut rig.core).is_empty());
}

/// `alice` of account AC1, registered from two devices at the callee's address (two Contacts).
fn two_devices(rig: &mut Rig) {
    let users = HashMap::from([("alice".to_owned(), ("secret".to_owned(), "AC1".to_owned()))]);
    rig.request(AppRequest::AccountUsers(users));
    let peer = rig.callee.peer_for(Transport::Udp, addr(CORE)).unwrap();
    for device in ["alice-desk", "alice-laptop"] {
        let params = switchboard_sip::ua::RegisterParams {
            aor: Uri::try_from("sip:alice@10.0.0.1").unwrap(),
            contact: format!("sip:{device}@{CALLEE}"),
            expires: 600,
            peer,
            credentials: Some(("alice".into(), "secret".into())),
        };
        rig.callee.register(rig.now, params).unwrap();
        rig.run();
    }
    let registered = events(&mut rig.callee)
        .into_iter()
        .filter(|e| matches!(e, UaEvent::Registered { code: 200, .. }))
        .count();
    assert_eq!(registered, 2, "{:#?}", rig.wire);
}

/// An application's call to `alice`: its SID, its events and the INVITEs her devices got.
fn call_alice(rig: &mut Rig) -> (String, mpsc::Receiver<CallEvent>, Vec<(LegId, String)>) {
    let (events_tx, app) = mpsc::channel(64);
    let (reply, mut answer) = tokio::sync::oneshot::channel();
    let originate = Originate {
        to: Target::User("alice".into()),
        from: "+15550000".into(),
        display_name: None,
        headers: Vec::new(),
        ring_timeout: RING_TIMEOUT,
        parent: None,
        events: events_tx,
        account: Some("AC1".into()),
        system: false,
    };
    rig.request(AppRequest::Originate(Box::new(originate), reply));
    let sid = answer.try_recv().unwrap().expect("the call is placed");
    let rung = events(&mut rig.callee)
        .into_iter()
        .filter_map(|e| match e {
            UaEvent::Incoming { leg, request, .. } => Some((leg, request.uri.to_string())),
            _ => None,
        })
        .collect();
    (sid, app, rung)
}

/// A call to a user rings every device it registered; the one that answers is the call's
/// leg, the other is cancelled with RFC 3326's reason, and the record names the device that
/// answered.
#[tokio::test]
async fn a_call_to_a_user_rings_each_device_and_the_first_to_answer_takes_it() {
    let mut rig = Rig::new(41200..=41209).await;
    two_devices(&mut rig);
    let (sid, mut app, rung) = call_alice(&mut rig);
    let uris: Vec<&str> = rung.iter().map(|(_, uri)| uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "sip:alice-desk@10.0.0.3:5060",
            "sip:alice-laptop@10.0.0.3:5060"
        ]
    );
    let (desk, laptop) = (rung[0].0, rung[1].0);
    // The laptop rings, the desk phone too; the laptop answers.
    rig.callee.respond(rig.now, laptop, 180, None);
    rig.run();
    rig.callee.respond(rig.now, desk, 180, None);
    rig.callee
        .respond(rig.now, laptop, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    let cancels: Vec<&String> = (rig.sent_by_core.iter())
        .filter(|m| m.starts_with("CANCEL "))
        .collect();
    assert_eq!(cancels.len(), 1, "{:#?}", rig.wire);
    assert!(
        cancels[0].starts_with("CANCEL sip:alice-desk@"),
        "{}",
        cancels[0]
    );
    assert!(
        cancels[0].contains("Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n"),
        "{}",
        cancels[0]
    );
    assert!(
        leg_events(&mut rig.callee).contains(&LegEvent::Cancelled),
        "the desk phone stops ringing"
    );
    let heard = received(&mut app);
    assert_eq!(
        heard
            .iter()
            .filter(|k| matches!(k, EventKind::Ringing))
            .count(),
        1,
        "{heard:?}"
    );
    assert!(
        heard
            .iter()
            .any(|k| matches!(k, EventKind::Answered { .. })),
        "{heard:?}"
    );
    // The call is the laptop's: the application's hang-up is a BYE to it.
    let laptop_call_id = rig.callee.call_id(laptop).unwrap().to_owned();
    rig.command(&sid, CallCommand::Hangup).unwrap();
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    assert!(
        leg_events(&mut rig.callee).contains(&LegEvent::Bye),
        "{:#?}",
        rig.wire
    );
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.to_uri, "sip:alice-laptop@10.0.0.3:5060");
    assert_eq!(record.sip_call_id, laptop_call_id);
}

/// A device that fails drops out while another rings; the call fails only with the last,
/// and with the best of their answers: busy, not unavailable.
#[tokio::test]
async fn a_call_to_a_user_fails_only_when_every_device_has_with_the_best_answer() {
    let mut rig = Rig::new(41210..=41219).await;
    two_devices(&mut rig);
    let (_sid, mut app, rung) = call_alice(&mut rig);
    let (desk, laptop) = (rung[0].0, rung[1].0);
    rig.callee.respond(rig.now, desk, 486, None);
    rig.run();
    assert!(
        !received(&mut app)
            .iter()
            .any(|k| matches!(k, EventKind::Hangup { .. })),
        "the laptop still rings"
    );
    rig.callee.respond(rig.now, laptop, 480, None);
    rig.run();
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Busy, "{record:?}");
    assert_eq!(record.sip_code, Some(486), "{record:?}");
    assert_eq!(rig.sent("core>callee CANCEL"), 0, "{:#?}", rig.wire);
}

/// The application gives up while the devices ring: each is cancelled, the call canceled.
#[tokio::test]
async fn a_call_to_a_user_hung_up_while_ringing_cancels_every_device() {
    let mut rig = Rig::new(41220..=41229).await;
    two_devices(&mut rig);
    let (sid, _app, rung) = call_alice(&mut rig);
    for (leg, _) in &rung {
        rig.callee.respond(rig.now, *leg, 180, None);
    }
    rig.run();
    rig.command(&sid, CallCommand::Hangup).unwrap();
    assert_eq!(rig.sent("core>callee CANCEL"), 2, "{:#?}", rig.wire);
    let cancelled = leg_events(&mut rig.callee)
        .into_iter()
        .filter(|e| *e == LegEvent::Cancelled)
        .count();
    assert_eq!(cancelled, 2, "{:#?}", rig.wire);
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Canceled, "{record:?}");
}

/// A number routed to a user rings each of its devices: the caller hears the ringing, the
/// device that answers is the callee (the other cancelled), and the caller's hang-up reaches
/// the device that answered.
#[tokio::test]
async fn a_route_to_a_user_rings_each_device_and_connects_the_one_that_answers() {
    let mut rig = Rig::new(41230..=41239).await;
    two_devices(&mut rig);
    rig.core.routing.routes = vec![Route {
        pattern: regex::Regex::new(".*").unwrap(),
        target: crate::call::routing::Target::User("alice".into()),
        features: Default::default(),
    }];
    let caller = rig.call();
    rig.run();
    let rung: Vec<(LegId, String)> = events(&mut rig.callee)
        .into_iter()
        .filter_map(|e| match e {
            UaEvent::Incoming { leg, request, .. } => Some((leg, request.uri.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(rung.len(), 2, "{:#?}", rig.wire);
    let (desk, laptop) = (rung[0].0, rung[1].0);
    assert!(rung[1].1.starts_with("sip:alice-laptop@"), "{rung:?}");
    rig.callee.respond(rig.now, desk, 180, None);
    rig.run();
    assert!(
        matches!(
            leg_events(&mut rig.caller)[..],
            [LegEvent::Progress { code: 180, .. }]
        ),
        "{:#?}",
        rig.wire
    );
    rig.callee
        .respond(rig.now, laptop, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    assert!(
        matches!(leg_events(&mut rig.caller)[..], [LegEvent::Answered { .. }]),
        "{:#?}",
        rig.wire
    );
    rig.caller.ack(caller, None);
    rig.run();
    let cancel = (rig.sent_by_core.iter())
        .find(|m| m.starts_with("CANCEL "))
        .expect("the desk phone is cancelled");
    assert!(cancel.starts_with("CANCEL sip:alice-desk@"), "{cancel}");
    assert!(cancel.contains("Reason: SIP;cause=200"), "{cancel}");
    rig.caller.hangup(rig.now, caller, 200);
    rig.run();
    let laptop_events: Vec<LegEvent> = events(&mut rig.callee)
        .into_iter()
        .filter_map(|e| match e {
            UaEvent::Leg { leg, event } if leg == laptop => Some(event),
            _ => None,
        })
        .collect();
    assert!(laptop_events.contains(&LegEvent::Bye), "{laptop_events:?}");
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.user_out.as_deref(), Some("alice"), "{record:?}");
}

/// An account's watchers (the live socket's) get each event of its calls as it happens; one
/// that falls behind (its queue full) is let go — its receiver sees the end after what it
/// had, so its socket closes with the reason — and the others go on; another account's
/// watcher hears nothing.
#[tokio::test]
async fn a_watcher_that_falls_behind_is_let_go_and_the_others_go_on() {
    let mut rig = Rig::new(41270..=41279).await;
    two_devices(&mut rig);
    let watch = |rig: &mut Rig, account: &str, room: usize| {
        let (events, rx) = mpsc::channel(room);
        let account = account.to_owned();
        rig.request(AppRequest::WatchAccount { account, events });
        rx
    };
    let mut keeping = watch(&mut rig, "AC1", 64);
    let mut slow = watch(&mut rig, "AC1", 1);
    let mut stranger = watch(&mut rig, "AC2", 64);
    let (sid, _app, rung) = call_alice(&mut rig);
    rig.callee.respond(rig.now, rung[0].0, 180, None);
    rig.run();
    let kept: Vec<CallEvent> = std::iter::from_fn(|| keeping.try_recv().ok()).collect();
    assert!(kept.len() >= 2, "{kept:?}");
    assert!(kept.iter().all(|e| e.call == sid), "{kept:?}");
    let seqs: Vec<u32> = kept.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..kept.len() as u32).collect::<Vec<_>>(), "in order");
    // The slow one had room for one: it gets that one, then the end.
    assert_eq!(slow.try_recv().map(|e| e.seq), Ok(0));
    assert_eq!(
        slow.try_recv().unwrap_err(),
        mpsc::error::TryRecvError::Disconnected
    );
    assert_eq!(
        stranger.try_recv().unwrap_err(),
        mpsc::error::TryRecvError::Empty
    );
    // The call goes on for the one that keeps up.
    rig.callee
        .respond(rig.now, rung[0].0, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    assert!(
        std::iter::from_fn(|| keeping.try_recv().ok()).any(|e| e.seq as usize >= kept.len()),
        "later events still reach the watcher that keeps up"
    );
}
