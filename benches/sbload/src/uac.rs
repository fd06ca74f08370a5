//! The calling side: starts calls at a steady rate up to a limit of calls at once, each an
//! INVITE with a PCMA offer, ACK, RTP for the hold time (one packet per call per 20 ms tick,
//! the tick's packets sent in batches from one socket), BYE. Retransmits as RFC 3261 says
//! (INVITE from T1 doubling until a response; BYE doubling up to T2) and gives up at 64·T1.
//!
//! The worker is one thread with one SIP and one RTP socket for all its calls; a call is a
//! slot found from its Call-ID, its media from the server's port the packet came from, so
//! nothing on the hot paths is looked up by string or allocated per packet.

use crate::mmsg::{self, Batch};
use crate::sip;
use crate::stats::Stats;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const GIVE_UP: Duration = Duration::from_secs(32);
const TICK: Duration = Duration::from_millis(20);
/// RTP stops this long before the BYE, so that what was sent has come back when the call ends.
const TAIL: Duration = Duration::from_millis(200);
const NO_CALL: u32 = u32::MAX;

#[derive(Clone)]
pub struct Config {
    pub target: SocketAddrV4,
    pub local: std::net::Ipv4Addr,
    pub service: String,
    /// Calls a second this worker starts, and how many in all.
    pub rate: f64,
    pub calls: u64,
    /// Calls up at once at most (SIPp's `-l`).
    pub limit: usize,
    pub hold: Duration,
    pub media: bool,
    /// A 503 is an answer (the server refusing for load), not a failure.
    pub refusal_ok: bool,
    pub worker: u32,
}

enum State {
    Inviting { provisional: bool },
    Talking,
    Byeing,
}

struct Call {
    generation: u32,
    state: State,
    from_tag: String,
    call_id: String,
    invite: String,
    bye: String,
    started: Instant,
    every: Duration,
    give_up: Instant,
    media_until: Instant,
    rtp_to: Option<SocketAddrV4>,
    /// Position in the worker's list of calls with media.
    media_at: Option<usize>,
    seq: u16,
    ts: u32,
    ssrc: u32,
    sent: u64,
    received: u64,
    tseq: u32,
}

pub struct Uac {
    cfg: Config,
    sip: UdpSocket,
    rtp: UdpSocket,
    sip_addr: SocketAddrV4,
    rtp_addr: SocketAddrV4,
    calls: Vec<Option<Call>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    media: Vec<u32>,
    by_port: Vec<u32>,
    branch: u64,
    active: usize,
    inbox: Batch,
    outbox: Batch,
    pub stats: Stats,
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("IPv4 only"),
    }
}

impl Uac {
    pub fn new(cfg: Config) -> Self {
        let sip = mmsg::socket(SocketAddr::from((cfg.local, 0)));
        let rtp = mmsg::socket(SocketAddr::from((cfg.local, 0)));
        Self {
            sip_addr: v4(sip.local_addr().unwrap()),
            rtp_addr: v4(rtp.local_addr().unwrap()),
            sip,
            rtp,
            calls: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            media: Vec::new(),
            by_port: vec![NO_CALL; 65536],
            branch: 0,
            active: 0,
            inbox: Batch::default(),
            outbox: Batch::default(),
            stats: Stats::default(),
            cfg,
        }
    }

    /// Places every call of the worker, then waits for the last to end.
    pub fn run(mut self) -> Stats {
        let cpu0 = mmsg::thread_cpu();
        let start = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / self.cfg.rate.max(0.001));
        let mut next_start = start;
        let mut next_tick = start + TICK;
        loop {
            let now = Instant::now();
            while self.stats.started < self.cfg.calls && next_start <= now {
                if self.active >= self.cfg.limit {
                    // As SIPp: a call held back by the limit is late, not made up for later.
                    next_start = now + interval;
                    break;
                }
                self.start_call(now);
                next_start += interval;
            }
            while let Some(&Reverse((at, idx, tseq))) = self.heap.peek() {
                if at > now {
                    break;
                }
                self.heap.pop();
                self.on_timer(now, idx, tseq);
            }
            if self.cfg.media && now >= next_tick {
                self.tick(now);
                next_tick += TICK;
                if next_tick <= now {
                    self.stats.late_ticks += 1;
                    next_tick = now + TICK;
                }
            }
            if self.stats.started >= self.cfg.calls && self.active == 0 {
                break;
            }
            let mut until = now + Duration::from_millis(100);
            if self.stats.started < self.cfg.calls {
                until = until.min(next_start);
            }
            if let Some(Reverse((at, _, _))) = self.heap.peek() {
                until = until.min(*at);
            }
            if self.cfg.media && !self.media.is_empty() {
                until = until.min(next_tick);
            }
            let [sip_ready, rtp_ready] = mmsg::wait(&[&self.sip, &self.rtp], until);
            if sip_ready {
                self.read_sip();
            }
            if rtp_ready {
                self.read_rtp();
            }
        }
        self.stats.elapsed = start.elapsed().as_secs_f64();
        self.stats.cpu = mmsg::thread_cpu() - cpu0;
        self.stats
    }

    fn send(&mut self, msg: &str, to: SocketAddrV4) {
        if self.sip.send_to(msg.as_bytes(), to).is_err() {
            self.stats.send_errors += 1;
        }
    }

    fn next_branch(&mut self) -> String {
        self.branch += 1;
        format!("z9hG4bK-{}-{}", self.cfg.worker, self.branch)
    }

    fn schedule(&mut self, idx: u32, at: Instant) {
        if let Some(call) = self.calls[idx as usize].as_mut() {
            call.tseq = call.tseq.wrapping_add(1);
            self.heap.push(Reverse((at, idx, call.tseq)));
        }
    }

    fn start_call(&mut self, now: Instant) {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.calls.push(None);
                self.generations.push(0);
                (self.calls.len() - 1) as u32
            }
        };
        self.generations[idx as usize] = self.generations[idx as usize].wrapping_add(1);
        let generation = self.generations[idx as usize];
        let n = self.stats.started;
        self.stats.started += 1;
        self.active += 1;
        let branch = self.next_branch();
        let (me, target, service) = (self.sip_addr, self.cfg.target, &self.cfg.service);
        let call_id = format!(
            "{idx}.{generation}.{}-{}@sbload",
            self.cfg.worker,
            std::process::id()
        );
        let from_tag = format!("{}-{n}", self.cfg.worker);
        let body = sip::sdp(self.rtp_addr, n);
        let invite = format!(
            "INVITE sip:{service}@{target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"sbload\" <sip:sbload@{me}>;tag={from_tag}\r\n\
             To: <sip:{service}@{target}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:sbload@{me}>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.send(&invite, target);
        self.calls[idx as usize] = Some(Call {
            generation,
            state: State::Inviting { provisional: false },
            from_tag,
            call_id,
            invite,
            bye: String::new(),
            started: now,
            every: T1,
            give_up: now + GIVE_UP,
            media_until: now,
            rtp_to: None,
            media_at: None,
            seq: (n as u16).wrapping_mul(7919),
            ts: (n as u32).wrapping_mul(104_729),
            ssrc: (self.cfg.worker << 24) ^ idx ^ generation.rotate_left(12),
            sent: 0,
            received: 0,
            tseq: 0,
        });
        self.schedule(idx, now + T1);
    }

    /// The slot of a Call-ID of this worker, if the call is still there.
    fn slot(&self, call_id: &str) -> Option<u32> {
        let mut parts = call_id.split(['.', '-']);
        let idx: u32 = parts.next()?.parse().ok()?;
        let generation: u32 = parts.next()?.parse().ok()?;
        let call = self.calls.get(idx as usize)?.as_ref()?;
        (call.generation == generation).then_some(idx)
    }

    fn read_sip(&mut self) {
        // Bounded, so that timers and the RTP tick run under a flood of messages too.
        for _ in 0..16 {
            let n = self.inbox.recv(&self.sip);
            if n == 0 {
                return;
            }
            let inbox = std::mem::replace(&mut self.inbox, Batch::empty());
            for i in 0..n {
                let (data, from) = inbox.get(i);
                let Ok(msg) = std::str::from_utf8(data) else {
                    continue;
                };
                self.on_message(Instant::now(), msg, from);
            }
            self.inbox = inbox;
        }
    }

    fn on_message(&mut self, now: Instant, msg: &str, from: SocketAddrV4) {
        let Some(code) = sip::status(msg) else {
            return self.on_request(msg, from);
        };
        let Some(idx) = sip::call_id(msg).and_then(|c| self.slot(c)) else {
            return;
        };
        let method = sip::cseq_method(msg);
        let call = self.calls[idx as usize].as_mut().expect("slot checked");
        match (&call.state, method, code) {
            (State::Inviting { .. }, "INVITE", 100..=199) => {
                call.state = State::Inviting { provisional: true };
                let give_up = call.give_up;
                self.schedule(idx, give_up);
            }
            (State::Inviting { .. }, "INVITE", 200..=299) => {
                self.stats.setup_ms += now.duration_since(call.started).as_secs_f64() * 1e3;
                self.stats.answered += 1;
                self.answered(now, idx, msg);
            }
            (State::Inviting { .. }, "INVITE", _) => {
                let ack = non_2xx_ack(&call.invite, msg);
                self.send(&ack, self.cfg.target);
                if code == 503 && self.cfg.refusal_ok {
                    self.stats.refused += 1;
                } else {
                    self.stats.fail(code);
                }
                self.end(idx);
            }
            // A 2xx again: our ACK was lost.
            (State::Talking | State::Byeing, "INVITE", 200..=299) => {
                let ack = self.ack(idx, msg);
                self.send(&ack, self.cfg.target);
            }
            (State::Byeing, "BYE", 200..=699) => {
                if (200..300).contains(&code) {
                    self.stats.ok += 1;
                } else {
                    self.stats.fail(code);
                }
                self.end(idx);
            }
            _ => {}
        }
    }

    /// The 2xx to our INVITE: ACK it, start the media, hang up after the hold time.
    fn answered(&mut self, now: Instant, idx: u32, msg: &str) {
        let ack = self.ack(idx, msg);
        self.send(&ack, self.cfg.target);
        let bye = self.in_dialog(idx, msg, "BYE", 2);
        let hold = self.cfg.hold;
        let media = self.cfg.media;
        let call = self.calls[idx as usize].as_mut().expect("slot checked");
        call.bye = bye;
        call.state = State::Talking;
        call.media_until = now + hold.saturating_sub(TAIL);
        call.rtp_to = sip::sdp_audio(msg);
        if media && let Some(to) = call.rtp_to {
            call.media_at = Some(self.media.len());
            self.media.push(idx);
            self.by_port[to.port() as usize] = idx;
        }
        self.schedule(idx, now + hold);
    }

    /// The ACK for the 2xx `msg`.
    fn ack(&mut self, idx: u32, msg: &str) -> String {
        self.in_dialog(idx, msg, "ACK", 1)
    }

    /// A request `method` (CSeq `seq`) in the dialog the 2xx `msg` made.
    fn in_dialog(&mut self, idx: u32, msg: &str, method: &str, seq: u32) -> String {
        let branch = self.next_branch();
        let me = self.sip_addr;
        let call = self.calls[idx as usize].as_ref().expect("slot checked");
        let (uri, to, routes) = dialog(msg, &call.invite);
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n{routes}\
             From: \"sbload\" <sip:sbload@{me}>;tag={}\r\n\
             To: {to}\r\n\
             Call-ID: {}\r\n\
             CSeq: {seq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            call.from_tag, call.call_id
        )
    }

    /// A request from the server: a BYE ends the call early (a failure: the generator hangs
    /// up), anything else is answered 200.
    fn on_request(&mut self, msg: &str, from: SocketAddrV4) {
        if sip::method(msg) == "ACK" {
            return;
        }
        let ok = sip::response(
            msg,
            "200 OK",
            "sbload",
            &format!("sip:sbload@{}", self.sip_addr),
            "",
        );
        self.send(&ok, from);
        if sip::method(msg) == "BYE"
            && let Some(idx) = sip::call_id(msg).and_then(|c| self.slot(c))
        {
            self.stats.fail(0);
            self.end(idx);
        }
    }

    fn on_timer(&mut self, now: Instant, idx: u32, tseq: u32) {
        let Some(call) = self.calls[idx as usize].as_mut() else {
            return;
        };
        if call.tseq != tseq {
            return;
        }
        if !matches!(call.state, State::Talking) && now >= call.give_up {
            self.stats.timeouts += 1;
            self.stats.fail(408);
            return self.end(idx);
        }
        let (message, every) = match call.state {
            State::Inviting { provisional: true } => {
                let give_up = call.give_up;
                return self.schedule(idx, give_up);
            }
            // Timer A doubles without a cap, a BYE's Timer E up to T2.
            State::Inviting { .. } => (call.invite.clone(), call.every * 2),
            State::Byeing => (call.bye.clone(), (call.every * 2).min(T2)),
            State::Talking => {
                call.state = State::Byeing;
                call.every = T1;
                call.give_up = now + GIVE_UP;
                let bye = call.bye.clone();
                self.send(&bye, self.cfg.target);
                return self.schedule(idx, now + T1);
            }
        };
        call.every = every;
        let at = (now + every).min(call.give_up);
        self.stats.retrans += 1;
        self.send(&message, self.cfg.target);
        self.schedule(idx, at);
    }

    /// Frees a call's slot and its media.
    fn end(&mut self, idx: u32) {
        let Some(call) = self.calls[idx as usize].take() else {
            return;
        };
        self.stats.rtp_sent += call.sent;
        self.stats.rtp_received += call.received;
        if let Some(at) = call.media_at {
            self.media.swap_remove(at);
            if let Some(&moved) = self.media.get(at)
                && let Some(m) = self.calls[moved as usize].as_mut()
            {
                m.media_at = Some(at);
            }
        }
        if let Some(to) = call.rtp_to
            && self.by_port[to.port() as usize] == idx
        {
            self.by_port[to.port() as usize] = NO_CALL;
        }
        self.free.push(idx);
        self.active -= 1;
    }

    /// One packet for every call with media, sent a batch at a time.
    fn tick(&mut self, now: Instant) {
        for i in 0..self.media.len() {
            let idx = self.media[i];
            let Some(call) = self.calls[idx as usize].as_mut() else {
                continue;
            };
            let (Some(to), State::Talking) = (call.rtp_to, &call.state) else {
                continue;
            };
            if now >= call.media_until {
                continue;
            }
            let (seq, ts, ssrc) = (call.seq, call.ts, call.ssrc);
            call.seq = call.seq.wrapping_add(1);
            call.ts = call.ts.wrapping_add(160);
            call.sent += 1;
            self.outbox.push(to, |buf| rtp_packet(buf, seq, ts, ssrc));
            if self.outbox.is_full() {
                self.stats.send_errors += self.outbox.send(&self.rtp) as u64;
            }
        }
        if self.outbox.len() > 0 {
            self.stats.send_errors += self.outbox.send(&self.rtp) as u64;
        }
    }

    fn read_rtp(&mut self) {
        for _ in 0..64 {
            let n = self.inbox.recv(&self.rtp);
            if n == 0 {
                return;
            }
            for i in 0..n {
                let (_, from) = self.inbox.get(i);
                let idx = self.by_port[from.port() as usize];
                match (self.calls.get_mut(idx as usize)).and_then(Option::as_mut) {
                    Some(call) if call.rtp_to == Some(from) => call.received += 1,
                    _ => self.stats.rtp_stray += 1,
                }
            }
        }
    }
}

/// A PCMA packet of 20 ms (silence) with the given header fields; its length.
fn rtp_packet(buf: &mut [u8], seq: u16, ts: u32, ssrc: u32) -> usize {
    buf[0] = 0x80;
    buf[1] = 8;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    buf[12..172].fill(0xD5);
    172
}

/// The dialog a 2xx makes: the remote target (its Contact), the To with the callee's tag, and
/// the route set (its Record-Route, reversed, as Route lines).
fn dialog(response: &str, invite: &str) -> (String, String, String) {
    let uri = sip::header(response, "Contact", "m")
        .map(sip::contact_uri)
        .map(str::to_owned)
        .unwrap_or_else(|| invite.split(' ').nth(1).unwrap_or("").to_owned());
    let to = sip::header(response, "To", "t").unwrap_or("").to_owned();
    let mut rr: Vec<&str> = sip::lines(response, "Record-Route", "Record-Route")
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
        .collect();
    rr.reverse();
    let routes = rr.iter().map(|r| format!("Route: {r}\r\n")).collect();
    (uri, to, routes)
}

/// The ACK for a non-2xx final response: the INVITE's Request-URI, Via (branch) and From, the
/// response's To (RFC 3261 §17.1.1.3).
fn non_2xx_ack(invite: &str, response: &str) -> String {
    let uri = invite.split(' ').nth(1).unwrap_or("");
    let via = sip::header(invite, "Via", "v").unwrap_or("");
    let from = sip::header(invite, "From", "f").unwrap_or("");
    let call_id = sip::call_id(invite).unwrap_or("");
    let to = sip::header(response, "To", "t").unwrap_or("");
    format!(
        "ACK {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )
}
