//! The called side, a trunk that answers every call: INVITE → 180, 200 with a PCMA answer
//! (repeated from T1 doubling up to T2 until the ACK, as RFC 3261 §13.3.1.4 says), BYE → 200;
//! every RTP packet that reaches its one media socket is sent back where it came from (SIPp's
//! `-rtp_echo`), in batches.

use crate::mmsg::{self, Batch};
use crate::sip;
use crate::stats::UasStats;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const GIVE_UP: Duration = Duration::from_secs(32);
/// Calls held at once at most: past it new INVITEs are answered 486 (a generator must not
/// grow without bound under a server that never sends BYE).
const MAX_CALLS: usize = 200_000;

struct Answered {
    ok: String,
    to: SocketAddrV4,
    acked: bool,
    every: Duration,
    give_up: Instant,
}

pub struct Uas {
    sip: UdpSocket,
    rtp: UdpSocket,
    contact: String,
    rtp_addr: SocketAddrV4,
    calls: HashMap<String, Answered>,
    heap: BinaryHeap<Reverse<(Instant, String)>>,
    answers: u64,
    inbox: Batch,
    stats: UasStats,
}

impl Uas {
    /// Listens for SIP on `sip_addr` and takes RTP on a port of its address.
    pub fn bind(sip_addr: SocketAddrV4) -> Self {
        let sip = mmsg::socket(SocketAddr::V4(sip_addr));
        let rtp = mmsg::socket(SocketAddr::from((*sip_addr.ip(), 0)));
        let SocketAddr::V4(rtp_addr) = rtp.local_addr().unwrap() else {
            unreachable!("bound on IPv4")
        };
        Self {
            contact: format!("sip:uas@{sip_addr}"),
            sip,
            rtp,
            rtp_addr,
            calls: HashMap::new(),
            heap: BinaryHeap::new(),
            answers: 0,
            inbox: Batch::default(),
            stats: UasStats::default(),
        }
    }

    /// Answers calls and echoes their media until `stop`.
    pub fn run(mut self, stop: Arc<AtomicBool>) -> UasStats {
        let cpu0 = mmsg::thread_cpu();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            while let Some(Reverse((at, _))) = self.heap.peek() {
                if *at > now {
                    break;
                }
                let Reverse((_, call_id)) = self.heap.pop().expect("peeked");
                self.on_timer(now, call_id);
            }
            let until = (self.heap.peek().map(|Reverse((at, _))| *at))
                .unwrap_or(now + Duration::from_millis(50))
                .min(now + Duration::from_millis(50));
            let [sip_ready, rtp_ready] = mmsg::wait(&[&self.sip, &self.rtp], until);
            if sip_ready {
                self.read_sip();
            }
            if rtp_ready {
                self.echo();
            }
        }
        self.stats.unacked += self.calls.values().filter(|c| !c.acked).count() as u64;
        self.stats.cpu = mmsg::thread_cpu() - cpu0;
        self.stats
    }

    fn send(&mut self, msg: &str, to: SocketAddrV4) {
        if self.sip.send_to(msg.as_bytes(), to).is_err() {
            self.stats.send_errors += 1;
        }
    }

    fn read_sip(&mut self) {
        for _ in 0..16 {
            if self.inbox.recv(&self.sip) == 0 {
                return;
            }
            let inbox = std::mem::replace(&mut self.inbox, Batch::empty());
            for i in 0..inbox.len() {
                let (data, from) = inbox.get(i);
                if let Ok(msg) = std::str::from_utf8(data) {
                    self.on_message(msg, from);
                }
            }
            self.inbox = inbox;
        }
    }

    fn on_message(&mut self, msg: &str, from: SocketAddrV4) {
        if sip::status(msg).is_some() {
            return;
        }
        let Some(call_id) = sip::call_id(msg) else {
            return;
        };
        match sip::method(msg) {
            "INVITE" => {
                if let Some(call) = self.calls.get(call_id) {
                    // A retransmission: the 200 again.
                    let (ok, to) = (call.ok.clone(), call.to);
                    return self.send(&ok, to);
                }
                if self.calls.len() >= MAX_CALLS {
                    let busy = sip::response(msg, "486 Busy Here", "full", &self.contact, "");
                    return self.send(&busy, from);
                }
                self.stats.invites += 1;
                self.answers += 1;
                let tag = format!("uas-{}", self.answers);
                let ringing = sip::response(msg, "180 Ringing", &tag, &self.contact, "");
                self.send(&ringing, from);
                let body = sip::sdp(self.rtp_addr, self.answers);
                let ok = sip::response(msg, "200 OK", &tag, &self.contact, &body);
                self.send(&ok, from);
                let now = Instant::now();
                self.calls.insert(
                    call_id.to_owned(),
                    Answered {
                        ok,
                        to: from,
                        acked: false,
                        every: T1,
                        give_up: now + GIVE_UP,
                    },
                );
                self.heap.push(Reverse((now + T1, call_id.to_owned())));
            }
            "ACK" => {
                if let Some(call) = self.calls.get_mut(call_id) {
                    call.acked = true;
                }
            }
            "BYE" => {
                let ok = sip::response(msg, "200 OK", "uas", &self.contact, "");
                self.send(&ok, from);
                if let Some(call) = self.calls.remove(call_id) {
                    self.stats.byes += 1;
                    if !call.acked {
                        self.stats.unacked += 1;
                    }
                }
            }
            "CANCEL" | "OPTIONS" => {
                let ok = sip::response(msg, "200 OK", "uas", &self.contact, "");
                self.send(&ok, from);
            }
            _ => {}
        }
    }

    /// Timer G of a 200 not yet ACKed.
    fn on_timer(&mut self, now: Instant, call_id: String) {
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        if call.acked {
            return;
        }
        if now >= call.give_up {
            // Kept until its BYE (the server may still end it), but no longer repeated.
            return;
        }
        call.every = (call.every * 2).min(T2);
        let next = now + call.every;
        let (ok, to) = (call.ok.clone(), call.to);
        self.stats.retrans += 1;
        self.send(&ok, to);
        self.heap.push(Reverse((next, call_id)));
    }

    /// Sends every packet waiting back to where it came from.
    fn echo(&mut self) {
        for _ in 0..64 {
            let n = self.inbox.recv(&self.rtp);
            if n == 0 {
                return;
            }
            self.stats.rtp_echoed += n as u64;
            // The batch's addresses are the packets' sources: sent as is, it is the echo.
            self.stats.send_errors += self.inbox.send(&self.rtp) as u64;
        }
    }
}
