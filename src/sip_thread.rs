//! The SIP thread: its own current-thread runtime, the transports bound, the user agent and
//! the call core built from the settings, and the core's driver run until shutdown. With
//! several call-core shards (`sip.call_shards`) this thread runs the first shard and the
//! front that hands the others (each on a thread of its own) their messages and media events.

use crate::addresses::{advertised_ip, host_port};
use crate::app::AppError;
use crate::config::Settings;
use std::sync::Arc;
use std::time::Duration;
use switchboard_control::call::account_limits::AccountLimits;
use switchboard_control::call::{CallControl, CallCore, CoreConfig, Driver, DriverConfig, shards};
use switchboard_control::infra::store::StoreWriter;
use switchboard_control::infra::store::sip_trace::SipTrace;
use switchboard_control::services::directory::caller_ids::CallerIds;
use switchboard_media::MediaEngine;
use switchboard_media::health::{Beat, supervise};
use switchboard_sip::registrar::RegistrarConfig;
use switchboard_sip::shard::Shard;
use switchboard_sip::transaction::Timers;
use switchboard_sip::transport;
use switchboard_sip::transport::TransportStats;
use switchboard_sip::ua::{Listener, UaConfig, UserAgent};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::info;

/// What the SIP thread hands back once its core runs: the transports' counters, the core's
/// handle, the transports' sender and the first listener's address.
pub(crate) type SipReady = (
    Arc<TransportStats>,
    CallControl,
    transport::Sender,
    Option<std::net::SocketAddr>,
);

/// What the call core is built from besides the settings.
pub(crate) struct CoreParts {
    pub(crate) media: MediaEngine,
    pub(crate) media_events: mpsc::UnboundedReceiver<switchboard_media::MediaEvent>,
    pub(crate) cdr: StoreWriter,
    pub(crate) caller_ids: Arc<CallerIds>,
    pub(crate) account_limits: Arc<AccountLimits>,
    pub(crate) sip_trace: Option<SipTrace>,
}

/// Binds the SIP transports, reports them through `ready`, and runs the call core until
/// shutdown, on the thread that calls it.
pub(crate) fn run_sip(
    settings: Settings,
    CoreParts {
        media,
        media_events,
        cdr,
        caller_ids,
        account_limits,
        sip_trace,
    }: CoreParts,
    shutdown: watch::Receiver<bool>,
    ready: oneshot::Sender<Result<SipReady, AppError>>,
    liveness: Vec<Arc<Beat>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(AppError::Sip(e)));
            return;
        }
    };
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    runtime.block_on(async {
        let count = settings.call_shards.max(1);
        // One queue per shard, filled by the receive tasks themselves.
        let (bound, sender, inbound, stats) = match transport::bind_sharded(&settings.listen, &settings.transport_limits, count).await {
            Ok(b) => b,
            Err(e) => {
                let _ = ready.send(Err(AppError::Sip(e)));
                return;
            }
        };
        let listeners: Vec<Listener> = bound
            .iter()
            .map(|l| Listener {
                transport: l.transport,
                local: l.addr,
                advertised: host_port(advertised_ip(settings.public_ip, l.addr.ip()), l.addr.port()),
            })
            .collect();
        for l in &listeners {
            info!(transport = %l.transport, local = %l.local, advertised = %l.advertised, "SIP listening");
        }
        info!(
            t1_ms = settings.t1.as_millis() as u64,
            timeout_ms = (settings.t1 * 64).as_millis() as u64,
            "SIP timers"
        );
        let endpoints = switchboard_control::call::shards::EndpointShards::default();
        // The limits of accounts and channel groups hold over the node's calls, whichever
        // shard carries them.
        let tally = (count > 1).then(|| Arc::new(switchboard_control::call::NodeTally::default()));
        let mut registrar = None;
        let mut cores = Vec::with_capacity(usize::from(count));
        for index in 0..count {
            let shard = Shard::new(index, count).expect("index below count");
            let mut ua = UserAgent::new(UaConfig {
                listeners: listeners.clone(),
                user_agent: settings.user_agent.clone(),
                timers: Timers {
                    t1: settings.t1,
                    ..Timers::default()
                },
                realm: settings.realm.clone(),
                digest_algorithms: settings.digest_algorithms.clone(),
                users: settings.routing.users.clone(),
                digest_secret: settings.digest_secret.clone(),
                node_id: settings.node_id.clone(),
                digest_uri: settings.digest_uri,
                registrar: RegistrarConfig {
                    max_contacts: settings.max_contacts,
                    max_bindings: settings.max_registrations,
                    ..RegistrarConfig::default()
                },
                session_timers: settings.session_timers,
                shard,
            });
            ua.set_overload(settings.overload);
            // One registrar for the node: a phone registered through one shard is called
            // from every shard.
            match &registrar {
                None => registrar = Some(ua.shared_registrar()),
                Some(shared) => ua.share_registrar(shared.clone()),
            }
            let core = CallCore::new(
                ua,
                settings.routing.clone(),
                CoreConfig {
                    ring_timeout: settings.ring_timeout,
                    recordings_dir: settings.recordings_dir.clone(),
                    source_rate: settings.source_rate,
                    caller_ids: Some(caller_ids.clone()),
                    account_limits: Some(account_limits.clone()),
                    visit_key: Some(switchboard_control::call::visit::node_key(
                        settings.digest_secret.as_deref().unwrap_or_default(),
                    )),
                    shard,
                    tally: tally.clone(),
                    media_reserve: switchboard_control::call::media_reserve(
                        settings.rtp_ports.len(),
                        usize::from(count),
                    ),
                },
                (
                    std::time::Instant::now(),
                    switchboard_control::infra::clock::now_ms(),
                ),
            );
            let driving = DriverConfig {
                shutdown_grace: Duration::from_secs(5),
                liveness: Some(liveness[usize::from(index)].clone()),
                sip_trace: sip_trace.clone(),
                shard: (count > 1).then(|| (index, endpoints.clone())),
            };
            cores.push((core, driving));
        }
        let (drivers, control) = Driver::sharded(cores);
        // Where other nodes (and this one, for a call handed to an App) send their legs:
        // plain SIP over UDP, as a Request-URI with no transport says.
        let first = (bound.iter())
            .find(|l| l.transport == switchboard_sip::transport::Transport::Udp)
            .or(bound.first())
            .map(|l| l.addr);
        let _ = ready.send(Ok((stats, control, sender.clone(), first)));
        let mut drivers = drivers.into_iter();
        let Some(first_driver) = drivers.next() else {
            return;
        };
        let mut inbound = inbound.into_iter();
        if count == 1 {
            let Some(inbound) = inbound.next() else { return };
            first_driver.run(inbound, sender, media, media_events, shutdown, cdr).await;
            return;
        }
        // The other shards, each a thread with its own runtime, fed by the transports and by
        // the media front below.
        let mut media_queues = Vec::new();
        let mut first_queues = None;
        let shards = std::iter::once(first_driver).chain(drivers).zip(inbound);
        for (index, (driver, in_rx)) in shards.enumerate() {
            let (media_tx, media_rx) = mpsc::unbounded_channel();
            media_queues.push(media_tx);
            if index == 0 {
                first_queues = Some((driver, in_rx, media_rx));
                continue;
            }
            let (sender, media, shutdown, cdr) =
                (sender.clone(), media.clone(), shutdown.clone(), cdr.clone());
            let beat = liveness[index].clone();
            let thread = std::thread::Builder::new()
                .name(format!("sip-{index}"))
                .spawn(move || {
                    let stopping = shutdown.clone();
                    let ran = supervise(&beat, || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()?;
                        runtime.block_on(driver.run(in_rx, sender, media, media_rx, shutdown, cdr));
                        Ok::<_, std::io::Error>(())
                    });
                    match ran {
                        // A panic, which `supervise` reported.
                        None => {}
                        Some(Err(e)) => beat.fail(format!("its runtime could not start: {e}")),
                        // Its queues closed before a shutdown: the first shard, on whose
                        // runtime the transports and the media front that feed them run,
                        // stopped — and reports why itself, which is the cause the operator
                        // must read rather than this echo of it.
                        Some(Ok(())) if !*stopping.borrow() => {
                            tracing::warn!(shard = index, "a call-core shard's feed ended: the first shard stopped");
                        }
                        Some(Ok(())) => {}
                    }
                });
            match thread {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    tracing::error!(error = %e, shard = index, "cannot start a call-core shard");
                    liveness[index].fail("its thread could not start");
                }
            }
        }
        tokio::spawn(shards::route_media(media_events, media_queues, endpoints));
        if let Some((driver, in_rx, media_rx)) = first_queues {
            driver.run(in_rx, sender, media, media_rx, shutdown, cdr).await;
        }
    });
    // The other shards end on the same shutdown; the server stops once all have.
    for thread in threads {
        let _ = thread.join();
    }
}
