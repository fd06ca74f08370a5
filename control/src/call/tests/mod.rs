//! The call core driven through its sans-IO surface in virtual time: a carrier's user agent
//! calls through the core to another carrier's, every message encoded and parsed again on the
//! way, and the clock moves only when a test says so. There is no media engine: the rig hands
//! the core port pairs as a driver would, keeps the media commands it gets, and answers a
//! release with the engine's `Released`. What the core writes to the store is read from its
//! outputs. Applications reach the core as through [`CallControl`], their events read as it
//! sends them.

use super::*;
use crate::call::dial_plan::{DialPlan, Route, Trunk};
use crate::call::driver::control::{NewSubscriber, SubscriberKind};
use crate::call::driver::subscribers::Subscribers;
use crate::infra::store::CallRecord;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use switchboard_media::record::RecordingSaved;
use switchboard_media::{Endpoint, EndpointStats, MediaError, MediaOp, SourcePolicy};
use switchboard_media::{EndpointId, MediaCommand, MediaEvent};
use switchboard_sip::message::SipMessage;
use switchboard_sip::message::Uri;
use switchboard_sip::registrar::RegistrarConfig;
use switchboard_sip::transaction::Timers;
use switchboard_sip::transport::Inbound;
use switchboard_sip::transport::{Peer, Transport};
use switchboard_sip::ua::{Body, InviteParams, Listener, UaConfig};
use switchboard_sip::ua::{LegEvent, LegId, UaEvent, UserAgent};
use tokio::sync::mpsc;

mod app;
mod devices;
mod routed;

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
        shard: Default::default(),
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

/// Carrier A's calls routed to carrier B, with `features`.
fn dial_plan(features: crate::call::dial_plan::RouteFeatures) -> DialPlan {
    DialPlan {
        trunks: vec![trunk("carrier-a", CALLER), trunk("carrier-b", CALLEE)],
        routes: vec![Route {
            pattern: regex::Regex::new(".*").unwrap(),
            accounts: Vec::new(),
            target: crate::call::dial_plan::Target::Trunks(vec!["carrier-b".into()]),
            features,
        }],
        ..DialPlan::default()
    }
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
    /// Recordings stay unsaved after their endpoint's release, until `save_recordings`: a
    /// recorder still finishing its file when the call's media is already back.
    slow_recorder: bool,
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
    /// How long each message waited for the core (its load).
    sojourn: Duration,
    /// The applications' channels, as the driver holds them, and the answers the core gave.
    subscribers: Subscribers,
    next_subscriber: u64,
    answers: HashMap<RequestId, Answer>,
    next_request: u64,
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
        features: crate::call::dial_plan::RouteFeatures,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let routing = dial_plan(features);
        let core = CallCore::new(
            ua(CORE),
            routing,
            CoreConfig {
                ring_timeout: RING_TIMEOUT,
                recordings_dir: dir.path().join("recordings"),
                source_rate: None,
                caller_ids: None,
                account_limits: None,
                visit_key: None,
                shard: Default::default(),
                tally: None,
                media_reserve: crate::call::MEDIA_RESERVE,
            },
            (Instant::now(), crate::infra::clock::now_ms()),
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
            slow_recorder: false,
            writes: Vec::new(),
            now: Instant::now(),
            wire: Vec::new(),
            sent_by_core: Vec::new(),
            caller_lost: false,
            served: Vec::new(),
            sojourn: Duration::ZERO,
            subscribers: Subscribers::default(),
            next_subscriber: 0,
            answers: HashMap::new(),
            next_request: 0,
            _dir: dir,
        }
    }

    /// The rig's routing changed by `change`, as a reload hands it to the core.
    fn reroute(&mut self, change: impl FnOnce(&mut DialPlan)) {
        let mut routing = dial_plan(Default::default());
        change(&mut routing);
        self.request(Request::Reconfigure(Box::new(routing)));
    }

    /// The endpoint anchoring call `sid`'s own leg, as an application's media link names it.
    fn endpoint_of(&mut self, sid: &str) -> EndpointId {
        match self.request(Request::MediaLink(sid.to_owned())) {
            Some(Answer::Link(Ok(Some((None, endpoint))))) => endpoint,
            other => panic!("no endpoint for {sid}: {other:?}"),
        }
    }

    /// The call bridged with call `sid` now, as an application's peer link names it.
    fn peer_of(&mut self, sid: &str) -> Option<String> {
        match self.request(Request::PeerLink(sid.to_owned())) {
            Some(Answer::Link(Ok(peer))) => peer.and_then(|(call, _)| call),
            other => panic!("no answer about {sid}'s peer: {other:?}"),
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
                    Output::Reply { to, answer } => {
                        self.answers.insert(to, answer);
                        continue;
                    }
                    Output::Event { to, call, event } => {
                        if let Some(gone) = self.subscribers.deliver(to, call, event) {
                            self.core.handle_unsubscribed(gone);
                        }
                        continue;
                    }
                    Output::Unsubscribe(id) => {
                        self.subscribers.remove(id);
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
                    let received = self.now - self.sojourn;
                    let inbound = Inbound {
                        message,
                        peer,
                        received,
                    };
                    self.core.handle_inbound(self.now, inbound);
                }
            }
            // Events to applications go out as the driver sends them.
            self.subscribers.flush();
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
                browser: SocketAddr::new("127.0.0.1".parse().unwrap(), self.ports.start() - 2),
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
                if !self.slow_recorder {
                    self.recording_saved(id);
                }
            }
            _ => {}
        }
        self.media.push(command);
    }

    /// The slow recorder finishes every recording it holds.
    fn save_recordings(&mut self) {
        let held: Vec<EndpointId> = self.recording.keys().copied().collect();
        for id in held {
            self.recording_saved(id);
        }
    }

    /// The recorder finished the endpoint's recording, if it had one.
    fn recording_saved(&mut self, id: EndpointId) {
        if let Some(saved) = self.recording.remove(&id) {
            (self.core).handle_media_event(self.now, MediaEvent::RecordingSaved(saved));
        }
    }

    /// An application's request, as the driver hands it to the core, and the core's answer
    /// if it gave one.
    fn request(&mut self, request: Request) -> Option<Answer> {
        self.top_up();
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.core.handle_request(self.now, id, request);
        self.run();
        self.answers.remove(&id)
    }

    /// A channel for a call's (or an account's) events, named by id as the driver names it.
    fn subscriber(
        &mut self,
        kind: SubscriberKind,
        room: usize,
    ) -> (SubscriberId, mpsc::Receiver<CallEvent>) {
        let (events, rx) = mpsc::channel(room);
        let id = SubscriberId(self.next_subscriber);
        self.next_subscriber += 1;
        self.subscribers.add(NewSubscriber { id, kind, events });
        (id, rx)
    }

    /// An application's command on `call`, and the core's reply.
    fn command(&mut self, call: &str, command: CallCommand) -> Result<(), CallError> {
        let call = call.to_owned();
        match self.request(Request::Command { call, command }) {
            Some(Answer::Done(done)) => done,
            other => panic!("the core replies to a command at once: {other:?}"),
        }
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

/// The core's view of `call` now, as a dialect asks for it.
fn view(rig: &mut Rig, call: &str) -> Result<CallView, CallError> {
    match rig.request(Request::View(call.to_owned())) {
        Some(Answer::View(view)) => view,
        other => panic!("the core replies at once: {other:?}"),
    }
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

/// An incoming call offered to an application, not answered: the caller's leg, the call's SID
/// and the application's events.
fn offered_to_app(rig: &mut Rig) -> (LegId, String, mpsc::Receiver<CallEvent>) {
    let (events, mut app) = rig.subscriber(SubscriberKind::Controller, 64);
    rig.request(Request::Control {
        dialed: Dialed::Prefix(String::new()),
        events,
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

/// `alice` of account AC1, registered from two devices at the callee's address (two Contacts).
fn two_devices(rig: &mut Rig) {
    let alice = crate::call::AccountUser {
        password: "secret".to_owned(),
        account: "AC1".to_owned(),
        registers: true,
        calls: true,
        outbound: Default::default(),
    };
    let users = HashMap::from([("alice".to_owned(), alice)]);
    // Answered once they are in force: what registers next with them is taken.
    let answer = rig.request(Request::AccountUsers(users));
    assert!(
        matches!(answer, Some(Answer::Done(Ok(())))),
        "the core answers when the logins are in force"
    );
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
    let (to, app) = rig.subscriber(SubscriberKind::Call, 64);
    let originate = Originate {
        to: Target::User("alice".into()),
        from: "+15550000".into(),
        display_name: None,
        headers: Vec::new(),
        ring_timeout: RING_TIMEOUT,
        parent: None,
        account: Some("AC1".into()),
        system: false,
        channels: Vec::new(),
        credentials: None,
    };
    let sid = match rig.request(Request::Originate(Box::new(originate), to)) {
        Some(Answer::Placed(placed)) => placed.expect("the call is placed"),
        other => panic!("the core answers an origination at once: {other:?}"),
    };
    let rung = events(&mut rig.callee)
        .into_iter()
        .filter_map(|e| match e {
            UaEvent::Incoming { leg, request, .. } => Some((leg, request.uri.to_string())),
            _ => None,
        })
        .collect();
    (sid, app, rung)
}
