//! SIP over UDP: sockets with buffers sized for bursts, and the receive loop that parses
//! each datagram (answering the unparseable statelessly). Each datagram carries the time the
//! kernel took it in, so that the time it waited in the socket's buffer counts in its sojourn
//! (overload control's signal): when the core falls behind, the buffer is where the queue
//! grows, and a stamp taken only when the datagram is read would never see it.

use super::*;
use std::time::{Instant, SystemTime};

/// Socket buffer asked for on SIP UDP sockets. The default (about 200 KB, 100–150 loopback
/// datagrams) lasts only tens of milliseconds at a thousand calls per second, and one thread
/// reads the socket; a datagram dropped there becomes a retransmission storm.
pub(super) const UDP_BUFFER_BYTES: libc::c_int = 8 << 20;

/// A UDP socket with large buffers: SIP bursts at high call rates overflow the default.
pub(super) fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let std_sock = std::net::UdpSocket::bind(addr)?;
    std_sock.set_nonblocking(true)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&std_sock);
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        // The FORCE variants pass net.core.[rw]mem_max when privileged; otherwise the plain
        // option gets as much as the limit allows.
        if set_int_option(fd, force, UDP_BUFFER_BYTES).is_err() {
            let _ = set_int_option(fd, plain, UDP_BUFFER_BYTES);
        }
    }
    tracing::debug!(%addr, rcvbuf = get_int_option(fd, libc::SO_RCVBUF).unwrap_or(0), "SIP UDP socket buffers");
    // The kernel enables stamping for the host shortly after (deferred work); the first
    // datagrams may be stamped when read, which only hides their wait, as before.
    if let Err(e) = set_int_option(fd, libc::SO_TIMESTAMPNS, 1) {
        // Then the time a datagram waited in the buffer goes unseen, as before.
        tracing::warn!(%addr, error = %e, "no kernel receive timestamps on the SIP UDP socket");
    }
    UdpSocket::from_std(std_sock)
}

/// The longest a datagram is believed to have waited in the buffer: a stamp further back is
/// the wall clock stepped, not a queue.
const MAX_BUFFERED: Duration = Duration::from_secs(60);

/// Reads one datagram with `recvmsg`, and the kernel's receive stamp (`SCM_TIMESTAMPNS`, wall
/// clock) turned into the `Instant` it stands for; without a stamp, now. Written on libc: std
/// and tokio expose no ancillary data, and this is the only control message read.
fn recv_stamped(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Instant)> {
    // SAFETY: zeroed sockaddr_storage and msghdr are valid; every pointer given to recvmsg
    // points at a live buffer of the length given with it, and the control buffer is aligned
    // for cmsghdr (u64).
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg describes the buffers above, which outlive the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let now = Instant::now();
    let mut stamp = None;
    // SAFETY: the CMSG_* walk stays inside msg_controllen bytes of the control buffer, which
    // the kernel filled; the timespec is read unaligned from its data.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = Some(
                    SystemTime::UNIX_EPOCH
                        + Duration::new(
                            u64::try_from(ts.tv_sec).unwrap_or(0),
                            u32::try_from(ts.tv_nsec).unwrap_or(0),
                        ),
                );
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let waited = stamp
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .filter(|w| *w <= MAX_BUFFERED)
        .unwrap_or_default();
    let received = now.checked_sub(waited).unwrap_or(now);
    let remote = sockaddr(&addr)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram from no address"))?;
    Ok((n as usize, remote, received))
}

fn sockaddr(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in, which sockaddr_storage can hold.
            let a: &libc::sockaddr_in = unsafe { &*(addr as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(addr as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

pub(super) fn set_int_option(
    fd: std::os::fd::RawFd,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(super) fn get_int_option(fd: std::os::fd::RawFd, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `value`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(super) async fn udp_receive(
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    inbound: Deliver,
    stats: Arc<TransportStats>,
) {
    let mut buf = vec![0u8; 65_536];
    let fd = std::os::fd::AsRawFd::as_raw_fd(&*socket);
    loop {
        let read = socket
            .async_io(tokio::io::Interest::READABLE, || recv_stamped(fd, &mut buf))
            .await;
        let (n, remote, received) = match read {
            Ok(r) => r,
            // ICMP port unreachable and the like surface here on Linux; keep serving.
            Err(_) => continue,
        };
        stats.received.fetch_add(1, Ordering::Relaxed);
        let peer = Peer {
            transport: Transport::Udp,
            remote,
            local,
            conn: None,
        };
        match SipMessage::parse(&buf[..n]) {
            Ok(message) => {
                if (inbound.queue(&message))
                    .try_send(Inbound {
                        message,
                        peer,
                        received,
                    })
                    .is_err()
                {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = error_reply(&e) {
                    let _ = socket.try_send_to(&reply, remote);
                }
                tracing::debug!(%remote, error = %e.reason, "unparseable SIP datagram");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_datagram_is_stamped_when_the_kernel_took_it_not_when_it_was_read() {
        let server = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&server);
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // The kernel turns receive stamping on for the host a moment after the first socket
        // asks (deferred work): until then a datagram is stamped when it is read. Each try
        // leaves one datagram 300 ms in the buffer; the stamping must show within a few.
        let mut waits = Vec::new();
        for _ in 0..5 {
            client
                .send_to(
                    b"OPTIONS sip:x SIP/2.0\r\n\r\n",
                    server.local_addr().unwrap(),
                )
                .unwrap();
            // The datagram waits in the socket's buffer, as behind a core that falls behind.
            std::thread::sleep(Duration::from_millis(300));
            let mut buf = [0u8; 1500];
            let (n, remote, received) = server
                .async_io(tokio::io::Interest::READABLE, || recv_stamped(fd, &mut buf))
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"OPTIONS sip:x SIP/2.0\r\n\r\n");
            assert_eq!(remote, client.local_addr().unwrap());
            let waited = received.elapsed();
            assert!(waited < Duration::from_secs(5), "{waited:?}");
            waits.push(waited);
            if waited >= Duration::from_millis(290) {
                return;
            }
        }
        panic!("no datagram was stamped when it arrived: {waits:?}");
    }

    #[test]
    fn a_senders_address_is_read_in_either_family() {
        let v6: SocketAddr = "[2001:db8::7]:5062".parse().unwrap();
        let v4: SocketAddr = "192.0.2.7:5060".parse().unwrap();
        for want in [v6, v4] {
            // SAFETY: a zeroed sockaddr_storage is valid, and each arm writes the struct of
            // its family inside it.
            let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            match want {
                SocketAddr::V6(a) => {
                    let s = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
                    s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    s.sin6_port = a.port().to_be();
                    s.sin6_addr.s6_addr = a.ip().octets();
                }
                SocketAddr::V4(a) => {
                    let s = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
                    s.sin_family = libc::AF_INET as libc::sa_family_t;
                    s.sin_port = a.port().to_be();
                    s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                }
            }
            assert_eq!(sockaddr(&storage), Some(want));
        }
        // SAFETY: as above.
        let unix: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        assert_eq!(sockaddr(&unix), None);
    }
}
