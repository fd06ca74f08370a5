//! The SIP thread: its own current-thread runtime, the transports bound, the user agent and
//! the call core built from the settings, and the core's driver run until shutdown.

use crate::addresses::{advertised_ip, host_port};
use crate::app::AppError;
use crate::config::Settings;
use std::sync::Arc;
use std::time::Duration;
use switchboard_control::call::account_limits::AccountLimits;
use switchboard_control::call::{CallControl, CallCore, CoreConfig, Driver, DriverConfig};
use switchboard_control::infra::store::StoreWriter;
use switchboard_control::infra::store::sip_trace::SipTrace;
use switchboard_control::services::directory::caller_ids::CallerIds;
use switchboard_media::MediaEngine;
use switchboard_media::health::Beat;
use switchboard_sip::registrar::RegistrarConfig;
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
    liveness: Arc<Beat>,
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
    runtime.block_on(async move {
        let (bound, sender, inbound, stats) = match transport::bind(&settings.listen, &settings.transport_limits).await {
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
        let mut ua = UserAgent::new(UaConfig {
            listeners,
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
        });
        ua.set_overload(settings.overload);
        let core = CallCore::new(
            ua,
            settings.routing.clone(),
            CoreConfig {
                ring_timeout: settings.ring_timeout,
                recordings_dir: settings.recordings_dir.clone(),
                source_rate: settings.source_rate,
                caller_ids: Some(caller_ids),
                account_limits: Some(account_limits),
                visit_key: Some(switchboard_control::call::visit::node_key(
                    settings.digest_secret.as_deref().unwrap_or_default(),
                )),
            },
            (
                std::time::Instant::now(),
                switchboard_control::infra::clock::now_ms(),
            ),
        );
        let driving = DriverConfig {
            shutdown_grace: Duration::from_secs(5),
            liveness: Some(liveness),
            sip_trace,
        };
        let (driver, control) = Driver::new(core, driving);
        // Where other nodes (and this one, for a call handed to an App) send their legs:
        // plain SIP over UDP, as a Request-URI with no transport says.
        let first = (bound.iter())
            .find(|l| l.transport == switchboard_sip::transport::Transport::Udp)
            .or(bound.first())
            .map(|l| l.addr);
        let _ = ready.send(Ok((stats, control, sender.clone(), first)));
        driver.run(inbound, sender, media, media_events, shutdown, cdr)
            .await;
    });
}
