//! Batched UDP for the generator's sockets: `recvmmsg`/`sendmmsg` over IPv4, so that one
//! system call carries a whole RTP tick of a worker's calls (SIPp sends one datagram per call
//! and per packet, which is where it runs out of CPU before the server does).
//!
//! Written over libc because the standard library has no batched calls and the crates that
//! do (quinn-udp, nix) bring far more than these two calls.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Datagrams one call moves at most.
pub const BATCH: usize = 64;
/// The largest datagram read (a SIP message with SDP fits well within).
pub const MTU: usize = 4096;

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn addr_of(sa: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        u32::from_be(sa.sin_addr.s_addr).into(),
        u16::from_be(sa.sin_port),
    )
}

/// Buffers for up to [`BATCH`] datagrams, received or to send.
pub struct Batch {
    bufs: Vec<[u8; MTU]>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_in>,
    len: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            bufs: vec![[0; MTU]; BATCH],
            lens: vec![0; BATCH],
            addrs: vec![sockaddr(SocketAddrV4::new(0.into(), 0)); BATCH],
            len: 0,
        }
    }
}

impl Batch {
    /// A batch without buffers, to stand in for one lent out.
    pub fn empty() -> Self {
        Self {
            bufs: Vec::new(),
            lens: Vec::new(),
            addrs: Vec::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_full(&self) -> bool {
        self.len == BATCH
    }

    /// The `i`th datagram and where it came from (or goes).
    pub fn get(&self, i: usize) -> (&[u8], SocketAddrV4) {
        (&self.bufs[i][..self.lens[i]], addr_of(&self.addrs[i]))
    }

    /// Queues a datagram to `to`, written by `fill` into the buffer (returns its length).
    pub fn push(&mut self, to: SocketAddrV4, fill: impl FnOnce(&mut [u8]) -> usize) {
        let i = self.len;
        self.lens[i] = fill(&mut self.bufs[i]);
        self.addrs[i] = sockaddr(to);
        self.len += 1;
    }

    /// Points each header (through its iovec) at a datagram's buffer and address: every
    /// buffer, whole, to receive into; the queued datagrams, as long as they are, to send.
    fn point(
        &mut self,
        iov: &mut [libc::iovec; BATCH],
        hdrs: &mut [libc::mmsghdr; BATCH],
        receiving: bool,
    ) {
        let count = if receiving { BATCH } else { self.len };
        let slots = (iov.iter_mut().zip(hdrs.iter_mut()))
            .zip(self.bufs.iter_mut().zip(self.addrs.iter_mut()))
            .zip(&self.lens)
            .take(count);
        for (((v, h), (buf, addr)), &len) in slots {
            *v = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: if receiving { MTU } else { len },
            };
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_name = (addr as *mut libc::sockaddr_in).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        }
    }

    /// Reads what is waiting on `sock`, up to a batch; the count (0: nothing waiting).
    pub fn recv(&mut self, sock: &UdpSocket) -> usize {
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        self.point(&mut iov, &mut hdrs, true);
        // SAFETY: every header points at a buffer and an address of this batch, alive and
        // sized as declared for the duration of the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        self.len = n.max(0) as usize;
        for (len, h) in self.lens.iter_mut().zip(&hdrs).take(self.len) {
            *len = h.msg_len as usize;
        }
        self.len
    }

    /// Sends every queued datagram; returns how many the kernel refused (a full buffer), and
    /// empties the batch.
    pub fn send(&mut self, sock: &UdpSocket) -> usize {
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        self.point(&mut iov, &mut hdrs, false);
        let mut sent = 0;
        let mut refused = 0;
        while sent < self.len {
            // SAFETY: as in `recv`, for the datagrams not sent yet.
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    hdrs[sent..].as_mut_ptr(),
                    (self.len - sent) as u32,
                    0,
                )
            };
            if n <= 0 {
                // The one at `sent` failed (ENOBUFS, EAGAIN, a refused port): skip it.
                refused += 1;
                sent += 1;
            } else {
                sent += n as usize;
            }
        }
        self.len = 0;
        refused
    }
}

/// A UDP socket on `ip` (port 0: any), non-blocking, with buffers large enough for a burst.
pub fn socket(addr: SocketAddr) -> UdpSocket {
    let sock = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    sock.set_nonblocking(true).unwrap();
    let size: libc::c_int = 8 << 20;
    // The FORCE options pass net.core.{r,w}mem_max (212 KB by default: a few hundred packets,
    // which a 5 ms stall of the generator overflows) when run as root, as the benches are; the
    // plain ones are the fallback.
    for opt in [
        libc::SO_RCVBUF,
        libc::SO_SNDBUF,
        libc::SO_RCVBUFFORCE,
        libc::SO_SNDBUFFORCE,
    ] {
        // SAFETY: a valid socket and an int option.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
    }
    sock
}

/// Waits until one of `socks` is readable or `until`; which are readable.
pub fn wait(socks: &[&UdpSocket], until: Instant) -> [bool; 2] {
    let mut fds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 2];
    for (f, s) in fds.iter_mut().zip(socks) {
        f.fd = s.as_raw_fd();
        f.events = libc::POLLIN;
    }
    let left = until.saturating_duration_since(Instant::now());
    let left = left.min(Duration::from_secs(1));
    let ts = libc::timespec {
        tv_sec: left.as_secs() as libc::time_t,
        tv_nsec: left.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fds` holds `socks.len()` valid entries; the timeout is a valid timespec.
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            socks.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    [
        fds[0].revents & libc::POLLIN != 0,
        fds[1].revents & libc::POLLIN != 0,
    ]
}

/// CPU seconds the calling thread has used.
pub fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock and timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
