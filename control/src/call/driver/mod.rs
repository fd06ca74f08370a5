//! The async driver of the sans-IO core: it owns the transports' sender, the media engine, the
//! store's writer, the clock, the applications' channels (subscribers' senders, pending
//! replies) and the route services' queue; it feeds the core the transports' messages, the
//! media engine's events, the applications' requests, bound RTP port pairs and the time, and
//! carries out what the core asks (messages to send, media commands, events and replies, TLS
//! and trust changes, rows to store, routed calls for the route services). It copies the SIP
//! messages of calls' dialogs for their ladders. A node of several call-core shards runs a
//! driver per shard, each on its own thread, fed by the front in [`shards`].

mod backlog;
pub(crate) mod control;
pub mod shards;
pub(crate) mod subscribers;

use super::*;
use crate::infra::clock::now_ms;
use crate::infra::store::StoreWriter;
use control::{ReplyTo, ToDriver};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subscribers::Subscribers;
use switchboard_media::MediaEngine;
use switchboard_media::MediaEvent;
use switchboard_media::health::Beat;
use switchboard_sip::transport::Inbound;
use switchboard_sip::transport::Sender;
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// What the driver itself is given.
#[derive(Clone, Default)]
pub struct DriverConfig {
    /// At shutdown, how long to wait for calls to end after hanging them up.
    pub shutdown_grace: Duration,
    /// Beaten on every round of the loop (at least once a second), so a core stuck in one
    /// round shows as stalled.
    pub liveness: Option<Arc<Beat>>,
    /// Where the SIP messages of calls' dialogs are copied (their ladders); `None`: they are
    /// not kept.
    pub sip_trace: Option<crate::infra::store::sip_trace::SipTrace>,
    /// On a node of several shards: this driver's shard, and where it enters the endpoints
    /// it reserves, so that their media events are handed to it.
    pub shard: Option<(u16, shards::EndpointShards)>,
}

/// The core and what it needs to run: [`Driver::run`] until it is done.
pub struct Driver {
    core: CallCore,
    config: DriverConfig,
    requests: mpsc::UnboundedReceiver<ToDriver>,
    subscribers: Subscribers,
    /// Requests whose answers are awaited, by the id the core answers.
    replies: HashMap<RequestId, ReplyTo>,
    next_request: u64,
    /// Where routed calls go whose routes ask for services ([`Output::Serve`]).
    route_services: Option<mpsc::Sender<ServeRoute>>,
    /// The node's shards (this one is `index`), for what one tells the others.
    shards: (usize, CallControl),
}

impl Driver {
    /// The driver of `core`, and the applications' handle on it.
    pub fn new(core: CallCore, config: DriverConfig) -> (Self, CallControl) {
        let (mut drivers, control) = Self::sharded(vec![(core, config)]);
        (drivers.remove(0), control)
    }

    /// The drivers of a node's shards, one per core given (at least one), and the
    /// applications' handle on them all.
    pub fn sharded(cores: Vec<(CallCore, DriverConfig)>) -> (Vec<Self>, CallControl) {
        let count = u16::try_from(cores.len()).expect("at most 2^16 shards");
        let (control, queues) = CallControl::new(count);
        let drivers = (cores.into_iter().zip(queues).enumerate())
            .map(|(index, ((core, config), requests))| Self {
                core,
                config,
                requests,
                subscribers: Subscribers::default(),
                replies: HashMap::new(),
                next_request: 0,
                route_services: None,
                shards: (index, control.clone()),
            })
            .collect();
        (drivers, control)
    }

    /// Runs until `shutdown` flips and every call has ended (or the grace period is over):
    /// the driver of the sans-IO surface below, with the transports, the engine's events, the
    /// applications' requests and the clock.
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        sender: Sender,
        media: MediaEngine,
        mut media_events: mpsc::UnboundedReceiver<MediaEvent>,
        mut shutdown: watch::Receiver<bool>,
        store: StoreWriter,
    ) {
        let mut deadline: Option<tokio::time::Instant> = None;
        // What the core has for the transports from the start (the routing's peers).
        self.carry_out(&sender, &media, &store);
        let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
        loop {
            if let Some(beat) = &self.config.liveness {
                beat.beat();
            }
            // Events waiting for a subscriber's room are offered again shortly.
            let now = Instant::now();
            let backlog = (self.subscribers.pending()).then(|| now + Duration::from_millis(10));
            let timer = [self.core.poll_timeout(now), backlog]
                .into_iter()
                .flatten()
                .min()
                .map(tokio::time::Instant::from_std);
            self.core.set_store_overloaded(store.overloaded());
            for gone in self.subscribers.gone_controllers() {
                self.core.handle_unsubscribed(gone);
            }
            self.top_up(&media);
            tokio::select! {
                msg = inbound.recv() => {
                    let Some(msg) = msg else { break };
                    let now = Instant::now();
                    self.trace_inbound(&msg);
                    self.core.handle_inbound(now, msg);
                    // Take what else is queued before carrying anything out, to batch under
                    // load; each message is handled whole, with pairs ready for it.
                    for _ in 0..64 {
                        match inbound.try_recv() {
                            Ok(m) => {
                                self.top_up(&media);
                                self.trace_inbound(&m);
                                self.core.handle_inbound(now, m)
                            }
                            Err(_) => break,
                        }
                    }
                }
                Some(ev) = media_events.recv() => self.core.handle_media_event(Instant::now(), ev),
                Some(req) = self.requests.recv() => {
                    // What the media reported before the request came happened before it: an
                    // application's command (a hang-up) must not overtake its call's playback
                    // end still queued behind a flood of digits, which would then follow the
                    // hang-up. Only what is queued now: the flood cannot hold the request.
                    for _ in 0..media_events.len() {
                        match media_events.try_recv() {
                            Ok(ev) => self.core.handle_media_event(Instant::now(), ev),
                            Err(_) => break,
                        }
                    }
                    self.take_request(Instant::now(), req)
                }
                _ = sleep_until(timer) => self.core.handle_timeout(Instant::now()),
                changed = shutdown.changed(), if !self.core.is_shutting_down() => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.core.begin_shutdown(Instant::now());
                        deadline = Some(tokio::time::Instant::now() + self.config.shutdown_grace);
                    }
                }
                _ = sleep_until(deadline) => {
                    self.core.handle_grace_over(Instant::now(), now_ms());
                    break;
                }
                _ = heartbeat.tick() => {
                    self.core.handle_tick(Instant::now(), now_ms());
                    for gone in self.subscribers.sweep() {
                        self.core.handle_unsubscribed(gone);
                    }
                    metrics::gauge!("switchboard_call_subscribers").set(self.subscribers.len() as f64);
                }
            }
            self.carry_out(&sender, &media, &store);
            if self.core.is_done() && !self.subscribers.pending() {
                break;
            }
        }
        self.carry_out(&sender, &media, &store);
        for id in self.core.take_reserved() {
            media.release(id);
        }
    }

    /// An application's request: the channel it names is kept under its id, whoever awaits
    /// the answer under the request's, and the core is handed the rest.
    fn take_request(&mut self, now: Instant, message: ToDriver) {
        match message {
            ToDriver::ServeRoutes(tx) => self.route_services = Some(tx),
            ToDriver::TrunkHealth { trunk, up } => self.core.handle_trunk_health(&trunk, up),
            ToDriver::Core {
                request,
                reply,
                subscriber,
            } => {
                let id = RequestId(self.next_request);
                self.next_request += 1;
                if let Some(reply) = reply {
                    self.replies.insert(id, reply);
                }
                if let Some(subscriber) = subscriber {
                    self.subscribers.add(subscriber);
                }
                self.core.handle_request(now, id, request);
            }
        }
    }

    /// Binds the pairs the core wants ready. What cannot be bound now is tried again before
    /// the next input; the core refuses calls meanwhile, with the reason given here.
    fn top_up(&mut self, media: &MediaEngine) {
        for _ in 0..self.core.endpoints_wanted() {
            match media.reserve() {
                Ok(endpoint) => {
                    if let Some((shard, endpoints)) = &self.config.shard {
                        endpoints.insert(endpoint.id, *shard);
                    }
                    self.core.handle_reserved(endpoint)
                }
                Err(e) => return self.core.handle_reserve_failed(e),
            }
        }
    }

    /// Hands the outputs to the transports, the engine, the store, the services and the
    /// applications. The media commands come first; the engine's workers are woken once for
    /// all of them, before any message, answer or event goes out, and events go out last.
    fn carry_out(&mut self, sender: &Sender, media: &MediaEngine, store: &StoreWriter) {
        let mut queued = false;
        let mut gone = Vec::new();
        while let Some(output) = self.core.poll_output() {
            if queued && !matches!(output, Output::Media(_)) {
                media.flush();
                queued = false;
            }
            match output {
                Output::Media(command) => {
                    media.execute(command);
                    queued = true;
                }
                Output::Reply { to, answer } => {
                    if let Some(reply) = self.replies.remove(&to) {
                        reply(answer, Some(media));
                    }
                }
                Output::Event { to, call, event } => {
                    gone.extend(self.subscribers.deliver(to, call, event));
                }
                Output::Unsubscribe(id) => self.subscribers.remove(id),
                Output::TrunkHealth { trunk, up } => {
                    let (index, shards) = &self.shards;
                    shards.tell_trunk_health(*index, &trunk, up);
                }
                Output::Transmit(t) => {
                    if let Some(trace) = &self.config.sip_trace {
                        trace.outbound(&t, now_ms());
                    }
                    sender.send(t)
                }
                Output::Tenant {
                    conn,
                    login,
                    account,
                } => sender.tenant(conn, &login, account.as_deref()),
                Output::TrustedSources(sources) => sender.set_trusted_sources(sources),
                Output::Tls { server, peers } => {
                    if let Some(server) = server {
                        sender.set_tls_server(server);
                    }
                    sender.set_tls_peers(peers);
                }
                Output::TlsName { addr, name } => sender.name_tls_peer(addr, name),
                Output::Serve(serve) => self.serve_route(serve),
                Output::Store(write) => store_write(store, *write),
            }
            if !gone.is_empty() {
                for id in gone.drain(..) {
                    self.core.handle_unsubscribed(id);
                }
            }
        }
        if queued {
            media.flush();
        }
        self.subscribers.flush();
    }

    /// Keeps a copy of a message received, for its call's ladder.
    fn trace_inbound(&self, msg: &Inbound) {
        if let Some(trace) = &self.config.sip_trace {
            trace.inbound(msg, now_ms());
        }
    }

    /// Hands a routed call to the route services. Their queue is bounded and they take a
    /// call at once (they only start tasks), so a full one means they stopped: the call goes
    /// on without what its route asked for, and says so.
    fn serve_route(&mut self, serve: ServeRoute) {
        let Some(tx) = &self.route_services else {
            warn!(call = %serve.call, "the route asks for services, but none run");
            return;
        };
        if let Err(e) = tx.try_send(serve) {
            let serve = e.into_inner();
            metrics::counter!("switchboard_route_services_refused_total").increment(1);
            warn!(call = %serve.call, "the route services are not taking calls; the call goes on without them");
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Queues one of the core's writes on the store's writer.
fn store_write(writer: &StoreWriter, write: StoreWrite) {
    match write {
        StoreWrite::Call(record) => writer.save(record),
        StoreWrite::Event(event) => writer.event(event),
        StoreWrite::Recording(row) => writer.recording(row),
        StoreWrite::Conference(row) => writer.conference(row),
    }
}
