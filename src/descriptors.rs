//! File descriptors: the process raises its own soft limit to the hard one at start (services
//! start with 1,024, which a few hundred idle HTTP connections used up, silencing `/healthz` and
//! failing new calls), and the HTTP server's connection cap is fitted under what is left once
//! SIP's TCP connections, the RTP sockets and a reserve for everything else are counted.

use switchboard_control::infra::http::HttpLimits;

/// Descriptors kept for what is neither HTTP, SIP/TCP nor RTP: the database, webhooks and
/// fetches going out, recordings being written, speech models, logs.
const RESERVE: u64 = 256;

/// Raises the soft limit on open descriptors to the hard limit; returns the soft limit now in
/// force.
pub fn raise_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// `limits` with its connection cap lowered, if need be, so that HTTP, SIP's TCP connections
/// (`sip_tcp`) and every RTP socket (`rtp_sockets`) fit in `nofile` beside the reserve.
pub fn fit_http(limits: HttpLimits, nofile: u64, sip_tcp: usize, rtp_sockets: usize) -> HttpLimits {
    let taken = RESERVE + sip_tcp as u64 + rtp_sockets as u64;
    let room = usize::try_from(nofile.saturating_sub(taken))
        .unwrap_or(usize::MAX)
        .max(16);
    HttpLimits {
        max_connections: limits.max_connections.min(room),
        max_per_address: limits.max_per_address.min(room),
        ..limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_gets_what_sip_rtp_and_the_reserve_leave() {
        let asked = HttpLimits::default();
        // Plenty: what was asked for.
        assert_eq!(fit_http(asked, 1 << 20, 4096, 2000), asked);
        // The service default of 1,024 with SIP's 4,096 TCP connections: a minimum that still
        // serves /healthz and the API.
        let tight = fit_http(asked, 1024, 4096, 2000);
        assert_eq!(tight.max_connections, 16);
        let some = fit_http(asked, 7000, 4096, 2000);
        assert_eq!(some.max_connections, 7000 - 256 - 4096 - 2000);
        assert_eq!(some.max_per_address, 64);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let now = raise_limit();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!((now, limit.rlim_cur), (limit.rlim_max, limit.rlim_max));
    }
}
