//! The call core in-process, as an application embedding it would run it: a core on
//! 127.0.N.1:5060 with the two test trunks, and phones (SIPp with the test's RTP socket) it
//! calls.

use super::{Net, SippServer, uas_media_at};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use switchboard_control::call::dial_plan::{DialPlan, Route, Target as RouteTarget, Trunk};
use switchboard_control::call::{
    CallControl, CallCore, CallEvent, CoreConfig, Driver, DriverConfig, EventKind, Originate,
    Target,
};
use switchboard_control::infra::store::{Store, StoreWriter};
use switchboard_media::{FRAME, Law, MediaConfig, MediaEngine};
use switchboard_sip::auth::Algorithm;
use switchboard_sip::registrar::RegistrarConfig;
use switchboard_sip::transaction::Timers;
use switchboard_sip::transport::{self, ListenSpec, Transport};
use switchboard_sip::ua::{Listener, UaConfig, UserAgent};
use tokio::sync::{mpsc, watch};

pub struct Core {
    pub control: CallControl,
    pub store: Store,
    /// The core's store writer: synced, reads see what it was given.
    pub writer: StoreWriter,
    pub recordings: std::path::PathBuf,
    _shutdown: watch::Sender<bool>,
}

/// The call core on 127.0.N.1:5060: calls to +1555… go to carrier-b at .3, carrier-a at .2
/// may call in.
pub async fn start_core(net: &Net, ports: std::ops::RangeInclusive<u16>) -> Core {
    let store = Store::open(&format!("sqlite://{}", net.path("db.sqlite").display()))
        .await
        .unwrap();
    let (writer, _) = StoreWriter::spawn(store.clone(), None);
    let writer_handle = writer.clone();
    let (media_tx, media_rx) = mpsc::unbounded_channel();
    let ip = net.ip(1).parse().unwrap();
    let media = MediaEngine::start(
        MediaConfig {
            bind_ip: ip,
            advertise_ip: ip,
            ports,
            threads: 1,
            rtp_timeout: Duration::from_secs(30),
            learn_window: Duration::from_secs(3),
            kernel_relay: false,
            bind_ahead: switchboard_media::BIND_AHEAD,
        },
        media_tx,
    )
    .unwrap();
    let listen = [ListenSpec {
        transport: Transport::Udp,
        addr: SocketAddr::new(ip, 5060),
    }];
    let (bound, sender, inbound, _) = transport::bind(
        &listen,
        &transport::TransportLimits {
            queue: 1024,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ua = UserAgent::new(UaConfig {
        listeners: vec![Listener {
            transport: Transport::Udp,
            local: bound[0].addr,
            advertised: bound[0].addr.to_string(),
        }],
        user_agent: "switchboard-test".into(),
        timers: Timers::default(),
        realm: "switchboard".into(),
        digest_algorithms: vec![Algorithm::Md5],
        users: HashMap::new(),
        digest_secret: None,
        node_id: "test".into(),
        digest_uri: Default::default(),
        registrar: RegistrarConfig::default(),
        session_timers: Default::default(),
        shard: Default::default(),
    });
    let trunk = |name: &str, host: u8| Trunk {
        name: name.into(),
        address: format!("{}:5060", net.ip(host)).parse().unwrap(),
        transport: Transport::Udp,
        inbound_sources: vec![format!("{}/32", net.ip(host)).parse().unwrap()],
        credentials: None,
        rtp_source: Default::default(),
        srtp: Default::default(),
        trusted: false,
        tls: None,
        options_interval: None,
    };
    let routing = DialPlan {
        trunks: vec![trunk("carrier-a", 2), trunk("carrier-b", 3)],
        routes: vec![Route {
            pattern: regex::Regex::new(r"^\+?1555").unwrap(),
            accounts: Vec::new(),
            target: RouteTarget::Trunks(vec!["carrier-b".into()]),
            features: Default::default(),
        }],
        users: HashMap::new(),
        // The test's SIPp peers answer sip: URIs on the test's own /24.
        sip_uri_allow: vec![format!("{}/24", net.ip(0)).parse().unwrap()],
        ..Default::default()
    };
    let recordings = net.path("recordings");
    let core = CallCore::new(
        ua,
        routing,
        CoreConfig {
            ring_timeout: Duration::from_secs(10),
            recordings_dir: recordings.clone(),
            source_rate: None,
            caller_ids: None,
            account_limits: None,
            visit_key: None,
            shard: Default::default(),
            tally: None,
            media_reserve: switchboard_control::call::MEDIA_RESERVE,
        },
        (
            std::time::Instant::now(),
            switchboard_control::infra::clock::now_ms(),
        ),
    );
    let grace = DriverConfig {
        shutdown_grace: Duration::from_secs(2),
        ..DriverConfig::default()
    };
    let (driver, control) = Driver::new(core, grace);
    let (shutdown, shutdown_rx) = watch::channel(false);
    tokio::spawn(driver.run(
        inbound,
        sender,
        media.clone(),
        media_rx,
        shutdown_rx,
        writer,
    ));
    Core {
        control,
        store,
        writer: writer_handle,
        recordings,
        _shutdown: shutdown,
    }
}

impl Core {
    /// The record of `call` once it has ended (its media's counters back and the record
    /// committed), waiting up to ten seconds for it.
    pub async fn ended_call(&self, call: &str) -> switchboard_control::infra::store::CallRecord {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            self.writer.sync().await;
            match self.store.get_call(call).await.unwrap() {
                Some(c) if c.ended_at.is_some() => return c,
                other => assert!(
                    std::time::Instant::now() < deadline,
                    "{call} never ended: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A phone's RTP socket.
pub fn rtp_socket(net: &Net, host: u8) -> UdpSocket {
    let s = UdpSocket::bind(format!("{}:0", net.ip(host))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// Throws away what a phone's socket has queued (a conference sends all along).
pub fn drain(sock: &UdpSocket) {
    sock.set_nonblocking(true).unwrap();
    while sock.recv(&mut [0u8; 2048]).is_ok() {}
    sock.set_nonblocking(false).unwrap();
}

/// Receives `n` audio packets; returns the samples and where they came from. The first may
/// take up to 10 s (a browser's media starts once its ICE and DTLS are done, slower on a busy
/// machine); then each comes within the socket's read timeout.
pub fn receive_audio(sock: &UdpSocket, n: usize, law: Law) -> (Vec<i16>, SocketAddr) {
    try_receive_audio(sock, n, law).expect("audio from Switchboard")
}

/// [`receive_audio`], or the error of the read that timed out.
pub fn try_receive_audio(
    sock: &UdpSocket,
    n: usize,
    law: Law,
) -> std::io::Result<(Vec<i16>, SocketAddr)> {
    let (mut samples, mut from) = (Vec::new(), None);
    let mut buf = [0u8; 2048];
    let between = sock.read_timeout().unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while samples.len() < n * FRAME {
        let received = sock.recv_from(&mut buf);
        if from.is_none() {
            sock.set_read_timeout(between).unwrap();
        }
        let (len, src) = received?;
        from = Some(src);
        let mut frame = [0i16; FRAME];
        law.decode(&buf[12..len], &mut frame);
        samples.extend_from_slice(&frame[..len - 12]);
    }
    Ok((samples, from.expect("a packet came")))
}

/// A call to +15551234 (routed to carrier-b) from +15550001, dialed from `parent` if given;
/// its SID and events.
pub async fn call_carrier_b(
    core: &Core,
    parent: Option<&str>,
) -> (String, mpsc::Receiver<CallEvent>) {
    let (tx, events) = mpsc::channel(256);
    let sid = core
        .control
        .originate(
            Originate {
                to: Target::Number("+15551234".into()),
                display_name: None,
                headers: Vec::new(),
                from: "+15550001".into(),
                ring_timeout: Duration::from_secs(10),
                parent: parent.map(str::to_owned),
                account: None,
                system: false,
                channels: Vec::new(),
                credentials: None,
            },
            tx,
        )
        .await
        .unwrap();
    (sid, events)
}

/// The next event, skipping none; panics after 5 s.
pub async fn next(events: &mut mpsc::Receiver<CallEvent>) -> CallEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("a call event in time")
        .expect("events open")
}

/// Events until one matches `done`; returns them all.
pub async fn until(
    events: &mut mpsc::Receiver<CallEvent>,
    done: impl Fn(&EventKind) -> bool,
) -> Vec<EventKind> {
    let mut seen = Vec::new();
    loop {
        let e = next(events).await.kind;
        let stop = done(&e);
        seen.push(e);
        if stop {
            return seen;
        }
    }
}

pub fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(f)
}

/// A phone at `.host` answering (SIPp) calls sent to it by URI, with its own RTP socket.
pub struct Phone {
    pub sid: String,
    pub events: mpsc::Receiver<CallEvent>,
    pub rtp: UdpSocket,
    pub sipp: SippServer,
}

pub async fn call_phone(net: &Net, core: &Core, host: u8) -> Phone {
    let rtp = rtp_socket(net, host);
    let port = rtp.local_addr().unwrap().port().to_string();
    let uas = uas_media_at(net, &net.ip(host), &port, &[]);
    let sipp = SippServer::start(net, &uas, &net.ip(host), 5060, &["-m", "1"]);
    let (tx, mut events) = mpsc::channel(256);
    let uri = format!("sip:room@{}:5060", net.ip(host));
    let sid = core
        .control
        .originate(
            Originate {
                to: Target::Uri {
                    uri: switchboard_sip::message::Uri::try_from(uri.as_str()).unwrap(),
                    next_hop: format!("{}:5060", net.ip(host)).parse().unwrap(),
                },
                display_name: None,
                headers: Vec::new(),
                from: "+15550001".into(),
                ring_timeout: Duration::from_secs(10),
                parent: None,
                account: None,
                system: false,
                channels: Vec::new(),
                credentials: None,
            },
            tx,
        )
        .await
        .unwrap();
    until(&mut events, |e| matches!(e, EventKind::Answered { .. })).await;
    Phone {
        sid,
        events,
        rtp,
        sipp,
    }
}
