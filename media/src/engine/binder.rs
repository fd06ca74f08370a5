//! RTP/RTCP pairs bound ahead of need, by a thread of their own.
//!
//! Creating and binding two sockets is two `socket` and two `bind` system calls, about a
//! fourteenth of the signalling thread's time at 3,000 calls/s when that thread did it for
//! each call. The binder keeps a number of pairs bound ([`MediaConfig::bind_ahead`]), so
//! [`Binder::take`] is a pop under a lock. When none is ready (a burst, or a range nearly used
//! up), `take` binds one itself: the same result, only slower. The pairs come out of the
//! configured range like any other, so they hold no descriptor the range does not already
//! count on.
//!
//! [`MediaConfig::bind_ahead`]: super::MediaConfig::bind_ahead

use super::MediaError;
use crate::ports::PortPool;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, UdpSocket};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Pairs bound ahead by default: 80 ms of calls at 3,200 calls/s, two pairs each.
pub const BIND_AHEAD: usize = 512;

/// A bound pair: the even RTP port, its socket and the RTCP socket on the next port.
pub(super) type Pair = (u16, UdpSocket, UdpSocket);

pub(super) struct Binder {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    ip: IpAddr,
    /// Locked after `ready` when both are held, so a pair is always counted in one of them
    /// ([`Binder::available`]).
    ports: Arc<Mutex<PortPool>>,
    ready: Mutex<Ready>,
    /// Wakes the binder: fewer pairs are ready than it keeps.
    wake: Condvar,
    /// Wakes a `take` waiting for a pair being bound.
    bound: Condvar,
    ahead: usize,
}

#[derive(Default)]
struct Ready {
    pairs: VecDeque<Pair>,
    /// Ports taken from the range and being bound.
    binding: usize,
    stop: bool,
    /// The last attempt found no port or no descriptor: the binder waits for the next
    /// `take` instead of trying again at once.
    starved: bool,
}

impl Binder {
    /// Keeps `ahead` pairs bound (none, and no thread, when zero).
    pub(super) fn start(ip: IpAddr, ports: Arc<Mutex<PortPool>>, ahead: usize) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            ip,
            ports,
            ready: Mutex::default(),
            wake: Condvar::new(),
            bound: Condvar::new(),
            ahead,
        });
        let thread = match ahead {
            0 => None,
            _ => {
                let run = shared.clone();
                let thread = std::thread::Builder::new()
                    .name("rtp-binder".into())
                    .spawn(move || run.run())?;
                Some(thread)
            }
        };
        Ok(Self {
            shared,
            thread: Mutex::new(thread),
        })
    }

    /// A bound pair: one bound ahead when there is one, else one bound now. A port the
    /// binder is binding at that moment is waited for (one `bind`), so a range down to its
    /// last pairs does not refuse a call for a pair that is about to be ready.
    pub(super) fn take(&self) -> Result<Pair, MediaError> {
        let shared = &self.shared;
        // Ports held by other programs are skipped and put back at the end of the queue.
        for _ in 0..64 {
            let port = {
                let mut ready = shared.ready.lock().expect("not poisoned");
                loop {
                    if let Some(pair) = ready.pairs.pop_front() {
                        shared.refill(&mut ready);
                        return Ok(pair);
                    }
                    if ready.binding == 0 || ready.stop {
                        break;
                    }
                    ready = shared.bound.wait(ready).expect("not poisoned");
                }
                // Taken under the lock the binder takes ports under, so it cannot take this
                // one first; woken only after.
                let port = shared.ports.lock().expect("not poisoned").take();
                shared.refill(&mut ready);
                port.ok_or(MediaError::PortsExhausted)?
            };
            match bind_at(shared.ip, port) {
                Ok(pair) => return Ok(pair),
                Err(e) => {
                    if let Some(error) = give_back(&shared.ports, port, e) {
                        return Err(error);
                    }
                }
            }
        }
        Err(MediaError::PortsExhausted)
    }

    /// Pairs bound and waiting.
    #[cfg(test)]
    fn ready(&self) -> usize {
        self.shared.ready.lock().expect("not poisoned").pairs.len()
    }

    /// Pairs free in the range, bound ahead or not.
    pub(super) fn available(&self) -> usize {
        let ready = self.shared.ready.lock().expect("not poisoned");
        let free = self.shared.ports.lock().expect("not poisoned").available();
        free + ready.pairs.len() + ready.binding
    }

    /// Ends the thread; the pairs it held are closed and their ports go back to the range.
    pub(super) fn stop(&self) {
        let pairs = {
            let mut ready = self.shared.ready.lock().expect("not poisoned");
            ready.stop = true;
            std::mem::take(&mut ready.pairs)
        };
        self.shared.wake.notify_one();
        let mut ports = self.shared.ports.lock().expect("not poisoned");
        for (port, rtp, rtcp) in pairs {
            drop((rtp, rtcp));
            ports.put(port);
        }
        drop(ports);
        if let Some(t) = self.thread.lock().expect("not poisoned").take() {
            let _ = t.join();
        }
    }
}

impl Drop for Binder {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Below this many ready, the binder binds back up to `ahead`.
    fn low(&self) -> usize {
        self.ahead * 3 / 4
    }

    /// Wakes the binder when it should bind more (a pair was taken, or a port was found).
    fn refill(&self, ready: &mut Ready) {
        if ready.pairs.len() < self.low() && !ready.stop {
            ready.starved = false;
            self.wake.notify_one();
        }
    }

    fn run(&self) {
        loop {
            {
                let mut ready = self.ready.lock().expect("not poisoned");
                while !ready.stop && (ready.starved || ready.pairs.len() >= self.low()) {
                    ready = self.wake.wait(ready).expect("not poisoned");
                }
                if ready.stop {
                    return;
                }
            }
            loop {
                match self.bind_one() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => {
                        self.ready.lock().expect("not poisoned").starved = true;
                        break;
                    }
                }
            }
        }
    }

    /// Binds one more pair; `Ok(false)` once there are enough, or the binder is stopping.
    fn bind_one(&self) -> Result<bool, MediaError> {
        // Ports held by other programs are skipped and put back at the end of the queue.
        for _ in 0..64 {
            let port = {
                let mut ready = self.ready.lock().expect("not poisoned");
                if ready.stop || ready.pairs.len() >= self.ahead {
                    return Ok(false);
                }
                let port = self.ports.lock().expect("not poisoned").take();
                let port = port.ok_or(MediaError::PortsExhausted)?;
                ready.binding += 1;
                port
            };
            let bound = bind_at(self.ip, port);
            let mut ready = self.ready.lock().expect("not poisoned");
            ready.binding -= 1;
            self.bound.notify_all();
            match bound {
                Ok(pair) if !ready.stop => {
                    ready.pairs.push_back(pair);
                    return Ok(true);
                }
                // Stopped meanwhile: the pair is closed, as the stopped binder's were.
                Ok(pair) => {
                    drop(pair);
                    self.ports.lock().expect("not poisoned").put(port);
                    return Ok(false);
                }
                Err(e) => {
                    if let Some(error) = give_back(&self.ports, port, e) {
                        return Err(error);
                    }
                }
            }
        }
        Err(MediaError::PortsExhausted)
    }
}

/// Puts back a port that could not be bound (another program holds it, most likely: the
/// caller tries the next). Out of descriptors is the error to give instead, as it is not the
/// port's fault and another port would fail the same way.
fn give_back(ports: &Mutex<PortPool>, port: u16, error: io::Error) -> Option<MediaError> {
    ports.lock().expect("not poisoned").put(port);
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
        .then(|| MediaError::OutOfDescriptors(error))
}

/// The pair at `port` (RTP) and `port + 1` (RTCP), non-blocking.
fn bind_at(ip: IpAddr, port: u16) -> io::Result<Pair> {
    let rtp = UdpSocket::bind((ip, port))?;
    let rtcp = UdpSocket::bind((ip, port + 1))?;
    rtp.set_nonblocking(true)?;
    rtcp.set_nonblocking(true)?;
    Ok((port, rtp, rtcp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    fn until(what: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !what() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn pairs_are_bound_ahead_and_the_range_is_never_exceeded() {
        let range = 31800..=31815;
        let ports = Arc::new(Mutex::new(PortPool::new(range.clone())));
        let binder = Binder::start(Ipv4Addr::LOCALHOST.into(), ports.clone(), BIND_AHEAD).unwrap();
        // Eight pairs fit in the range, fewer than AHEAD: the binder binds them all.
        until(|| binder.ready() == 8);
        assert_eq!(ports.lock().unwrap().available(), 0);
        let mut taken = Vec::new();
        for _ in 0..8 {
            let (port, rtp, rtcp) = binder.take().unwrap();
            assert!(range.contains(&port) && port % 2 == 0);
            assert_eq!(rtp.local_addr().unwrap().port(), port);
            assert_eq!(rtcp.local_addr().unwrap().port(), port + 1);
            taken.push((port, rtp, rtcp));
        }
        let mut seen: Vec<u16> = taken.iter().map(|p| p.0).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 8, "no pair is handed out twice");
        assert!(matches!(binder.take(), Err(MediaError::PortsExhausted)));
        // A pair given back is bound again, by `take` or by the binder (woken by the failed
        // `take`), whichever reaches the port first; `take` has it either way.
        for _ in 0..100 {
            let (port, rtp, rtcp) = taken.pop().unwrap();
            drop((rtp, rtcp));
            ports.lock().unwrap().put(port);
            let again = binder.take().expect("the pair given back");
            assert_eq!(again.0, port);
            taken.push(again);
            assert!(matches!(binder.take(), Err(MediaError::PortsExhausted)));
        }
    }

    #[test]
    fn stopping_closes_the_pairs_held_and_frees_their_ports() {
        let range = 31820..=31827;
        let ports = Arc::new(Mutex::new(PortPool::new(range.clone())));
        let binder = Binder::start(Ipv4Addr::LOCALHOST.into(), ports.clone(), BIND_AHEAD).unwrap();
        until(|| binder.ready() == 4);
        binder.stop();
        assert_eq!(ports.lock().unwrap().available(), 4);
        for port in range.step_by(2) {
            UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).expect("closed by stop");
        }
    }
}
