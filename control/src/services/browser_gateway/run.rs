//! The gateway's user agent and what it keeps: sessions, and their calls as SIP legs.

use super::*;

/// A session's calls are SIP legs of the gateway's user agent.
struct Session {
    login: Login,
    events: mpsc::Sender<SessionEvent>,
    registration: Option<RegistrationId>,
    renew_at: Option<Instant>,
    /// Its socket is gone: it is closed at this instant unless its calls are resumed first.
    detached_until: Option<Instant>,
}

struct CallLeg {
    session: SessionId,
    call: String,
    /// The browser's last SDP, to answer a re-INVITE that changes nothing for it.
    local_sdp: Option<String>,
    answered: bool,
    /// Held now; and what the re-INVITE out asks for, while one is.
    held: bool,
    pending: Option<Pending>,
    /// The token a new session of the browser takes the call over with.
    resume: String,
    /// The call's parties as the browser knows them: the caller's number and the callee's.
    from: String,
    to: String,
    /// The core offered the call anew for an attach: the browser's answer completes it.
    attaching: bool,
}

/// What a re-INVITE from the gateway asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// To hold (true) or resume.
    Hold(bool),
    /// The browser's new offer (an ICE restart).
    Offer,
    /// No offer: the core's, for a browser attaching with a new peer connection.
    Attach,
}

pub(super) struct Run {
    pub(super) ua: UserAgent,
    core: Peer,
    realm: String,
    sessions: HashMap<SessionId, Session>,
    legs: HashMap<LegId, CallLeg>,
    by_call: HashMap<(SessionId, String), LegId>,
    by_resume: HashMap<String, LegId>,
    registrations: HashMap<RegistrationId, SessionId>,
}

impl Run {
    /// The gateway's user agent, reaching the core at `core`.
    pub(super) fn new(core: Peer, realm: String) -> Self {
        let listener = Listener {
            transport: Transport::Ws,
            local: core.local,
            advertised: DOMAIN.into(),
        };
        let ua = UserAgent::new(UaConfig {
            listeners: vec![listener],
            user_agent: "Switchboard browser gateway".into(),
            timers: Default::default(),
            realm: realm.clone(),
            digest_algorithms: vec![switchboard_sip::auth::Algorithm::Md5],
            users: HashMap::new(),
            digest_secret: None,
            node_id: String::new(),
            digest_uri: Default::default(),
            registrar: Default::default(),
            session_timers: Default::default(),
            shard: Default::default(),
        });
        Self {
            ua,
            core,
            realm,
            sessions: HashMap::new(),
            legs: HashMap::new(),
            by_call: HashMap::new(),
            by_resume: HashMap::new(),
            registrations: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self, mut link: LocalLink, mut commands: mpsc::Receiver<Command>) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                c = commands.recv() => match c {
                    Some(c) => self.on_command(Instant::now(), c),
                    None => break,
                },
                m = link.from_core.recv() => match m {
                    Some(bytes) => self.on_core(Instant::now(), bytes),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    self.ua.handle_timeout(now);
                    self.renew(now);
                    self.close_detached(now);
                }
            }
            self.drain_events(Instant::now());
            while let Some(t) = self.ua.poll_transmit() {
                match SipMessage::parse(&t.data) {
                    Ok(m) => {
                        if !link.send(m).await {
                            return;
                        }
                    }
                    Err(e) => warn!(error = %e, "the gateway built a message it cannot parse"),
                }
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(60);
        let renew = self.sessions.values().filter_map(|s| s.renew_at).min();
        let detached = self
            .sessions
            .values()
            .filter_map(|s| s.detached_until)
            .min();
        [self.ua.poll_timeout(), renew, detached]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(far)
            .min(far)
    }

    pub(super) fn on_core(&mut self, now: Instant, bytes: Bytes) {
        match SipMessage::parse(&bytes) {
            Ok(m) => self.ua.on_message(now, m, self.core),
            Err(e) => debug!(error = %e, "unparsable message from the core"),
        }
    }

    fn aor(&self, user: &str) -> Option<Uri> {
        Uri::try_from(format!("sip:{user}@{}", self.realm).as_str()).ok()
    }

    fn register(&mut self, now: Instant, id: SessionId, expires: u32) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        let Some(aor) = self.aor(&s.login.user) else {
            return;
        };
        let params = RegisterParams {
            aor,
            // The session, named in the Contact: a call to it comes back with this URI.
            contact: format!("sip:s{id}@{DOMAIN};transport=ws"),
            expires,
            peer: self.core,
            credentials: Some((s.login.user.clone(), s.login.password.clone())),
        };
        if let Some(r) = self.ua.register(now, params) {
            self.registrations.insert(r, id);
            if let Some(s) = self.sessions.get_mut(&id) {
                s.registration = Some(r);
                s.renew_at = (expires > 0).then(|| now + REGISTRATION / 2);
            }
        }
    }

    fn renew(&mut self, now: Instant) {
        let due: Vec<SessionId> = (self.sessions.iter())
            .filter(|(_, s)| s.renew_at.is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.register(now, id, REGISTRATION.as_secs() as u32);
        }
    }

    fn tell(&self, session: SessionId, event: SessionEvent) {
        if let Some(s) = self.sessions.get(&session) {
            // A session that cannot keep up loses events rather than stalling every other
            // (a detached one hears nothing).
            if let Err(mpsc::error::TrySendError::Full(_)) = s.events.try_send(event) {
                warn!(session, "a browser session's events overflowed");
            }
        }
    }

    /// Hangs up a session's calls (those up too, unless `keep_answered`).
    fn hang_up_calls(&mut self, now: Instant, session: SessionId, keep_answered: bool) {
        let calls: Vec<LegId> = (self.legs.iter())
            .filter(|(_, l)| l.session == session && !(keep_answered && l.answered))
            .map(|(id, _)| *id)
            .collect();
        for leg in calls {
            self.ua.hangup(now, leg, 480);
            self.forget(leg);
        }
    }

    fn close(&mut self, now: Instant, session: SessionId) {
        self.hang_up_calls(now, session, false);
        if self
            .sessions
            .get(&session)
            .is_some_and(|s| s.detached_until.is_none())
        {
            self.register(now, session, 0);
        }
        self.sessions.remove(&session);
    }

    /// Detached sessions whose browser did not come back in time.
    pub(super) fn close_detached(&mut self, now: Instant) {
        let due: Vec<SessionId> = (self.sessions.iter())
            .filter(|(_, s)| s.detached_until.is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for session in due {
            info!(session, "a browser did not come back for its calls");
            self.close(now, session);
        }
    }

    fn detach(&mut self, now: Instant, session: SessionId, keep: Duration) {
        self.hang_up_calls(now, session, true);
        if !self.legs.values().any(|l| l.session == session) {
            return self.close(now, session);
        }
        self.register(now, session, 0);
        if let Some(s) = self.sessions.get_mut(&session) {
            info!(session, user = %s.login.user, "a browser's socket is gone: its calls wait for it");
            s.detached_until = Some(now + keep);
            s.renew_at = None;
        }
    }

    /// A new session of a browser takes over one of its calls up, by the call's token.
    fn resume(&mut self, session: SessionId, call: String, token: String) {
        let user = |id: &SessionId| self.sessions.get(id).map(|s| &s.login.user);
        let leg = self.by_resume.get(&token).copied();
        let found = leg.and_then(|leg| Some((leg, self.legs.get(&leg)?)));
        let taken = self.by_call.contains_key(&(session, call.clone()));
        let Some((leg, l)) = found.filter(|(_, l)| {
            l.answered && !taken && user(&session).is_some() && user(&l.session) == user(&session)
        }) else {
            return self.tell(session, SessionEvent::Resumed { call, resume: None });
        };
        let old = (l.session, l.call.clone());
        self.by_call.remove(&old);
        self.by_resume.remove(&token);
        let resume = crate::services::directory::sip_logins::uuid_v4();
        if let Some(l) = self.legs.get_mut(&leg) {
            l.session = session;
            l.call = call.clone();
            l.resume = resume.clone();
        }
        self.by_call.insert((session, call.clone()), leg);
        self.by_resume.insert(resume.clone(), leg);
        info!(session, from = old.0, "a browser took its call back");
        // A detached session whose last call is taken back is done.
        let detached = self
            .sessions
            .get(&old.0)
            .is_some_and(|s| s.detached_until.is_some());
        if detached && !self.legs.values().any(|l| l.session == old.0) {
            self.sessions.remove(&old.0);
        }
        let resume = Some(resume);
        self.tell(session, SessionEvent::Resumed { call, resume });
    }

    pub(super) fn on_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Open {
                session,
                login,
                events,
            } => {
                if self.sessions.len() >= MAX_SESSIONS {
                    let _ = events.try_send(SessionEvent::Registered(false));
                    return;
                }
                info!(session, user = %login.user, account = %login.account, "browser signed in");
                self.sessions.insert(
                    session,
                    Session {
                        login,
                        events,
                        registration: None,
                        renew_at: None,
                        detached_until: None,
                    },
                );
                self.register(now, session, REGISTRATION.as_secs() as u32);
            }
            Command::Close { session } => self.close(now, session),
            Command::Detach { session, keep } => self.detach(now, session, keep),
            Command::Resume {
                session,
                call,
                token,
            } => self.resume(session, call, token),
            Command::Invite {
                session,
                call,
                to,
                sdp,
                headers,
            } => self.invite(now, session, call, to, sdp, headers),
            Command::Attach { session, call } => self.attach(now, session, call),
            Command::Answer { session, call, sdp } => {
                let Some(&leg) = self.by_call.get(&(session, call)) else {
                    return;
                };
                let Some(l) = self.legs.get_mut(&leg) else {
                    return;
                };
                l.local_sdp = Some(sdp.clone());
                if std::mem::take(&mut l.attaching) {
                    // The answer to the core's offer in the 2xx, in the ACK.
                    return self.ua.ack_reinvite(leg, Some(Body::sdp(sdp)));
                }
                l.answered = true;
                self.ua.respond(now, leg, 200, Some(Body::sdp(sdp)));
            }
            Command::Hangup {
                session,
                call,
                code,
            } => {
                // The browser knows its call is over: nothing more is told about it.
                if let Some(&leg) = self.by_call.get(&(session, call)) {
                    self.ua.hangup(now, leg, code);
                    self.forget(leg);
                }
            }
            Command::Hold {
                session,
                call,
                hold,
            } => self.hold(now, session, call, hold),
            Command::Renegotiate { session, call, sdp } => {
                self.renegotiate(now, session, call, sdp)
            }
            Command::Dtmf {
                session,
                call,
                digits,
            } => {
                if let Some(&leg) = self.by_call.get(&(session, call)) {
                    for d in digits
                        .chars()
                        .filter(|c| c.is_ascii_digit() || "*#ABCD".contains(*c))
                    {
                        let body = Body {
                            content_type: "application/dtmf-relay".into(),
                            data: format!("Signal={d}\r\nDuration=160\r\n").into(),
                        };
                        self.ua.info(now, leg, body);
                    }
                }
            }
        }
    }

    fn invite(
        &mut self,
        now: Instant,
        session: SessionId,
        call: String,
        to: String,
        sdp: String,
        headers: Vec<(String, String)>,
    ) {
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        let busy = self.legs.values().filter(|l| l.session == session).count();
        let target = self.aor(&to);
        let (Some(from), Some(uri)) = (self.aor(&s.login.user), target) else {
            return self.tell(session, SessionEvent::Ended { call, code: 484 });
        };
        if busy >= MAX_CALLS_PER_SESSION || self.by_call.contains_key(&(session, call.clone())) {
            return self.tell(session, SessionEvent::Ended { call, code: 486 });
        }
        let params = InviteParams {
            uri: uri.clone(),
            from: format!("<{from}>"),
            to: format!("<{uri}>"),
            peer: self.core,
            body: Some(Body::sdp(sdp.clone())),
            credentials: Some((s.login.user.clone(), s.login.password.clone())),
            max_forwards: 70,
            ring_timeout: None,
            headers,
            asserted: Vec::new(),
        };
        let parties = (s.login.user.clone(), to);
        let leg = self.ua.invite(now, params);
        self.add_leg(leg, session, call, Some(sdp), parties);
    }

    fn hold(&mut self, now: Instant, session: SessionId, call: String, hold: Option<bool>) {
        let leg = self.by_call.get(&(session, call.clone())).copied();
        let Some((leg, l)) = leg.and_then(|leg| Some((leg, self.legs.get_mut(&leg)?))) else {
            let held = hold.unwrap_or(false);
            return self.tell(
                session,
                SessionEvent::Held {
                    call,
                    held,
                    ok: false,
                },
            );
        };
        let hold = hold.unwrap_or(!l.held);
        let sdp = (l.answered && l.pending.is_none())
            .then(|| l.local_sdp.as_deref().map(|sdp| with_direction(sdp, hold)))
            .flatten();
        let Some(sdp) = sdp else {
            let held = l.held;
            return self.tell(
                session,
                SessionEvent::Held {
                    call,
                    held,
                    ok: false,
                },
            );
        };
        if self.ua.reinvite(now, leg, Body::sdp(sdp.clone())) {
            if let Some(l) = self.legs.get_mut(&leg) {
                l.pending = Some(Pending::Hold(hold));
                l.local_sdp = Some(sdp);
            }
        } else {
            self.tell(
                session,
                SessionEvent::Held {
                    call,
                    held: !hold,
                    ok: false,
                },
            );
        }
    }

    /// Asks the core to offer a call up anew, for a browser attaching with a new peer
    /// connection: an offerless re-INVITE, whose 2xx carries the offer.
    fn attach(&mut self, now: Instant, session: SessionId, call: String) {
        let leg = self.by_call.get(&(session, call.clone())).copied();
        let ready = leg.and_then(|leg| Some((leg, self.legs.get(&leg)?)));
        let asked = ready
            .filter(|(_, l)| l.answered && l.pending.is_none())
            .is_some_and(|(leg, _)| self.ua.reinvite_offerless(now, leg));
        match (asked, leg.and_then(|leg| self.legs.get_mut(&leg))) {
            (true, Some(l)) => {
                info!(session, "a browser attaches its call anew");
                l.pending = Some(Pending::Attach)
            }
            _ => {
                let event = self.attach_event(leg, call, None);
                self.tell(session, event);
            }
        }
    }

    fn attach_event(&self, leg: Option<LegId>, call: String, sdp: Option<String>) -> SessionEvent {
        let l = leg.and_then(|leg| self.legs.get(&leg));
        let sip_call_id = leg.and_then(|leg| self.ua.call_id(leg)).unwrap_or_default();
        SessionEvent::Attach {
            call,
            sdp,
            from: l.map(|l| l.from.clone()).unwrap_or_default(),
            to: l.map(|l| l.to.clone()).unwrap_or_default(),
            sip_call_id: sip_call_id.to_owned(),
        }
    }

    /// The browser's new offer (an ICE restart) to the core; the answer comes back as
    /// [`SessionEvent::Renegotiated`].
    fn renegotiate(&mut self, now: Instant, session: SessionId, call: String, sdp: String) {
        let leg = self.by_call.get(&(session, call.clone())).copied();
        let ready = leg.and_then(|leg| Some((leg, self.legs.get(&leg)?)));
        let Some((leg, _)) = ready.filter(|(_, l)| l.answered && l.pending.is_none()) else {
            return self.tell(
                session,
                SessionEvent::Renegotiated {
                    call,
                    sdp: None,
                    ok: false,
                },
            );
        };
        if !self.ua.reinvite(now, leg, Body::sdp(sdp.clone())) {
            return self.tell(
                session,
                SessionEvent::Renegotiated {
                    call,
                    sdp: None,
                    ok: false,
                },
            );
        }
        if let Some(l) = self.legs.get_mut(&leg) {
            l.pending = Some(Pending::Offer);
            l.local_sdp = Some(sdp);
        }
    }

    /// A session's call, as a SIP leg; returns its resume token.
    fn add_leg(
        &mut self,
        leg: LegId,
        session: SessionId,
        call: String,
        local_sdp: Option<String>,
        (from, to): (String, String),
    ) -> String {
        let resume = crate::services::directory::sip_logins::uuid_v4();
        self.by_call.insert((session, call.clone()), leg);
        self.by_resume.insert(resume.clone(), leg);
        let l = CallLeg {
            session,
            call,
            local_sdp,
            answered: false,
            held: false,
            pending: None,
            resume: resume.clone(),
            from,
            to,
            attaching: false,
        };
        self.legs.insert(leg, l);
        resume
    }

    fn forget(&mut self, leg: LegId) {
        if let Some(l) = self.legs.remove(&leg) {
            self.by_call.remove(&(l.session, l.call));
            self.by_resume.remove(&l.resume);
        }
    }

    pub(super) fn drain_events(&mut self, now: Instant) {
        while let Some(event) = self.ua.poll_event() {
            match event {
                UaEvent::Registered { registration, code } => {
                    let Some(session) = self.registrations.remove(&registration) else {
                        continue;
                    };
                    let current = (self.sessions.get(&session)).and_then(|s| s.registration);
                    if current == Some(registration) {
                        if code != 200 {
                            warn!(session, code, "the core refused a browser's registration");
                        }
                        self.tell(session, SessionEvent::Registered(code == 200));
                    }
                }
                UaEvent::Incoming { leg, request, .. } => self.on_incoming(now, leg, &request),
                UaEvent::Leg { leg, event } => self.on_leg(now, leg, event),
                UaEvent::Authenticated { .. } | UaEvent::Pong { .. } => {}
            }
        }
    }

    fn on_incoming(
        &mut self,
        now: Instant,
        leg: LegId,
        request: &switchboard_sip::message::Request,
    ) {
        let session = (request.uri.user())
            .and_then(|u| u.strip_prefix('s'))
            .and_then(|id| id.parse::<SessionId>().ok())
            .filter(|id| self.sessions.contains_key(id));
        let Some(session) = session else {
            return self.ua.respond(now, leg, 480, None);
        };
        let busy = self.legs.values().filter(|l| l.session == session).count();
        let sdp =
            (!request.body.is_empty()).then(|| String::from_utf8_lossy(&request.body).into_owned());
        let (Some(sdp), true) = (sdp, busy < MAX_CALLS_PER_SESSION) else {
            // A browser needs the offer in the INVITE; one at its limit is busy.
            return self.ua.respond(now, leg, 486, None);
        };
        let from_header = request.headers.get("From").unwrap_or_default();
        let from_uri = switchboard_sip::message::headers::uri_of_name_addr(from_header);
        let from = (from_uri.as_ref())
            .and_then(|u| u.user().map(str::to_owned))
            .unwrap_or_default();
        let from_name = from_header
            .split('<')
            .next()
            .map(|d| d.trim().trim_matches('"').to_owned())
            .filter(|d| !d.is_empty() && from_header.contains('<'))
            .unwrap_or_else(|| from.clone());
        let to = (self.sessions.get(&session)).map_or_else(String::new, |s| s.login.user.clone());
        let headers = switchboard_sip::ua::shown_headers(request);
        let sip_call_id = request.headers.call_id().unwrap_or_default().to_owned();
        let call = crate::services::directory::sip_logins::uuid_v4();
        let parties = (from.clone(), to.clone());
        let resume = self.add_leg(leg, session, call.clone(), None, parties);
        self.ua.respond(now, leg, 180, None);
        self.tell(
            session,
            SessionEvent::Incoming {
                call,
                from,
                from_name,
                to,
                sdp,
                headers,
                sip_call_id,
                resume,
            },
        );
    }

    fn on_leg(&mut self, now: Instant, leg: LegId, event: LegEvent) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let (session, call) = (l.session, l.call.clone());
        let text = |b: Option<Body>| b.map(|b| String::from_utf8_lossy(&b.data).into_owned());
        let sip_call_id = self.ua.call_id(leg).unwrap_or_default().to_owned();
        match event {
            LegEvent::Progress { body, .. } => self.tell(
                session,
                SessionEvent::Ringing {
                    call,
                    sdp: text(body),
                    sip_call_id,
                },
            ),
            LegEvent::Answered { body } => {
                l.answered = true;
                let resume = l.resume.clone();
                self.ua.ack(leg, None);
                self.tell(
                    session,
                    SessionEvent::Answered {
                        call,
                        sdp: text(body),
                        sip_call_id,
                        resume,
                    },
                );
            }
            LegEvent::ReInvite { .. } => {
                let Some(l) = self.legs.get(&leg) else {
                    return;
                };
                // The browser's media does not change under it (a hold is the far end's):
                // the same description again.
                let sdp = l.local_sdp.clone().map(Body::sdp);
                self.ua
                    .respond_reinvite(now, leg, if sdp.is_some() { 200 } else { 488 }, sdp);
            }
            LegEvent::Failed { code } => {
                self.forget(leg);
                self.tell(session, SessionEvent::Ended { call, code });
            }
            LegEvent::Cancelled => {
                self.forget(leg);
                self.tell(session, SessionEvent::Ended { call, code: 487 });
            }
            LegEvent::Bye { .. } | LegEvent::SessionExpired | LegEvent::PrackTimeout => {
                self.forget(leg);
                self.tell(session, SessionEvent::Ended { call, code: 200 });
            }
            LegEvent::Terminated { .. } => {
                self.forget(leg);
                self.tell(session, SessionEvent::Ended { call, code: 200 });
            }
            LegEvent::ReInviteResult { code, body } => {
                let ok = (200..300).contains(&code);
                let hold = match l.pending.take() {
                    None => return,
                    Some(Pending::Attach) => {
                        let sdp = text(body).filter(|_| ok);
                        l.attaching = sdp.is_some();
                        let event = self.attach_event(Some(leg), call, sdp);
                        return self.tell(session, event);
                    }
                    Some(Pending::Offer) => {
                        let sdp = text(body).filter(|_| ok);
                        let ok = sdp.is_some();
                        return self.tell(session, SessionEvent::Renegotiated { call, sdp, ok });
                    }
                    Some(Pending::Hold(hold)) => hold,
                };
                if ok {
                    l.held = hold;
                } else if let Some(sdp) = l.local_sdp.as_deref() {
                    // Refused: the description in force is the one before.
                    l.local_sdp = Some(with_direction(sdp, l.held));
                }
                let held = l.held;
                self.tell(session, SessionEvent::Held { call, held, ok });
            }
            LegEvent::Acked { .. }
            | LegEvent::AckedAnswer { .. }
            | LegEvent::Info { .. }
            | LegEvent::Refer { .. }
            | LegEvent::ReferAnswered { .. }
            | LegEvent::ReferProgress { .. } => {}
        }
    }
}

/// A description with its audio held (`sendonly`) or not (`sendrecv`), its version one higher
/// (RFC 3264 §8: a changed description is a new version).
pub(super) fn with_direction(sdp: &str, hold: bool) -> String {
    let direction = if hold { "a=sendonly" } else { "a=sendrecv" };
    let mut out = Vec::new();
    let mut placed = false;
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        match line {
            "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive" => {
                if !placed {
                    out.push(direction.to_owned());
                    placed = true;
                }
            }
            l if l.starts_with("o=") => {
                let mut fields: Vec<String> = l.split(' ').map(str::to_owned).collect();
                if let Some(v) = fields
                    .get_mut(2)
                    .and_then(|v| Some((v.parse::<u64>().ok()?, v)))
                {
                    *v.1 = v.0.wrapping_add(1).to_string();
                }
                out.push(fields.join(" "));
            }
            l => out.push(l.to_owned()),
        }
    }
    if !placed {
        out.push(direction.to_owned());
    }
    let mut text = out.join("\r\n");
    text.push_str("\r\n");
    text
}
