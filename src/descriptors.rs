//! File descriptors: the process raises its own soft limit to the hard one at start (services
//! start with 1,024, which a few hundred idle HTTP connections used up, silencing `/healthz` and
//! failing new calls). The RTP port range is cut to what the limit can hold beside SIP's TCP
//! connections, a floor of HTTP connections and a reserve for everything else — RTP sockets that
//! took the last descriptors left the database unable to open its files (every CDR write
//! failing while calls were still being taken) — and the HTTP server's connection cap is fitted
//! under what is left.

use std::ops::RangeInclusive;
use switchboard_control::infra::http::HttpLimits;

/// Descriptors kept for what is neither HTTP, SIP/TCP nor RTP: the database, webhooks and
/// fetches going out, recordings being written, speech models, logs.
const RESERVE: u64 = 256;

/// HTTP connections kept whatever the RTP range asks for: `/healthz`, the API and the webhooks'
/// answers must still be served when every call's sockets are open.
const HTTP_FLOOR: u64 = 256;

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

/// The RTP sockets a port range opens at most: one per port of each even/odd pair.
pub fn rtp_sockets(ports: &RangeInclusive<u16>) -> usize {
    2 * ports.clone().step_by(2).count()
}

/// `ports` cut, if need be, so that its sockets fit in `nofile` beside SIP's TCP connections
/// (`sip_tcp`), the floor of HTTP connections and the reserve. Past it the media engine says
/// "no media ports" and the call gets a 503, as when the range itself is used up.
pub fn fit_rtp(ports: RangeInclusive<u16>, nofile: u64, sip_tcp: usize) -> RangeInclusive<u16> {
    let room = nofile.saturating_sub(RESERVE + HTTP_FLOOR + sip_tcp as u64);
    if rtp_sockets(&ports) as u64 <= room {
        return ports;
    }
    // Whole pairs only, and at least one.
    let pairs = (room / 2).max(1);
    let last = u64::from(*ports.start()) + pairs * 2 - 1;
    *ports.start()..=u16::try_from(last).unwrap_or(u16::MAX).min(*ports.end())
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
    fn the_rtp_range_is_cut_to_what_the_limit_holds_beside_the_database_and_http() {
        // Room for all of it: unchanged.
        assert_eq!(fit_rtp(20000..=29999, 1 << 20, 4096), 20000..=29999);
        // 20,000 descriptors (this machine's hard limit) and 40,000 ports asked for: the
        // 15,392 sockets that fit, in whole pairs from the start of the range.
        let cut = fit_rtp(20000..=59999, 20_000, 4096);
        assert_eq!(cut, 20000..=35391);
        assert_eq!(
            rtp_sockets(&cut) as u64 + RESERVE + HTTP_FLOOR + 4096,
            20_000
        );
        // An odd start keeps its pairing; a limit too small for anything still leaves a pair.
        assert_eq!(fit_rtp(30001..=40000, 6 + 512 + 512, 512), 30001..=30006);
        assert_eq!(fit_rtp(30000..=40000, 100, 4096), 30000..=30001);
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
