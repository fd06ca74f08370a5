//! SIP over UDP: sockets with buffers sized for bursts, and the receive loop that parses
//! each datagram (answering the unparseable statelessly).

use super::*;

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
    UdpSocket::from_std(std_sock)
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
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, remote) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP port unreachable and the like surface here on Linux; keep serving.
            Err(_) => continue,
        };
        let received = std::time::Instant::now();
        stats.received.fetch_add(1, Ordering::Relaxed);
        let peer = Peer {
            transport: Transport::Udp,
            remote,
            local,
            conn: None,
        };
        match SipMessage::parse(&buf[..n]) {
            Ok(message) => {
                if inbound
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
