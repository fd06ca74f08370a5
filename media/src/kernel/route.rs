//! Which interface a packet to a peer elsewhere leaves by: the longest matching prefix of the
//! main IPv4 routing table, read from `/proc/thread-self/net/route` (the table of the calling
//! thread's network namespace). Written by hand: a netlink client (rtnetlink and its
//! packet crates, async) for one lookup made when a stream is handed over would cost more than
//! it saves; policy routing (rules and other tables) is not followed.

use std::net::Ipv4Addr;

/// `RTF_UP`: the route is usable.
const RTF_UP: u32 = 0x1;

/// The interface name of the route to `to` in `table` (the text of `/proc/net/route`).
pub(super) fn egress_in(table: &str, to: Ipv4Addr) -> Option<String> {
    // The table holds addresses as the machine's u32 of the network-order bytes.
    let addr = u32::from_ne_bytes(to.octets());
    let mut best: Option<(u32, u32, &str)> = None;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [iface, dest, _gw, flags, _ref, _use, metric, mask, ..] = f[..] else {
            continue;
        };
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dest), Some(flags), Some(mask)) = (hex(dest), hex(flags), hex(mask)) else {
            continue;
        };
        let Ok(metric) = metric.parse::<u32>() else {
            continue;
        };
        if flags & RTF_UP == 0 || addr & mask != dest {
            continue;
        }
        let len = mask.count_ones();
        let better = match best {
            None => true,
            Some((l, m, _)) => len > l || (len == l && metric < m),
        };
        if better {
            best = Some((len, metric, iface));
        }
    }
    best.map(|(_, _, iface)| iface.to_owned())
}

/// The interface name of the route to `to`, in this thread's network namespace.
pub(super) fn egress(to: Ipv4Addr) -> Option<String> {
    let table = std::fs::read_to_string("/proc/thread-self/net/route").ok()?;
    egress_in(&table, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
        eth1\t0000020A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        eth2\t0000020A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
        down\t0300020A\t00000000\t0000\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n";

    #[test]
    fn the_longest_usable_prefix_wins() {
        let at = |s: &str| egress_in(TABLE, s.parse().unwrap());
        assert_eq!(at("10.2.0.7").as_deref(), Some("eth1"), "/24 over /16");
        assert_eq!(at("10.2.9.7").as_deref(), Some("eth2"));
        assert_eq!(
            at("10.2.0.3").as_deref(),
            Some("eth1"),
            "a route that is down is no route"
        );
        assert_eq!(
            at("192.0.2.1").as_deref(),
            Some("eth0"),
            "the default route"
        );
        assert_eq!(egress_in("Iface\n", "192.0.2.1".parse().unwrap()), None);
    }
}
