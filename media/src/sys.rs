//! The few Linux calls the relay needs and std does not offer: level-triggered epoll, eventfd,
//! a periodic timerfd for the 20 ms media clock,
//! connecting a UDP socket to a peer, and receiving into and sending from one reused buffer.
//!
//! All `unsafe` of the media engine is here. mio is not used because it is edge-triggered only,
//! which forces a read until `EAGAIN` after every wake-up: the extra system call per packet that
//! [`PacketBuf`] is designed to avoid.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Room for a packet: RTP over Ethernet never exceeds the MTU.
pub(crate) const BUF_LEN: usize = 2048;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the returned descriptor is owned from here on.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for input, level-triggered, reporting `token`.
    pub(crate) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` outlives the call; the kernel copies it.
        check(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
            .map(drop)
    }

    pub(crate) fn remove(&self, fd: RawFd) {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }

    /// Waits up to `timeout_ms`; returns how many entries of `events` were filled.
    pub(crate) fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
        // SAFETY: the kernel writes at most `events.len()` entries into the slice.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        n.max(0) as usize
    }
}

/// A counter descriptor used to wake a worker out of `epoll_wait`.
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: fresh descriptor.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub(crate) fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A monotonic timer descriptor: the 20 ms clock of generated and mixed audio. It is armed only
/// while some endpoint of the worker has media processing, so idle relays never wake for it.
pub(crate) struct TimerFd(OwnedFd);

impl TimerFd {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall.
        let fd = check(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        // SAFETY: fresh descriptor.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Fires every `period` from now on; a zero period disarms the timer.
    pub(crate) fn set_period(&self, period: std::time::Duration) {
        let ts = libc::timespec {
            tv_sec: period.as_secs() as libc::time_t,
            tv_nsec: period.subsec_nanos() as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: ts,
            it_value: ts,
        };
        // SAFETY: `spec` is live for the call; the old value is not requested.
        unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }

    /// The number of periods that elapsed since the last read.
    pub(crate) fn expirations(&self) -> u64 {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        let n = unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        if n == 8 { v } else { 0 }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A socket address in the form `sendto` and `connect` take.
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin)
                };
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6)
                };
                size_of::<libc::sockaddr_in6>()
            }
        };
        Self {
            storage,
            len: len as libc::socklen_t,
        }
    }
}

/// Connects a UDP socket to `peer` (the kernel then keeps the route and drops datagrams from
/// anyone else), or dissolves the association with `None`.
pub(crate) fn connect(fd: RawFd, peer: Option<&RawAddr>) -> io::Result<()> {
    let unspec = libc::sockaddr {
        sa_family: libc::AF_UNSPEC as libc::sa_family_t,
        sa_data: [0; 14],
    };
    let (ptr, len) = match peer {
        Some(p) => (
            (&p.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr>(),
            p.len,
        ),
        None => (
            &unspec as *const libc::sockaddr,
            size_of::<libc::sockaddr>() as libc::socklen_t,
        ),
    };
    // SAFETY: `ptr` points at a live address of `len` bytes.
    check(unsafe { libc::connect(fd, ptr, len) }).map(drop)
}

fn to_socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The worker's packet buffer. A datagram is received into it, rewritten there and sent from
/// there: no payload is ever copied.
///
/// One datagram per readiness event: with a socket per call leg at 50 packets a second, a
/// ready socket almost always holds exactly one, so `recvmmsg` would only add a failed attempt
/// at a second and `sendmmsg` the copying of message headers. Level-triggered epoll reports the
/// socket again if more is queued. Measured under SIPp load: 5.6 µs of CPU per relayed packet
/// this way, 6.4–6.9 µs with `recvmmsg`/`sendmmsg`.
pub(crate) struct PacketBuf {
    buf: Box<[u8; BUF_LEN]>,
    len: usize,
    source: libc::sockaddr_storage,
}

impl PacketBuf {
    pub(crate) fn new() -> Self {
        // SAFETY: all-zero is a valid sockaddr_storage.
        Self {
            buf: Box::new([0; BUF_LEN]),
            len: 0,
            source: unsafe { zeroed() },
        }
    }

    /// Receives one datagram from `fd` without blocking; returns its source.
    pub(crate) fn recv(&mut self, fd: RawFd) -> Option<SocketAddr> {
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: the buffer and the address storage are live and as large as passed.
        let n = unsafe {
            libc::recvfrom(
                fd,
                self.buf.as_mut_ptr().cast(),
                BUF_LEN,
                libc::MSG_DONTWAIT,
                (&mut self.source as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        if n < 0 {
            return None;
        }
        self.len = n as usize;
        to_socket_addr(&self.source)
    }

    pub(crate) fn packet_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Lets `change` rewrite the packet in the buffer, resizing it: it gets the whole buffer
    /// and the packet's length and returns the new length, or `None` to give the packet up.
    pub(crate) fn rewrite(
        &mut self,
        change: impl FnOnce(&mut [u8], usize) -> Option<usize>,
    ) -> bool {
        match change(&mut self.buf[..], self.len) {
            Some(n) => {
                self.len = n.min(BUF_LEN);
                true
            }
            None => false,
        }
    }

    /// Lets `write` build a packet of our own in the buffer; it returns the length, or `None`
    /// when there is nothing to send.
    pub(crate) fn generate(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        match write(&mut self.buf[..]) {
            Some(n) => {
                self.len = n.min(BUF_LEN);
                true
            }
            None => false,
        }
    }

    /// Sends the datagram from `fd` to `dest` (`None` on a connected socket).
    pub(crate) fn send(&self, fd: RawFd, dest: Option<&RawAddr>) -> bool {
        let (name, namelen) = match dest {
            Some(d) => (
                (&d.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr>(),
                d.len,
            ),
            None => (std::ptr::null(), 0),
        };
        let send = || {
            // SAFETY: the buffer and the address are live for the call.
            unsafe {
                libc::sendto(
                    fd,
                    self.buf.as_ptr().cast(),
                    self.len,
                    libc::MSG_DONTWAIT,
                    name,
                    namelen,
                )
            }
        };
        if send() >= 0 {
            return true;
        }
        // A connected socket reports an earlier ICMP port unreachable on the next send, which
        // then sends nothing; the report is consumed, so this packet can go now.
        io::Error::last_os_error().raw_os_error() == Some(libc::ECONNREFUSED) && send() >= 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// After an ICMP port unreachable, a connected socket fails the next send with
    /// ECONNREFUSED without sending; the packet must still go out.
    #[test]
    fn send_survives_a_reported_port_unreachable() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = closed.local_addr().unwrap();
        drop(closed);
        connect(sender.as_raw_fd(), Some(&RawAddr::new(peer))).unwrap();
        let mut packet = PacketBuf::new();
        packet.len = 12;
        assert!(
            packet.send(sender.as_raw_fd(), None),
            "the first send goes; its ICMP error comes back"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
        let reopened = UdpSocket::bind(peer).unwrap();
        reopened
            .set_read_timeout(Some(std::time::Duration::from_secs(1)))
            .unwrap();
        assert!(packet.send(sender.as_raw_fd(), None));
        let mut buf = [0u8; 64];
        assert_eq!(
            reopened.recv(&mut buf).unwrap(),
            12,
            "the packet after the error arrived"
        );
    }
}
