//! Server WebSockets on the HTTP listeners (RFC 6455 §4.2): the browser SDKs' signalling
//! sockets (Telnyx's Verto on `/`, Twilio's on `/signal`) and the live socket. The handshake is
//! checked and answered here and the upgraded connection handed to tokio-tungstenite; axum's
//! own WebSocket support is not built because it would bring a second tungstenite version.
//!
//! A socket is a place held on the server, so what a client can make it hold is bounded here
//! for every dialect at once:
//! - **Places** ([`Places`]): in all and per source address (IPv6 by /64). When every place is
//!   taken, the address holding the most sockets that have not signed in gives up its oldest
//!   to a newcomer that holds fewer: a crowd of addresses cannot lock out a fresh one, and one
//!   address never takes more than its share. A socket signed in ([`Place::sign_in`]) is never
//!   evicted.
//! - **Accounts**: a socket signs in for an account, and an account holds at most its share of
//!   the signed-in sockets (`http.websockets_per_account`): one tenant's pages cannot take the
//!   places every other tenant's browsers need.
//! - **Signing in**: a socket that has not signed in [`SIGN_IN_WITHIN`] (or as configured)
//!   after its upgrade is closed whatever it is doing (reading, or blocked writing to a client that does not read).
//! - **Writing**: every frame has [`SEND_WITHIN`] to be written ([`send`]), the closing
//!   handshake too ([`close`]): a client that does not read loses its socket, not the server
//!   a task and its buffers.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// An upgraded connection.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Sockets open at once on all listeners, and from one address (IPv6: one /64), unless the
/// configuration says otherwise (`http.websockets_max`, `http.websockets_per_address`).
pub const MAX_OPEN: usize = 4096;
pub const MAX_PER_ADDRESS: usize = 64;
/// Sockets signed in for one account, unless the configuration says otherwise
/// (`http.websockets_per_account`).
pub const MAX_PER_ACCOUNT: usize = 1024;
/// From the upgrade to signing in (the SDKs sign in at once), unless the configuration says
/// otherwise (`http.websockets_sign_in_secs`).
pub const SIGN_IN_WITHIN: Duration = Duration::from_secs(10);
/// To write one frame (and to finish the closing handshake).
pub const SEND_WITHIN: Duration = Duration::from_secs(10);

/// Every listener's sockets: one count for the process.
static PLACES: std::sync::LazyLock<Arc<Places>> =
    std::sync::LazyLock::new(|| Arc::new(Places::new(MAX_OPEN, MAX_PER_ADDRESS, MAX_PER_ACCOUNT)));

/// The process's sockets, to set their limits at start.
pub fn places() -> &'static Arc<Places> {
    &PLACES
}

/// The places sockets hold, in all, per address and per account signed in.
pub struct Places {
    open: Mutex<Open>,
}

struct Open {
    max: usize,
    per_address: usize,
    per_account: usize,
    sign_in_within: Duration,
    by_address: HashMap<IpAddr, usize>,
    /// Sockets signed in, by account.
    by_account: HashMap<Arc<str>, usize>,
    /// Every place held, by id (ids grow: the smallest is the oldest).
    held: HashMap<u64, Held>,
    next_id: u64,
}

struct Held {
    key: IpAddr,
    /// The account it signed in for; `None` until it signs in.
    account: Option<Arc<str>>,
    /// Closes its socket when it is evicted.
    evict: Arc<Notify>,
}

impl Open {
    fn release(&mut self, id: u64) -> Option<Held> {
        let held = self.held.remove(&id)?;
        if let Some(n) = self.by_address.get_mut(&held.key) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&held.key);
            }
        }
        if let Some(account) = &held.account
            && let Some(n) = self.by_account.get_mut(account)
        {
            *n -= 1;
            if *n == 0 {
                self.by_account.remove(account);
            }
        }
        Some(held)
    }

    /// The oldest socket not signed in of the address that has the most of them, if that
    /// address holds more than `mine + 1` (what the newcomer's would hold with its new one).
    fn evictable(&self, mine: usize) -> Option<u64> {
        let mut unsigned: HashMap<IpAddr, (usize, u64)> = HashMap::new();
        for (id, h) in self.held.iter().filter(|(_, h)| h.account.is_none()) {
            let e = unsigned.entry(h.key).or_insert((0, *id));
            e.0 += 1;
            e.1 = e.1.min(*id);
        }
        let (count, oldest) = unsigned
            .into_values()
            .max_by_key(|(n, id)| (*n, u64::MAX - id))?;
        (count > mine + 1).then_some(oldest)
    }
}

impl Places {
    pub fn new(max: usize, per_address: usize, per_account: usize) -> Self {
        Self {
            open: Mutex::new(Open {
                max: max.max(1),
                per_address: per_address.max(1),
                per_account: per_account.max(1),
                sign_in_within: SIGN_IN_WITHIN,
                by_address: HashMap::new(),
                by_account: HashMap::new(),
                held: HashMap::new(),
                next_id: 0,
            }),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().expect("not poisoned")
    }

    /// The limits from now on (sockets open already keep their places).
    pub fn set_limits(
        &self,
        max: usize,
        per_address: usize,
        per_account: usize,
        sign_in_within: Duration,
    ) {
        let mut o = self.open();
        o.max = max.max(1);
        o.per_address = per_address.max(1);
        o.per_account = per_account.max(1);
        o.sign_in_within = sign_in_within;
    }

    /// A place for a socket from `ip`, or none: its address has all it may have, or every
    /// place is taken and no address holds more unsigned sockets than it would.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Place> {
        let key = super::address_key(ip);
        let mut o = self.open();
        let mine = o.by_address.get(&key).copied().unwrap_or(0);
        if mine >= o.per_address {
            return None;
        }
        if o.held.len() >= o.max {
            let oldest = o.evictable(mine)?;
            let evicted = o.release(oldest).expect("found above");
            evicted.evict.notify_one();
            metrics::counter!("switchboard_websockets_evicted_total").increment(1);
        }
        let id = o.next_id;
        o.next_id += 1;
        *o.by_address.entry(key).or_insert(0) += 1;
        let evict = Arc::new(Notify::new());
        let held = Held {
            key,
            account: None,
            evict: evict.clone(),
        };
        o.held.insert(id, held);
        Some(Place {
            places: self.clone(),
            id,
            evict,
        })
    }

    /// Sockets open (held places).
    pub fn len(&self) -> usize {
        self.open().held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One socket's place, given back when it is dropped (unless it was evicted, which gave it
/// back already).
pub struct Place {
    places: Arc<Places>,
    id: u64,
    evict: Arc<Notify>,
}

/// What signing a socket in came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedIn {
    /// Signed in (or already, for this account): never evicted, no sign-in deadline.
    Yes,
    /// Its place went to a newcomer a moment ago: the socket is closing and must not sign in.
    Evicted,
    /// Its account holds all the signed-in sockets it may: the socket stays unsigned (and is
    /// closed at its sign-in deadline if it does not leave first).
    AccountFull,
}

impl Place {
    /// Signs the socket in for `account`: it is never evicted, and its sign-in deadline no
    /// longer applies. A socket signed in already stays with its first account.
    pub fn sign_in(&self, account: &str) -> SignedIn {
        let mut o = self.places.open();
        let Some(h) = o.held.get(&self.id) else {
            return SignedIn::Evicted;
        };
        if h.account.is_some() {
            return SignedIn::Yes;
        }
        let held = o.by_account.get(account).copied().unwrap_or(0);
        if held >= o.per_account {
            metrics::counter!("switchboard_websockets_refused_total", "reason" => "account")
                .increment(1);
            return SignedIn::AccountFull;
        }
        let account: Arc<str> = Arc::from(account);
        *o.by_account.entry(account.clone()).or_insert(0) += 1;
        o.held.get_mut(&self.id).expect("found above").account = Some(account);
        SignedIn::Yes
    }

    fn signed_in(&self) -> bool {
        (self.places.open().held.get(&self.id)).is_some_and(|h| h.account.is_some())
    }

    /// Resolves when the place was given to a newcomer.
    async fn evicted(&self) {
        self.evict.notified().await
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.places.open().release(self.id);
    }
}

/// A handle the serving task signs in with (see [`Place::sign_in`]).
#[derive(Clone)]
pub struct SignIn(Arc<Place>);

impl SignIn {
    pub fn sign_in(&self, account: &str) -> SignedIn {
        self.0.sign_in(account)
    }
}

/// Sends one frame within [`SEND_WITHIN`]; `false` when it failed or the client did not take
/// it in time (the socket is then to be dropped).
pub async fn send<S>(sink: &mut S, message: Message) -> bool
where
    S: Sink<Message> + Unpin,
{
    matches!(
        tokio::time::timeout(SEND_WITHIN, sink.send(message)).await,
        Ok(Ok(()))
    )
}

/// Sends frames in turn, each within [`SEND_WITHIN`]; `false` at the first that fails.
pub async fn send_all<S>(sink: &mut S, messages: impl IntoIterator<Item = Message>) -> bool
where
    S: Sink<Message> + Unpin,
{
    for m in messages {
        if !send(sink, m).await {
            return false;
        }
    }
    true
}

/// The closing handshake, within [`SEND_WITHIN`] (a client that does not read gets none).
pub async fn close<S>(sink: &mut S)
where
    S: Sink<Message> + Unpin,
{
    let _ = tokio::time::timeout(SEND_WITHIN, sink.close()).await;
}

/// Whether a request asks to become a WebSocket (`Upgrade: websocket`, `Connection: upgrade`).
pub fn asks_upgrade(h: &axum::http::HeaderMap) -> bool {
    let has = |name: header::HeaderName, want: &str| {
        (h.get_all(name).iter())
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(want))
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

/// Answers a WebSocket handshake (426 for a request that is not one, 503 when there is no
/// place for it) and runs `serve` on the socket once the connection is upgraded; messages are
/// bounded by `max_message` bytes. `serve` signs its socket in with the [`SignIn`] it is
/// given; until it does, the socket may be evicted, and it is closed [`SIGN_IN_WITHIN`] (or as
/// configured) after the upgrade.
pub fn upgrade<F, Fut>(mut req: Request<Body>, max_message: usize, serve: F) -> Response
where
    F: FnOnce(Socket, SignIn) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let key = req.headers().get("Sec-WebSocket-Key").cloned();
    let (true, Some(key)) = (asks_upgrade(req.headers()), key) else {
        return (StatusCode::UPGRADE_REQUIRED, "a WebSocket is expected here").into_response();
    };
    let ip = (req.extensions().get::<ConnectInfo<SocketAddr>>())
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let places = places();
    let sign_in_within = places.open().sign_in_within;
    let Some(place) = places.take(ip) else {
        metrics::counter!("switchboard_websockets_refused_total", "reason" => "places")
            .increment(1);
        return (StatusCode::SERVICE_UNAVAILABLE, "too many sockets open").into_response();
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrading = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let place = Arc::new(place);
        let deadline = tokio::time::Instant::now() + sign_in_within;
        let Ok(Ok(upgraded)) = tokio::time::timeout_at(deadline, upgrading).await else {
            return;
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let late = async {
            tokio::time::sleep_until(deadline).await;
            if place.signed_in() {
                std::future::pending::<()>().await;
            }
        };
        // Dropping `serve` drops the socket. Only a socket not signed in is dropped this way,
        // and it holds nothing the dialect must release.
        tokio::select! {
            _ = serve(socket, SignIn(place.clone())) => {}
            _ = place.evicted() => tracing::debug!(%ip, "WebSocket evicted for a newcomer"),
            _ = late => {
                metrics::counter!("switchboard_websockets_unsigned_closed_total").increment(1);
                tracing::debug!(%ip, "WebSocket closed: not signed in in time");
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header("Sec-WebSocket-Accept", accept)
        .body(Body::empty())
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn sockets_are_counted_while_they_live_per_address_and_in_all() {
        let places = Arc::new(Places::new(16, 4, 16));
        let one: Vec<_> = std::iter::from_fn(|| places.take(ip(1))).take(5).collect();
        assert_eq!(one.len(), 4, "one address's cap");
        for p in &one {
            assert_eq!(p.sign_in("AC1"), SignedIn::Yes);
        }
        let mut all = one;
        for i in 2..=4 {
            all.extend(std::iter::from_fn(|| places.take(ip(i))).take(4));
            (all.iter()).for_each(|p| assert_eq!(p.sign_in("AC1"), SignedIn::Yes));
        }
        assert_eq!(places.len(), 16);
        assert!(
            places.take(ip(9)).is_none(),
            "full of signed-in sockets: no room"
        );
        drop(all);
        assert!(places.is_empty(), "each closed socket gives its place back");
        // An IPv6 host is its /64.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let from_64: Vec<_> = [
            "2001:db8::1",
            "2001:db8::2",
            "2001:db8::ff:3",
            "2001:db8::4",
            "2001:db8::5",
        ]
        .into_iter()
        .filter_map(|a| places.take(v6(a)))
        .collect();
        assert_eq!(from_64.len(), 4, "one /64 is one address");
        assert!(
            places.take(v6("2001:db8:0:1::1")).is_some(),
            "the next /64 is another"
        );
    }

    /// A crowd of addresses holding every place with sockets that never sign in: a newcomer
    /// takes the oldest of the address holding the most, until every address holds as many as
    /// the others; signed-in sockets are never taken; an evicted socket cannot sign in.
    #[test]
    fn a_newcomer_takes_the_place_of_the_heaviest_addresses_oldest_unsigned_socket() {
        let places = Arc::new(Places::new(8, 4, 8));
        let crowd_a: Vec<_> = (0..4).map(|_| places.take(ip(1)).unwrap()).collect();
        let crowd_b: Vec<_> = (0..4).map(|_| places.take(ip(2)).unwrap()).collect();
        assert_eq!(
            crowd_b[0].sign_in("AC1"),
            SignedIn::Yes,
            "b's are signed in"
        );
        for p in &crowd_b {
            p.sign_in("AC1");
        }
        let fresh = places.take(ip(3)).expect("a fresh address gets in");
        assert_eq!(
            crowd_a[0].sign_in("AC1"),
            SignedIn::Evicted,
            "a's oldest made room and cannot sign in now"
        );
        assert_eq!(places.len(), 8);
        // a has three left, the newcomer one: one more from the newcomer takes a's oldest;
        // then both hold two, and the newcomer waits (no ping-pong between equals).
        let fresh2 = places.take(ip(3)).expect("a still holds more");
        assert_eq!(
            crowd_a[1].sign_in("AC1"),
            SignedIn::Evicted,
            "the next oldest was taken"
        );
        assert_eq!(crowd_a[2].sign_in("AC1"), SignedIn::Yes, "the rest stay");
        assert!(
            places.take(ip(3)).is_none(),
            "as many as the heaviest: no more"
        );
        drop((fresh, fresh2));
        assert_eq!(places.len(), 6);
        drop(crowd_a);
        assert_eq!(places.len(), 4, "evicted places are not given back twice");
        drop(crowd_b);
        assert!(places.is_empty());
    }

    /// An account's signed-in sockets are bounded whatever addresses they come from; the others
    /// stay unsigned (evictable, closed at their deadline); a closed one frees its account's
    /// place; another account is not held back; signing in again is not counted twice.
    #[test]
    fn an_account_signs_in_its_share_of_sockets_and_no_more() {
        let places = Arc::new(Places::new(16, 4, 3));
        let pages: Vec<_> = (1..=4).map(|i| places.take(ip(i)).unwrap()).collect();
        for p in &pages[..3] {
            assert_eq!(p.sign_in("AC1"), SignedIn::Yes);
            assert_eq!(p.sign_in("AC1"), SignedIn::Yes, "once per socket");
        }
        assert_eq!(pages[3].sign_in("AC1"), SignedIn::AccountFull);
        assert!(!pages[3].signed_in(), "left unsigned");
        let other = places.take(ip(5)).unwrap();
        assert_eq!(other.sign_in("AC2"), SignedIn::Yes, "another account");
        let mut pages = pages;
        pages.remove(0);
        assert_eq!(
            pages[2].sign_in("AC1"),
            SignedIn::Yes,
            "a closed socket gave its account's place back"
        );
        drop((pages, other));
        let o = places.open();
        assert!(o.by_account.is_empty() && o.held.is_empty());
    }
}
