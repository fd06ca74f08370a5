//! The few Linux calls the relay needs and std does not offer: level-triggered epoll, eventfd,
//! and batched `recvmmsg`/`sendmmsg` into and out of one pooled set of buffers.
//!
//! All `unsafe` of the media engine is here. mio is not used because it is edge-triggered only
//! (an extra `EAGAIN` read per wake-up) and has no batched datagram calls.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Packets taken from one socket per call.
pub(crate) const BATCH: usize = 32;
/// Room per packet: RTP over Ethernet never exceeds the MTU.
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

/// A destination address in the form `sendmmsg` takes.
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

/// The worker's pooled packet buffers and the message headers pointing into them. Packets are
/// received into `bufs`, rewritten there and sent from there: no payload is ever copied.
pub(crate) struct PacketBatch {
    bufs: Box<[[u8; BUF_LEN]; BATCH]>,
    lens: [usize; BATCH],
    sources: Box<[libc::sockaddr_storage; BATCH]>,
    hdrs: Box<[libc::mmsghdr; BATCH]>,
    iovs: Box<[libc::iovec; BATCH]>,
    /// Indexes of the packets to send, in order.
    outgoing: [u8; BATCH],
    outgoing_len: usize,
}

// SAFETY: the raw pointers in `hdrs` and `iovs` only ever point into this batch's own boxed
// buffers, and are rewritten before every call that uses them; moving the batch to the worker
// thread before first use is sound.
unsafe impl Send for PacketBatch {}

impl PacketBatch {
    pub(crate) fn new() -> Self {
        // SAFETY: all-zero is valid for these plain C structures; pointers are set before use.
        unsafe {
            Self {
                bufs: Box::new([[0; BUF_LEN]; BATCH]),
                lens: [0; BATCH],
                sources: Box::new(zeroed()),
                hdrs: Box::new(zeroed()),
                iovs: Box::new(zeroed()),
                outgoing: [0; BATCH],
                outgoing_len: 0,
            }
        }
    }

    /// Receives up to [`BATCH`] datagrams from `fd` without blocking; returns how many.
    pub(crate) fn recv(&mut self, fd: RawFd) -> usize {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: BUF_LEN,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.sources[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        self.outgoing_len = 0;
        // SAFETY: every header points at live buffers owned by `self` for the call's duration.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let n = n.max(0) as usize;
        for i in 0..n {
            self.lens[i] = self.hdrs[i].msg_len as usize;
        }
        n
    }

    pub(crate) fn packet_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i][..self.lens[i]]
    }

    pub(crate) fn source(&self, i: usize) -> Option<SocketAddr> {
        to_socket_addr(&self.sources[i])
    }

    /// Marks packet `i` to be sent by [`PacketBatch::send`].
    pub(crate) fn queue(&mut self, i: usize) {
        self.outgoing[self.outgoing_len] = i as u8;
        self.outgoing_len += 1;
    }

    pub(crate) fn queued(&self) -> usize {
        self.outgoing_len
    }

    /// Sends every queued packet from `fd` to `dest` in one call; returns how many packets and
    /// bytes left (packets go in order, so the sent ones are the first).
    pub(crate) fn send(&mut self, fd: RawFd, dest: &RawAddr) -> (usize, u64) {
        let n = self.outgoing_len;
        for k in 0..n {
            let i = self.outgoing[k] as usize;
            self.iovs[k] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
            let h = &mut self.hdrs[k].msg_hdr;
            h.msg_name = (&dest.storage as *const libc::sockaddr_storage)
                .cast_mut()
                .cast();
            h.msg_namelen = dest.len;
            h.msg_iov = &mut self.iovs[k];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: headers `sent..n` point at live buffers and at `dest`, which outlive the call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs.as_mut_ptr().add(sent),
                    (n - sent) as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if r <= 0 {
                break;
            }
            sent += r as usize;
        }
        let bytes = self.outgoing[..sent]
            .iter()
            .map(|&i| self.lens[i as usize] as u64)
            .sum();
        self.outgoing_len = 0;
        (sent, bytes)
    }
}
