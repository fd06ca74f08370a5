//! Wiring of `switchboard serve`: store, media engine, SIP transports, call core and HTTP, and a
//! graceful shutdown on SIGINT/SIGTERM (calls are hung up, CDRs flushed).

use crate::addresses::advertised_ip;
use crate::config::Settings;
use crate::heartbeat::heartbeat;
use crate::reload::Reloader;
use crate::shutdown::{Signals, drain, next_signal, stop_signal};
use crate::sip_thread::{CoreParts, run_sip};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_control::call::account_limits::AccountLimits;
use switchboard_control::infra::accounts::Directory;
use switchboard_control::infra::egress::Clients;
use switchboard_control::infra::http::throttle::{self, AuthThrottle};
use switchboard_control::infra::http::{self, HttpState};
use switchboard_control::infra::rate::RateLimiter;
use switchboard_control::infra::store::sip_trace::SipTrace;
use switchboard_control::infra::store::{Store, StoreError, StoreWriter};
use switchboard_control::infra::webhook::client::WebhookClient;
use switchboard_control::infra::webhook::outbox::Outbox;
use switchboard_control::markup::voice::{AccountData, ApplicationDials, CallAudio, VoiceApps};
use switchboard_control::operator::admin::{self, AdminApi};
use switchboard_control::operator::{call_history, console, live};
use switchboard_control::providers::telnyx::{self, Telnyx};
use switchboard_control::providers::twilio::rest::{self, TwilioApi};
use switchboard_control::services::browser_gateway::BrowserGateway;
use switchboard_control::services::call_records::CallRecords;
use switchboard_control::services::cluster::forward;
use switchboard_control::services::cluster::rooms::Rooms;
use switchboard_control::services::directory::api_keys::ApiKeys;
use switchboard_control::services::directory::caller_ids::CallerIds;
use switchboard_control::services::directory::connections::Connections;
use switchboard_control::services::directory::phone_numbers::PhoneNumbers;
use switchboard_control::services::directory::sip_logins::SipLogins;
use switchboard_control::services::directory::subaccounts::Subaccounts;
use switchboard_control::services::directory::verified_caller_ids::VerifiedCallerIds;
use switchboard_control::services::fork::Forks;
use switchboard_control::services::inbound::{Application, Inbound};
use switchboard_control::services::prompts::Prompts;
use switchboard_control::services::prompts::http::{ByLanguage, HttpTts};
use switchboard_control::services::prompts::neural::Neural;
use switchboard_control::services::prompts::tts::{EspeakNg, Swappable, Tts};
use switchboard_control::services::queues::Queues;
use switchboard_control::services::recordings::Recordings;
use switchboard_control::services::route_services::RouteServices;
use switchboard_control::services::speech::{Speech, SpeechProviders};
use switchboard_control::services::stream::MediaStreams;
use switchboard_control::services::subscriptions::Subscriptions;
use switchboard_media::health::{Beat, Health, supervise};
use switchboard_media::{MediaConfig, MediaEngine};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen for SIP: {0}")]
    Sip(std::io::Error),
    #[error("cannot start the media engine: {0}")]
    Media(std::io::Error),
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("media streams: {0}")]
    Streams(String),
    #[error("forwarding to other nodes: {0}")]
    Cluster(String),
    #[error("the operator's voice engine: {0}")]
    Tts(String),
    #[error("the {thread} thread failed ({why}); calls were hung up and the server stopped")]
    ThreadFailed { thread: String, why: String },
}

pub async fn serve(
    (config, settings): (crate::config::Config, Settings),
    reload: impl Fn() -> Result<(crate::config::Config, Settings), String>,
    log_level: admin::LogLevel,
) -> Result<(), AppError> {
    let prometheus = http::install_metrics().map_err(AppError::Metrics)?;
    let nofile = crate::descriptors::raise_limit();
    let sip_tcp = settings.transport_limits.tcp_max_connections;
    let rtp_ports = crate::descriptors::fit_rtp(settings.rtp_ports.clone(), nofile, sip_tcp);
    if rtp_ports != settings.rtp_ports {
        warn!(
            nofile,
            asked = ?settings.rtp_ports,
            used = ?rtp_ports,
            "the descriptor limit cannot hold a socket for every RTP port beside SIP, HTTP and the database: the range is cut"
        );
    }
    let rtp_sockets = crate::descriptors::rtp_sockets(&rtp_ports);
    let http_limits =
        crate::descriptors::fit_http(settings.http_limits, nofile, sip_tcp, rtp_sockets);
    if http_limits.max_connections < settings.http_limits.max_connections {
        warn!(
            nofile,
            max_connections = http_limits.max_connections,
            "the descriptor limit cannot hold http.max_connections beside SIP and RTP: lowered"
        );
    }
    info!(
        nofile,
        http_max_connections = http_limits.max_connections,
        "descriptors"
    );
    let store = Store::open(&settings.database_url)
        .await?
        .on_node(&settings.node_id)
        .reached_at(&settings.node_url)
        .dead_after(i64::try_from(settings.dead_after.as_millis()).unwrap_or(i64::MAX));
    let started_at = switchboard_control::infra::clock::now_ms();
    store.node_seen(started_at).await?;
    let abandoned = store
        .close_abandoned_calls(switchboard_control::infra::clock::now_ms())
        .await?;
    if abandoned > 0 {
        info!(
            abandoned,
            "calls left in progress by the last run were closed as failed"
        );
    }
    let recovered =
        switchboard_control::services::recording_recovery::recover_recordings(&store).await?;
    if recovered > 0 {
        info!(
            recovered,
            "recordings left open by the last run were repaired and saved"
        );
    }
    let (cdr, cdr_task) = StoreWriter::spawn(store.clone(), Some(settings.quarantine_file.clone()));
    let cdr = cdr.with_high_water(settings.max_rows_waiting);

    let media_bind = settings.media_bind.unwrap_or(settings.listen[0].addr.ip());
    let threads = match settings.media_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (media_tx, media_rx) = mpsc::unbounded_channel();
    let media = MediaEngine::start(
        MediaConfig {
            bind_ip: media_bind,
            advertise_ip: advertised_ip(settings.public_ip, media_bind),
            ports: rtp_ports.clone(),
            threads,
            rtp_timeout: settings.rtp_timeout,
            learn_window: settings.learn_window,
            kernel_relay: settings.kernel_relay,
            bind_ahead: switchboard_media::BIND_AHEAD,
        },
        media_tx,
    )
    .map_err(AppError::Media)?;
    let browsers: Vec<String> = (media.browser_addresses().iter())
        .map(|a| a.to_string())
        .collect();
    info!(bind = %media_bind, ports = ?rtp_ports, threads, browsers = %browsers.join(" "), "media engine started");

    // The threads that carry calls, watched for /healthz; one that dies stops the server.
    let health = Health::new();
    media.beats().iter().for_each(|b| health.watch(b.clone()));
    // One beat per call-core shard: the first's thread is "sip", the others' "sip-N".
    let sip_beats: Vec<_> = (0..settings.call_shards.max(1))
        .map(|n| match n {
            0 => Beat::new("sip", Some(Duration::from_secs(5))),
            n => Beat::new(format!("sip-{n}"), Some(Duration::from_secs(5))),
        })
        .collect();
    sip_beats.iter().for_each(|b| health.watch(b.clone()));
    let sip_beat = sip_beats[0].clone();

    let directory = Arc::new(Directory::new(settings.directory.clone()));
    let numbers = Arc::new(PhoneNumbers::open(store.clone(), &settings.directory.numbers).await?);
    let verified = Arc::new(VerifiedCallerIds::open(store.clone()).await?);
    let caller_ids = Arc::new(CallerIds::new(
        directory.clone(),
        numbers.clone(),
        verified.clone(),
    ));
    let account_limits = {
        let (defaults, configured) = settings.account_limits.clone();
        let limits = AccountLimits::new(defaults, configured);
        for (account, l) in store.account_limits().await? {
            limits.set(&account, l);
        }
        Arc::new(limits)
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = oneshot::channel();
    // Written on this runtime, where the store lives; the SIP thread only queues.
    let sip_trace = settings
        .sip_trace
        .map(|retention| SipTrace::spawn(store.clone(), retention));
    let sip_thread = {
        let (core_limits, core_trace) = (account_limits.clone(), sip_trace.clone());
        let (settings, media, cdr, shutdown) = (
            settings.clone(),
            media.clone(),
            cdr.clone(),
            shutdown_rx.clone(),
        );
        // The transports and the call core share one thread and a current-thread runtime: a
        // message goes from socket to core to socket without a cross-thread wake-up.
        std::thread::Builder::new()
            .name("sip".into())
            .spawn(move || {
                let stopping = shutdown.clone();
                let beats = sip_beats.clone();
                let ran = supervise(&sip_beat, || {
                    let core = CoreParts {
                        media,
                        media_events: media_rx,
                        cdr,
                        caller_ids,
                        account_limits: core_limits,
                        sip_trace: core_trace,
                    };
                    run_sip(settings, core, shutdown, ready_tx, beats)
                });
                if ran.is_some() && !*stopping.borrow() {
                    sip_beat.fail("the call core ended before shutdown");
                }
            })
            .map_err(AppError::Sip)?
    };
    let (sip_stats, control, sip_sender, sip_local) = ready_rx
        .await
        .map_err(|_| AppError::Sip(std::io::Error::other("SIP thread ended")))??;
    // The Twilio dialect: voice applications (configured numbers answered by their TwiML,
    // REST-created calls driven by theirs) and the REST API.
    // Every fetch and webhook on an account's behalf goes through the egress policy; the
    // server's own URL (recordings played back) is exempt.
    let clients = Clients::new(Some(&settings.public_url));
    let outbox = Outbox::open(
        store.clone(),
        WebhookClient::new(clients.clone()),
        directory.clone(),
        settings.webhook_retry,
    )
    .await?;
    let outbox_task = outbox.spawn();
    let subscriptions = Subscriptions::new(store.clone(), cdr.reader(), outbox.clone());
    let inbound = Inbound::new(control.clone(), numbers.clone(), directory.clone());
    // SIP domains and the lists that authenticate their users (Twilio's SIP API).
    let sip_domains = Arc::new(
        switchboard_control::services::directory::sip_domains::SipDomains::open(store.clone())
            .await?,
    );
    // English is spoken by the Piper voice when it is installed (scripts/install-speech.sh),
    // everything else (and English without it) by espeak-ng.
    // (Swappable: a first start fetches the natural voice and speaks with it once it is in.)
    let (voice, no_voice): (Arc<dyn Tts>, bool) = match Neural::open(&settings.speech_dir) {
        Ok(neural) => (Arc::new(neural), false),
        Err(missing) => {
            info!(%missing, "no neural voice: espeak-ng speaks every language");
            (Arc::new(EspeakNg::default()), true)
        }
    };
    let voice = Arc::new(Swappable::new(voice));
    let mut tts: Arc<dyn Tts> = voice.clone();
    // The operator's voice engine, for the languages they give it.
    if let Some((config, languages)) = &settings.tts_http {
        let http = HttpTts::new(config.clone()).map_err(AppError::Tts)?;
        tts = Arc::new(ByLanguage::new(tts, Arc::new(http), languages.clone()));
    }
    // Optional parts are checked now, so that what is missing is said at start-up rather
    // than found in a call.
    match tts.check() {
        Ok(version) => info!(engine = tts.id(), %version, "text to speech"),
        Err(missing) => warn!(
            %missing,
            "text to speech unavailable: <Say> and speak will fail (on Debian: apt-get install espeak-ng)"
        ),
    }
    // The providers the operator and the accounts map to engines, for recognition and voices.
    let providers = Arc::new(SpeechProviders::new(
        settings.speech_providers.clone(),
        directory.clone(),
    ));
    let prompts = Arc::new(
        Prompts::new(&settings.cache_dir, tts, clients.clone())
            .with_disk_limit(settings.cache_max_bytes)
            .with_providers(providers.clone()),
    );
    let streams =
        MediaStreams::new(control.clone(), settings.streams.clone()).map_err(AppError::Streams)?;
    let limits = Arc::new(RateLimiter::new(settings.api_rate));
    let speech = Arc::new(Speech::open(&settings.speech).with_providers(providers));
    streams.use_speech(speech.clone());
    // A first start without the local models fetches them, and loads them once they are in.
    if let Some(command) = &settings.speech_fetch
        && (no_voice || speech.missing_local())
    {
        tokio::spawn(crate::speech_fetch::fetch(
            command.clone(),
            settings.speech_dir.clone(),
            speech.clone(),
            voice.clone(),
        ));
    }
    RouteServices::start(control.clone(), streams.clone(), speech.clone());
    // Rooms and queues span the nodes: this node takes the calls other nodes send to its
    // rooms and to the callers it has waiting.
    if let Some(sip) = sip_local {
        // The address it is bound to, which the nodes' network reaches, rather than the one
        // advertised to carriers.
        let ip = match sip.ip().is_unspecified() {
            true => advertised_ip(settings.public_ip, sip.ip()),
            false => sip.ip(),
        };
        if let Err(e) = store
            .node_sip(&std::net::SocketAddr::new(ip, sip.port()).to_string())
            .await
        {
            warn!(error = %e, "cannot say where this node's SIP is reached: its rooms take no visits");
        }
    }
    // `<Dial><Application>` hands calls to Apps, and a node's shards visit each other's
    // rooms and calls, through a leg to this node's own SIP (on loopback when it listens on
    // every address).
    let own_sip = sip_local.map(switchboard_sip::transport::reachable_locally);
    let rooms = Rooms::new(
        store.clone(),
        control.clone(),
        (
            settings.digest_secret.as_deref().unwrap_or_default(),
            own_sip,
        ),
        prompts.clone(),
        directory.clone(),
        subscriptions.clone(),
    );
    rooms.host();
    let queues = Arc::new(Queues::open(store.clone()).bridging_through(rooms.clone()));
    let apps = VoiceApps::new(
        control.clone(),
        CallAudio {
            prompts: prompts.clone(),
            streams: streams.clone(),
            speech: speech.clone(),
        },
        WebhookClient::new(clients),
        AccountData {
            directory: directory.clone(),
            inbound: inbound.clone(),
            queues: queues.clone(),
            rooms: rooms.clone(),
            sip_domains: sip_domains.clone(),
            store: store.clone(),
        },
        settings.public_url.clone(),
        subscriptions.clone(),
    );
    let recordings = Arc::new(Recordings::new(store.clone(), cdr.reader()));
    let call_records = Arc::new(CallRecords::new(store.clone(), cdr.reader()));
    let connections =
        Arc::new(Connections::open(store.clone(), &settings.directory.connections).await?);
    // Tenants' trunks: Elastic SIP Trunks (kept with the SIP directory) and IP connections.
    let sip_trunks = switchboard_control::services::directory::sip_trunks::SipTrunks::start(
        sip_domains.clone(),
        connections.clone(),
        inbound.clone(),
        control.clone(),
    )
    .await;
    apps.serve_application_dials(ApplicationDials::new(
        switchboard_control::call::visit::node_key(
            settings.digest_secret.as_deref().unwrap_or_default(),
        ),
        own_sip,
        connections.clone(),
    ));
    // Browsers signed in through a provider's SDK reach the core over an in-process SIP
    // connection: known to the core by the HTTP address they connect to.
    let browser = Arc::new(BrowserGateway::start(
        sip_sender.open_local(
            switchboard_sip::transport::Transport::Ws,
            settings.http_listen,
            sip_local.unwrap_or(settings.http_listen),
        ),
        settings.realm.clone(),
    ));
    // Keys made through the API authenticate beside the configured ones.
    let api_keys = Arc::new(ApiKeys::open(store.clone(), directory.clone()).await?);
    // Accounts made under others through the API, in force beside the configured ones.
    let subaccounts = Arc::new(Subaccounts::open(store.clone(), directory.clone()).await?);
    let sip_logins = SipLogins::open(
        store.clone(),
        connections.clone(),
        sip_domains.clone(),
        directory.clone(),
        control.clone(),
        inbound.clone(),
        sip_trunks.policies(),
    )
    .await?;
    let telnyx = Telnyx::new(telnyx::Parts {
        control: control.clone(),
        directory: directory.clone(),
        connections: connections.clone(),
        inbound: inbound.clone(),
        prompts,
        streams,
        speech,
        subscriptions: subscriptions.clone(),
        limits: limits.clone(),
        recordings: recordings.clone(),
        forks: Arc::new(Forks::new(control.clone())),
        live_transcriptions: apps.live_transcriptions.clone(),
        queues: queues.clone(),
        public_url: settings.public_url.clone(),
        markup: apps.clone(),
        calls: call_records.clone(),
        store: store.clone(),
        writer: cdr.reader(),
        verified: verified.clone(),
        sip_logins: sip_logins.clone(),
        browser: browser.clone(),
        sip_trunks: sip_trunks.clone(),
    });
    // Its SIP connections' calls out by the routes are held to their settings from the start.
    sip_trunks.set_policies(telnyx.sip_policies()).await;
    // Numbers' calls go to the application each names: a connection, else a voice URL.
    inbound.set_connections(connections.clone());
    inbound.register(Application::Markup, apps.clone());
    inbound.register(Application::CallControl, telnyx.clone());
    let inbound_task = inbound.start();
    // The status callbacks the last run owed (its calls closed above) are made from the
    // stored events, now that the dialects' renderers are registered.
    if let Err(e) = subscriptions.recover(started_at).await {
        warn!(error = %e, "cannot rebuild the last run's status callbacks");
    }
    let heartbeat_task = tokio::spawn(heartbeat(store.clone(), subscriptions.clone()));
    // What the other nodes sharing the database change, read again here.
    // The trunks and routes the admin API added, on top of the file's.
    let routing = Arc::new(crate::operator_additions::FileAdditions::new(
        config,
        control.clone(),
        directory.clone(),
        account_limits.clone(),
    ));
    if let Err(why) =
        switchboard_control::operator::additions::apply_stored(&store, routing.as_ref()).await
    {
        warn!(%why, "the trunks and routes added through the admin API do not apply: the file's alone are in force");
    }
    let held = switchboard_control::services::cluster::changes::Held {
        inbound: inbound.clone(),
        connections: connections.clone(),
        api_keys: api_keys.clone(),
        subaccounts: subaccounts.clone(),
        logins: sip_logins.clone(),
        caller_ids: verified.clone(),
        account_limits: account_limits.clone(),
        queues: queues.clone(),
        routing: Some(routing.clone()),
        sip_domains: sip_domains.clone(),
        sip_trunks: sip_trunks.clone(),
        store: store.clone(),
    };
    let changes_task = tokio::spawn(switchboard_control::services::cluster::changes::follow(
        store.clone(),
        held,
    ));
    let admin = AdminApi {
        token: settings.admin_token.clone(),
        directory: directory.clone(),
        numbers: numbers.clone(),
        limits: account_limits.clone(),
        store: store.clone(),
        routing: Some(routing.clone()),
        log_level: Some(log_level),
    };
    #[cfg(debug_assertions)]
    let fault_control = control.clone();
    let lifecycle = control.clone();
    let reloader = Reloader {
        read: reload,
        routing,
        store: store.clone(),
        control: control.clone(),
        directory: directory.clone(),
        numbers,
        connections: connections.clone(),
        inbound: inbound.clone(),
        limits: account_limits,
    };
    // A request about another node's call is forwarded to it (several nodes, one database).
    let forwarder = forward::Forwarder::new(
        store.clone(),
        control.clone(),
        settings.digest_secret.as_deref().unwrap_or(""),
    )
    .map_err(AppError::Cluster)?;
    let live = live::LiveApi::new(
        directory.clone(),
        control.clone(),
        settings.admin_token.clone(),
    );
    let history = call_history::CallHistory {
        directory: directory.clone(),
        admin_token: settings.admin_token.clone(),
        calls: call_records.clone(),
        recordings: recordings.clone(),
        trace: sip_trace.clone(),
    };
    let twilio = TwilioApi {
        control,
        store: store.clone(),
        writer: cdr.clone(),
        directory,
        apps: apps.clone(),
        recordings: recordings.clone(),
        started_at: switchboard_control::infra::clock::now_ms(),
        limits,
        verified,
        connections,
        api_keys,
        subaccounts,
        browser: browser.clone(),
        sip_logins: sip_logins.clone(),
        user_messages: Default::default(),
        sip_domains: sip_domains.clone(),
        sip_trunks: sip_trunks.clone(),
    };

    let throttle = Arc::new(AuthThrottle::new(settings.auth_throttle));
    let http_listener = tokio::net::TcpListener::bind(settings.http_listen)
        .await
        .map_err(|source| AppError::Http {
            addr: settings.http_listen,
            source,
        })?;
    info!(addr = %http_listener.local_addr().map_err(|source| AppError::Http { addr: settings.http_listen, source })?, "HTTP listening");
    let router = http::router(HttpState {
        health: health.clone(),
        prometheus,
        media: media.clone(),
        sip: sip_stats,
        cdr: cdr.clone(),
    })
    .merge(throttle::guarded(
        forwarder.around(rest::router(twilio)),
        &throttle,
        rest::too_many,
    ))
    .merge(throttle::guarded(
        forwarder.around(telnyx::router(telnyx.clone())),
        &throttle,
        telnyx::too_many,
    ))
    .merge(throttle::guarded(
        admin::router(admin),
        &throttle,
        admin::too_many,
    ))
    .merge(throttle::guarded(
        live::router(live),
        &throttle,
        admin::too_many,
    ))
    .merge(throttle::guarded(
        call_history::router(history),
        &throttle,
        admin::too_many,
    ))
    .merge(console::router());
    // A request another node forwarded is taken as from the client it signs for, before any
    // throttle counts it.
    let router = forwarder.trusting(router);
    // Every signal the server acts on is listened for before /healthz can say it is up.
    let mut signals = Signals::listen();
    #[cfg(debug_assertions)]
    inject_test_fault(&fault_control, &media);
    let https_task = match &settings.https {
        Some((addr, tls)) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Http {
                    addr: *addr,
                    source,
                })?;
            info!(addr = %addr, "HTTPS listening");
            let serve = http::serve(
                listener,
                Some(tls.clone()),
                router.clone(),
                http_limits,
                shutdown_rx.clone(),
            );
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    let http_task = tokio::spawn(http::serve(
        http_listener,
        None,
        router,
        http_limits,
        shutdown_rx,
    ));
    drop(cdr);
    info!("ready");

    let failed = loop {
        tokio::select! {
            _ = stop_signal(&mut signals.term, &mut signals.interrupt) => break None,
            _ = next_signal(&mut signals.hangup) => reloader.apply().await,
            (thread, why) = health.failure() => {
                error!(%thread, %why, "a thread that carries calls failed: hanging up and stopping");
                break Some(AppError::ThreadFailed { thread, why });
            }
        }
    };
    if failed.is_none() {
        drain(&lifecycle, settings.drain, &mut signals, &reloader).await;
    }
    let _ = shutdown_tx.send(true);
    let _ = tokio::task::spawn_blocking(move || sip_thread.join()).await;
    // Every call has ended; its session sends its last callbacks into the outbox, and the
    // attempts under way finish, before the store closes.
    inbound_task.abort();
    if !apps.drain(SESSION_GRACE).await {
        warn!("call sessions still running at shutdown were cut short");
    }
    if !telnyx.drain(SESSION_GRACE).await {
        warn!("Telnyx call legs still running at shutdown were cut short");
    }
    outbox.stop();
    if tokio::time::timeout(SESSION_GRACE, outbox_task)
        .await
        .is_err()
    {
        warn!("the webhook outbox did not stop in time");
    }
    outbox.finish(SESSION_GRACE).await;
    heartbeat_task.abort();
    changes_task.abort();
    let _ = http_task.await;
    if let Some(task) = https_task {
        let _ = task.await;
    }
    // The CDR writer ends once every sender is gone and its queue is written.
    let _ = cdr_task.await;
    media.shutdown();
    store.close().await;
    info!("stopped");
    failed.map_or(Ok(()), Err)
}

/// How long a shutdown waits for call sessions, and then for webhook attempts in flight.
const SESSION_GRACE: Duration = Duration::from_secs(5);
/// Debug builds only: `SWITCHBOARD_TEST_FAULT` = `sip-panic`, `sip-stall` (8 s) or `media-panic`
/// arms a fault that strikes on SIGUSR1, so tests/e2e/liveness.rs can watch the server notice.
#[cfg(debug_assertions)]
fn inject_test_fault(control: &switchboard_control::call::CallControl, media: &MediaEngine) {
    use switchboard_control::call::Fault;
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(fault) = std::env::var("SWITCHBOARD_TEST_FAULT") else {
        return;
    };
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        return;
    };
    let (control, media) = (control.clone(), media.clone());
    tokio::spawn(async move {
        usr1.recv().await;
        warn!(%fault, "test fault strikes");
        match fault.as_str() {
            "sip-panic" => control.inject_fault(Fault::Panic),
            "sip-stall" => control.inject_fault(Fault::Stall(Duration::from_secs(8))),
            "media-panic" => media.inject_panic(),
            other => warn!(fault = other, "unknown SWITCHBOARD_TEST_FAULT"),
        }
    });
}
