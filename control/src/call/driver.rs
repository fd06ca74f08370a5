//! The async driver of the sans-IO core: it owns the transports' sender, the media engine, the
//! store's writer and the clock, feeds the core the transports' messages, the media engine's
//! events, the applications' requests, bound RTP port pairs and the time, and carries out what
//! the core asks (messages to send, media commands, TLS and trust changes, rows to store,
//! routed calls for the route services). It copies the SIP messages of calls' dialogs for their
//! ladders.

use super::*;
use switchboard_media::MediaEngine;

impl CallCore {
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
        let mut requests = self.requests.take().expect("run once");
        self.cdr.sink_into(store.clone());
        self.announce_routing();
        let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
        loop {
            if let Some(beat) = &self.config.liveness {
                beat.beat();
            }
            let timer = self
                .poll_timeout(Instant::now())
                .map(tokio::time::Instant::from_std);
            self.cdr.set_overloaded(store.overloaded());
            self.top_up(&media);
            tokio::select! {
                msg = inbound.recv() => {
                    let Some(msg) = msg else { break };
                    let now = Instant::now();
                    self.trace_inbound(&msg);
                    self.handle_inbound(now, msg);
                    // Take what else is queued before carrying anything out, to batch under
                    // load; each message is handled whole, with pairs ready for it.
                    for _ in 0..64 {
                        match inbound.try_recv() {
                            Ok(m) => {
                                self.top_up(&media);
                                self.trace_inbound(&m);
                                self.handle_inbound(now, m)
                            }
                            Err(_) => break,
                        }
                    }
                }
                Some(ev) = media_events.recv() => self.on_media_event(Instant::now(), ev),
                Some(req) = requests.recv() => {
                    // What the media reported before the request came happened before it: an
                    // application's command (a hang-up) must not overtake its call's playback
                    // end still queued behind a flood of digits, which would then follow the
                    // hang-up. Only what is queued now: the flood cannot hold the request.
                    for _ in 0..media_events.len() {
                        match media_events.try_recv() {
                            Ok(ev) => self.on_media_event(Instant::now(), ev),
                            Err(_) => break,
                        }
                    }
                    self.on_request(Instant::now(), req)
                }
                _ = sleep_until(timer) => self.handle_timeout(Instant::now()),
                changed = shutdown.changed(), if !self.draining => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.begin_shutdown(Instant::now());
                        deadline = Some(tokio::time::Instant::now() + self.config.shutdown_grace);
                    }
                }
                _ = sleep_until(deadline) => {
                    warn!(calls = self.calls.len(), "shutdown grace period over");
                    self.anchor(Instant::now(), now_ms());
                    self.settle_unreleased();
                    break;
                }
                _ = heartbeat.tick() => {
                    self.anchor(Instant::now(), now_ms());
                    self.report_load();
                }
            }
            self.process(Instant::now());
            self.carry_out(&sender, &media, &store);
            self.backlog.flush();
            if self.refusing.is_some() && self.calls.is_empty() {
                info!("drained: no call is left");
                let _ = self.refusing.take().map(|done| done.send(()));
            }
            if self.is_done() {
                break;
            }
        }
        self.process(Instant::now());
        self.carry_out(&sender, &media, &store);
        self.backlog.flush();
        for id in self.take_reserved() {
            media.release(id);
        }
    }

    /// Binds the pairs the core wants ready. What cannot be bound now is tried again before
    /// the next input; the core refuses calls meanwhile, with the reason given here.
    fn top_up(&mut self, media: &MediaEngine) {
        for _ in 0..self.endpoints_wanted() {
            match media.reserve() {
                Ok(endpoint) => self.handle_reserved(endpoint),
                Err(e) => return self.handle_reserve_failed(e),
            }
        }
    }

    /// Hands the outputs to the transports, the engine, the store and the services. The media
    /// commands come first; the engine's workers are woken once for all of them, before any
    /// message goes out.
    fn carry_out(&mut self, sender: &Sender, media: &MediaEngine, store: &StoreWriter) {
        let mut queued = false;
        while let Some(output) = self.poll_output() {
            if queued && !matches!(output, Output::Media(_)) {
                media.flush();
                queued = false;
            }
            match output {
                Output::Media(command) => {
                    media.execute(command);
                    queued = true;
                }
                Output::Link(link) => link.answer(media),
                Output::Reply(reply) => reply.send(),
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
                Output::Store(write) => store_writes::apply(store, *write),
            }
        }
        if queued {
            media.flush();
        }
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
