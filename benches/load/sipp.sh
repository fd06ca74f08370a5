#!/usr/bin/env bash
# Load test of Switchboard under SIPp, measured the way ../shared/bench/anchor measured
# Kamailio + rtpengine: the same scenarios, the same rtp_stream generator and media file, the
# same net.core.rmem_default, the same pass criteria and search. It prints a table:
#   sig        highest calls/s with 0 failed calls (INVITE/180/200/ACK, 1 s, BYE; SDP anchored)
#   media      concurrent calls held 20 s with RTP both ways and no loss
#   media-cps  calls/s with 5 s media calls
# plus CPU per call, CPU µs per relayed packet (media threads, the figure comparable to
# rtpengine's) and RSS per call.
#   soak       (not in `all`) media calls at a steady rate for SOAK_SECS (30 min): RSS, open
#              files, threads, calls up and the CDR backlog sampled every 10 s; passes with 0
#              failed calls, relay loss <= 0.1 %, every call's CDR stored and closed, RSS over
#              the second half growing by at most 5 %, and the open files back to their idle count.
#              SOAK_ATTACKS=1 runs benches/load/attacks.py beside it (idle HTTP and SIP/TCP
#              connections, password guessing, an INVITE flood, an RTP spray over the port
#              range, each from its own address at a bounded rate) and adds a check that the
#              sprayer took no audio.
#
#   overload   (not in `all`) the highest signalling rate with 0 failed calls is searched as
#              in `sig` (or taken from OVERLOAD_MAX), then twice it is offered for OVERLOAD_SECS
#              (20 s) with a UAC that takes a 503 as an answer: passes when no call fails
#              (every call is carried or refused at once, none times out or is retransmitted
#              to death), every admitted call's CDR is stored completed, and the calls carried
#              per second are at least 90 % of the maximum.
#
#   gen-sig    (not in `all`) as sig, with sbload (benches/sbload) as caller and callee instead
#              of SIPp: a generator whose own CPU per call is reported beside the server's, so
#              that a point limited by the generator shows as such (GEN_THREADS, default 1)
#   gen-media  (not in `all`) as media, with sbload: MEDIA_HOLD s calls, N up at once, RTP both
#              ways, loss counted end to end (sent, echoed by the callee, back)
#
#   usage: benches/load/sipp.sh [all|sig|media|media-cps|soak|overload|gen-sig|gen-media]
#   knobs: OUT, ONLY_RUN, SIG_RATES, MEDIA_CONC, MEDIA_CPS_RATES, MEDIA_RMEM_DEFAULT,
#          RTP_PORTS (20000-60000; the server cuts it to what its descriptor limit holds, 7,695
#          pairs at ulimit -n 20000: ~3,800 calls at once, two pairs a call; the anchor's
#          30000-40000 holds 2,500, which a 1 s call at 2,500 calls/s outgrows),
#          OVERLOAD_MAX, OVERLOAD_SECS,
#          SOAK_SECS (1800), SOAK_CPS (20), SOAK_HOLD (10 s: SOAK_CPS x SOAK_HOLD calls up),
#          ANCHOR (path of the anchor harness, default ../shared/bench/anchor), SB (a server
#          binary to run instead of building this tree's),
#          and any SWITCHBOARD_<SECTION>__<KEY> setting for the server under test
#
# Topology: SIPp uac 127.0.0.1:5070 -> Switchboard 127.0.0.1:5080 -> SIPp uas 127.0.0.1:5090.
# Run `../shared/bench/anchor/run.sh` in the same sitting for the comparison.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ANCHOR=${ANCHOR:-$ROOT/../shared/bench/anchor}
MODE=${1:-all}
OUT=${OUT:-$ROOT/target/load/$(date +%Y%m%d-%H%M%S)}
IP=127.0.0.1; SB_PORT=5080; UAC_PORT=5070; UAS_PORT=5090; UAC_MEDIA_PORT=6000; UAS_MEDIA_PORT=7000
SIG_SECS=${SIG_SECS:-20}
SIG_RATES=${SIG_RATES:-"200 400 800 1000 1300 1600 2000 2500 3000 3200"}
MEDIA_HOLD=${MEDIA_HOLD:-20}
MEDIA_CONC=${MEDIA_CONC:-"200 400 800 1000 1300 1600 2000"}
MEDIA_CPS_HOLD=5; MEDIA_CPS_SECS=20
MEDIA_CPS_RATES=${MEDIA_CPS_RATES:-"100 200 250 300 350"}
MEDIA_RMEM_DEFAULT=${MEDIA_RMEM_DEFAULT:-2097152}
MEDIA_LOSS_MAX_PCT=0.1; RETRANS_MAX_PCT=1; MAX_BISECT=${MAX_BISECT:-4}
mkdir -p "$OUT"
# SB=path runs that binary instead of building this tree's (an A/B of two builds).
SB_GIVEN=${SB:-}
SB=${SB:-$ROOT/target/release/switchboard}
STARTED=()
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }
[ -d "$ANCHOR/scenarios" ] || { log "anchor harness not found at $ANCHOR (set ANCHOR=…)"; exit 1; }
command -v sipp >/dev/null || { log "sipp not found: apt-get install sip-tester"; exit 1; }

stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; return 0
}
RMEM_SAVED=""
set_rmem() {
    [ "$MEDIA_RMEM_DEFAULT" = 0 ] && return 0
    [ -z "$RMEM_SAVED" ] && RMEM_SAVED=$(cat /proc/sys/net/core/rmem_default)
    echo "$MEDIA_RMEM_DEFAULT" >/proc/sys/net/core/rmem_default 2>/dev/null || log "warning: cannot set rmem_default"
}
restore_rmem() { [ -n "$RMEM_SAVED" ] && echo "$RMEM_SAVED" >/proc/sys/net/core/rmem_default; RMEM_SAVED=""; }
cleanup() { local p; for p in "${STARTED[@]}"; do stop_pid "$p"; done; restore_rmem; }
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

if [ -z "$SB_GIVEN" ]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release -q) || { log "build failed"; exit 1; }
fi
case $MODE in gen-*) (cd "$ROOT" && cargo build --release -q -p sbload) || { log "build failed"; exit 1; } ;; esac

SB_PID=""
start_sb() {     # start_sb DIR
    local d=$1
    cat >"$d/switchboard.toml" <<EOF
[sip]
listen = ["udp:$IP:$SB_PORT", "tcp:$IP:$SB_PORT"]
# Calls' SIP ladders are a feature of their own (off by default too): on when a run names
# it (SWITCHBOARD_SIP__TRACE_RETENTION_SECS=86400).
trace_retention_secs = 0
[media]
rtp_ports = "${RTP_PORTS:-20000-60000}"
[http]
listen = "$IP:18080"
[storage]
database_url = "sqlite://$d/cdr.db"
[[trunks]]
name = "uac"
address = "$IP:$UAC_PORT"
inbound_sources = ["$IP/32"]
[[trunks]]
name = "uas"
address = "$IP:$UAS_PORT"
[[routes]]
pattern = "."
trunk = "uas"
EOF
    RUST_LOG=warn "$SB" serve --config "$d/switchboard.toml" --data-dir "$d" >"$d/switchboard.log" 2>&1 &
    SB_PID=$!; STARTED+=("$SB_PID")
    local i
    for ((i = 0; i < 100; i++)); do curl -sf "http://$IP:18080/healthz" >/dev/null && return 0; sleep 0.1; done
    log "switchboard did not start, see $d/switchboard.log"; exit 1
}
relayed() { curl -s "http://$IP:18080/metrics" | awk '/^switchboard_rtp_packets_relayed_total /{print $2+0}'; }
# Host-wide UDP receive-buffer drops (RcvbufErrors).
rcvbuf_errors() { awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) n[$i] = i; h = 1 } else print $n["RcvbufErrors"] }' /proc/net/snmp; }
# CPU seconds of the media threads ("media-N") and of the whole process, and RSS in KiB.
sb_cpu() {
    python3 - "$SB_PID" <<'EOF'
import os, sys
pid = sys.argv[1]; hz = os.sysconf('SC_CLK_TCK'); media = 0.0
for t in os.listdir(f'/proc/{pid}/task'):
    try:
        comm = open(f'/proc/{pid}/task/{t}/comm').read().strip()
        f = open(f'/proc/{pid}/task/{t}/stat').read().rsplit(')', 1)[1].split()
    except OSError:
        continue
    if comm.startswith('media-'):
        media += (int(f[11]) + int(f[12])) / hz
f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
rss = next(int(l.split()[1]) for l in open(f'/proc/{pid}/status') if l.startswith('VmRSS'))
print(media, (int(f[11]) + int(f[12])) / hz, rss)
EOF
}

UAS_PID=""
start_uas() {
    local d=$1; shift
    ( cd "$d" && exec sipp -sf "$ANCHOR/scenarios/uas.xml" -i $IP -p $UAS_PORT -mi $IP -mp $UAS_MEDIA_PORT \
        -nostdin -timeout 900s -trace_err -error_file "$d/uas_err.log" "$@" >/dev/null 2>"$d/uas.stderr" ) &
    UAS_PID=$!; STARTED+=("$UAS_PID"); sleep 0.5
}
run_uac() {      # run_uac DIR SCENARIO TIMEOUT [args]; sets UAC_RC; CPU in DIR/cpu.json
    local d=$1 sc=$2 to=$3; shift 3
    # An anchor scenario by name, or one of ours by path.
    [[ $sc = /* ]] || sc="$ANCHOR/scenarios/$sc"
    ( cd "$d" && exec sipp -sf "$sc" -i $IP -p $UAC_PORT -mi $IP -mp $UAC_MEDIA_PORT \
        -s bench $IP:$SB_PORT -nostdin -timeout "${to}s" -timeout_error \
        -trace_stat -stf "$d/uac_stat.csv" -fd 1 -trace_err -error_file "$d/uac_err.log" "$@" \
        >/dev/null 2>"$d/uac.stderr" ) &
    local upid=$!
    python3 "$ANCHOR/tools/cpumon.py" --interval 1 --max-secs $((to + 30)) \
        switchboard="$SB_PID" sipp_uac="$upid" sipp_uas="$UAS_PID" >"$d/cpu.json" &
    local mpid=$!
    wait "$upid"; UAC_RC=$?
    stop_pid "$mpid"
}

# One point measured with sbload as caller and callee (gen-sig: N = cps; gen-media: N =
# concurrent). Appends a JSON line to $OUT/$tag.jsonl; returns 0 on pass.
gen_point() {
    local tag=$1 n=$2 d="$OUT/$1/n$2" args
    rm -rf "$d"; mkdir -p "$d"
    case $tag in
    gen-sig) args=(--rate "$n" --calls $((n * SIG_SECS)) --hold-ms 1000 --limit $((n * 10 + 100))) ;;
    # As SIPp's media point: N calls started over one hold time, twice N in all.
    gen-media) args=(--rate "$(python3 -c "print($n / $MEDIA_HOLD)")" --calls $((2 * n)) \
                     --hold-ms $((MEDIA_HOLD * 1000)) --limit $((2 * n + 50)) --media)
               set_rmem ;;
    esac
    log "$tag: n=$n"
    start_sb "$d"
    local before after pk0 pk1
    before=$(sb_cpu); pk0=$(relayed)
    "$ROOT/target/release/sbload" --target $IP:$SB_PORT --uas $IP:$UAS_PORT --threads "${GEN_THREADS:-1}" \
        --server-pid "$SB_PID" --server-threads media- "${args[@]}" >"$d/sbload.txt" 2>&1
    sleep 1
    after=$(sb_cpu); pk1=$(relayed)
    stop_pid "$SB_PID"; restore_rmem
    python3 - "$d" "$tag" "$n" "$before" "$after" "$pk0" "$pk1" >>"$OUT/$tag.jsonl" <<'EOF'
import json, sys
d, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
b0, b1 = [float(x) for x in sys.argv[4].split()], [float(x) for x in sys.argv[5].split()]
relayed = int(float(sys.argv[7] or 0)) - int(float(sys.argv[6] or 0))
line = [l for l in open(d + '/sbload.txt') if l.startswith('RESULT ')]
r = json.loads(line[-1][7:]) if line else {'pass': False, 'calls': 0}
media_cpu, total_cpu = b1[0] - b0[0], b1[1] - b0[1]
r.update({'test': tag, 'n': n, 'sb_cpu_s': round(total_cpu, 3), 'sb_media_cpu_s': round(media_cpu, 3),
          'sb_ms_per_call': round(total_cpu * 1000 / max(1, r.get('ok', 0)), 3),
          'gen_ms_per_call': round(r.get('gen_cpu_s', 0) * 1000 / max(1, r.get('calls', 0)), 3),
          'rtp_relayed': relayed, 'us_per_pkt_media': round(media_cpu * 1e6 / relayed, 2) if relayed else None})
print(json.dumps(r))
EOF
    local pass; pass=$(tail -1 "$OUT/$tag.jsonl" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["pass"]))')
    log "$tag: n=$n -> $(tail -1 "$OUT/$tag.jsonl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("PASS" if r["pass"] else "FAIL", "ok=%s failed=%s retrans=%s loss=%s%% sb=%s ms/call gen=%s ms/call us/pkt=%s" % (r.get("ok"), r.get("failed"), r.get("retrans"), r.get("loss_pct"), r["sb_ms_per_call"], r["gen_ms_per_call"], r.get("us_per_pkt_media")))')"
    sleep 2
    [ "$pass" = 1 ]
}

# One measured point. Appends a JSON line to $OUT/$tag.jsonl; returns 0 on pass.
point() {        # point TAG N (sig: N = cps; media: N = concurrent; media-cps: N = cps)
    case $1 in gen-*) gen_point "$@"; return ;; esac
    local tag=$1 n=$2 d="$OUT/$1/n$2" hold=1 m args=() scen=uac_sig.xml media_s=0
    rm -rf "$d"; mkdir -p "$d"
    case $tag in
    sig) m=$((n * SIG_SECS)); args=(-r "$n" -rp 1000 -m "$m" -l $((n * 10 + 100)) -d 1000) ;;
    media) hold=$MEDIA_HOLD; m=$((2 * n)); args=(-r "$n" -rp $((hold * 1000)) -m "$m" -l $((2 * n + 50)) -d $((hold * 1000))) ;;
    media-cps) hold=$MEDIA_CPS_HOLD; m=$((n * MEDIA_CPS_SECS)); args=(-r "$n" -rp 1000 -m "$m" -l $((n * hold * 2 + 50)) -d $((hold * 1000))) ;;
    esac
    if [ "$tag" != sig ]; then
        media_s=$((hold - 1)); scen=uac_media.xml
        python3 "$ANCHOR/tools/mkalaw.py" "$media_s" "$d/media.alaw" >/dev/null
        args+=(-rtp_echo -rtp_threadtasks 20)
        set_rmem
    fi
    log "$tag: n=$n calls=$m"
    start_sb "$d"
    if [ "$tag" = sig ]; then start_uas "$d"; else start_uas "$d" -rtp_echo; fi
    local before after pk0 pk1 rb0 rb1
    before=$(sb_cpu); pk0=$(relayed); rb0=$(rcvbuf_errors)
    run_uac "$d" "$scen" $((3 * hold + SIG_SECS + 60)) "${args[@]}"
    sleep 1
    after=$(sb_cpu); pk1=$(relayed); rb1=$(rcvbuf_errors)
    # Drops at SIPp's own media sockets (uac sink, uas echo), as the anchor reported them.
    python3 "$ANCHOR/tools/udpdrops.py" $UAC_MEDIA_PORT $UAS_MEDIA_PORT >"$d/sipp_media_drops.json"
    stop_pid "$UAS_PID"; stop_pid "$SB_PID"; restore_rmem
    python3 "$ANCHOR/tools/sippstat.py" "$d/uac_stat.csv" >"$d/uac_summary.json" 2>/dev/null || echo '{}' >"$d/uac_summary.json"
    python3 - "$d" "$tag" "$n" "$m" "$UAC_RC" "$hold" "$media_s" "$pk0" "$pk1" "$before" "$after" \
        "$MEDIA_LOSS_MAX_PCT" "$RETRANS_MAX_PCT" "$SIG_SECS" $((rb1 - rb0)) >>"$OUT/$tag.jsonl" <<'EOF'
import json, sys
a = sys.argv
d, tag, n, m, rc, hold, media_s = a[1], a[2], int(a[3]), int(a[4]), int(a[5]), int(a[6]), int(a[7])
pk0, pk1 = int(float(a[8] or 0)), int(float(a[9] or 0))
b0, b1 = [float(x) for x in a[10].split()], [float(x) for x in a[11].split()]
lmax, rmax, secs, host_drops = float(a[12]), float(a[13]), int(a[14]), int(a[15])
s = json.load(open(d + '/uac_summary.json')); c = json.load(open(d + '/cpu.json'))
sd = json.load(open(d + '/sipp_media_drops.json'))
succ = s.get('successful', 0)
media_cpu, total_cpu = b1[0] - b0[0], b1[1] - b0[1]
r = {'test': tag, 'n': n, 'calls': m, 'sipp_rc': rc, **s, 'cpu': c,
     'sipp_drops': '%s/%s' % (sd.get('6000'), sd.get('7000')), 'host_rcvbuf_drops': host_drops,
     'sb_cpu_s': round(total_cpu, 3), 'sb_media_cpu_s': round(media_cpu, 3),
     'sb_ms_per_call': round(total_cpu * 1000 / max(1, succ), 3),
     'sb_idle_rss_kb': int(b0[2]), 'sb_max_rss_mb': c['switchboard']['max_rss_mb']}
ok = s.get('failed', 1) == 0 and succ == m and rc == 0 and s.get('retrans', 1e9) <= m * rmax / 100.0
if tag == 'sig':
    ok = ok and s.get('create_phase_s', 1e9) <= secs * 1.1 + 1
else:
    expected = 2 * succ * media_s * 50
    relayed = pk1 - pk0
    loss = 100.0 * max(0, expected - relayed) / expected if expected else 100.0
    ok = ok and loss <= lmax
    conc = n if tag == 'media' else n * hold
    r.update({'rtp_expected': expected, 'rtp_relayed': relayed, 'loss_pct': round(loss, 4),
              'us_per_pkt_media': round(media_cpu * 1e6 / relayed, 2) if relayed else None,
              'us_per_pkt_total': round(total_cpu * 1e6 / relayed, 2) if relayed else None,
              'kb_per_call': round((c['switchboard']['max_rss_mb'] * 1024 - b0[2]) / conc, 1)})
r['pass'] = ok
print(json.dumps(r))
EOF
    local pass; pass=$(tail -1 "$OUT/$tag.jsonl" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["pass"]))')
    log "$tag: n=$n -> $(tail -1 "$OUT/$tag.jsonl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("PASS" if r["pass"] else "FAIL", "ok=%s failed=%s retrans=%s sb=%s%% loss=%s sippdrop=%s kdrop=%s us/pkt=%s" % (r.get("successful"), r.get("failed"), r.get("retrans"), r["cpu"]["switchboard"]["avg_pct"], r.get("loss_pct"), r["sipp_drops"], r["host_rcvbuf_drops"], r.get("us_per_pkt_media")))')"
    sleep 2
    [ "$pass" = 1 ]
}

search() {       # search TAG LADDER…: walk up until a failure, then bisect; sets BEST
    local tag=$1; shift
    local lo=0 hi=0 x k
    if [ -n "${ONLY_RUN:-}" ]; then point "$tag" "$ONLY_RUN" && BEST=$ONLY_RUN || BEST=0; return; fi
    for x in "$@"; do if point "$tag" "$x"; then lo=$x; else hi=$x; break; fi; done
    if [ "$hi" != 0 ]; then
        for ((k = 0; k < MAX_BISECT; k++)); do
            [ $((hi - lo)) -le $((lo / 20 > 10 ? lo / 20 : 10)) ] && break
            local mid=$(((lo + hi) / 2))
            if point "$tag" "$mid"; then lo=$mid; else hi=$mid; fi
        done
    fi
    BEST=$lo
}

report() {
    python3 - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
def load(t):
    p = os.path.join(out, t + '.jsonl')
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
for tag, title in (('sig', 'signalling only (uac -> switchboard -> uas), pause 1000 ms'),
                   ('media', 'concurrent calls with RTP both ways, hold 20 s'),
                   ('media-cps', 'calls/s with 5 s media calls')):
    rows = sorted(load(tag), key=lambda r: r['n'])
    if not rows:
        continue
    print('== %s' % title)
    fmt = '%-6s %-5s %7s %5s %7s %7s %7s %7s %7s %9s %7s %9s %7s %8s %8s %8s'
    print(fmt % ('n', 'res', 'ok', 'fail', 'retrans', 'rtt_ms', 'sb%', 'uac%', 'uas%', 'ms/call', 'loss%', 'sippdrop', 'kdrop', 'us/pkt', 'us/pkt*', 'KB/call'))
    for r in rows:
        c = r['cpu']
        print(fmt % (r['n'], 'PASS' if r['pass'] else 'FAIL', r.get('successful'), r.get('failed'), r.get('retrans'), r.get('rtt_mean_ms'), c['switchboard']['avg_pct'], c['sipp_uac']['avg_pct'], c['sipp_uas']['avg_pct'], r['sb_ms_per_call'], r.get('loss_pct', '-'), r.get('sipp_drops', '-'), r.get('host_rcvbuf_drops', '-'), r.get('us_per_pkt_media', '-'), r.get('us_per_pkt_total', '-'), r.get('kb_per_call', '-')))
    ok = [r for r in rows if r['pass']]
    if ok:
        b = max(ok, key=lambda r: r['n'])
        extra = '' if tag == 'sig' else '; media threads %s us CPU per relayed packet (%s us whole process), %s KB RSS per call' % (b['us_per_pkt_media'], b['us_per_pkt_total'], b['kb_per_call'])
        print('MAX %s: %d (%s ms of CPU per call%s)' % (tag, b['n'], b['sb_ms_per_call'], extra))
    else:
        print('MAX %s: none passed' % tag)
    print()
for tag, title in (('gen-sig', 'signalling only, sbload as caller and callee, hold 1000 ms'),
                   ('gen-media', 'concurrent calls with RTP both ways, sbload, hold %s s' % os.environ.get('MEDIA_HOLD', '20'))):
    rows = sorted(load(tag), key=lambda r: r['n'])
    if not rows:
        continue
    print('== %s' % title)
    fmt = '%-6s %-5s %7s %5s %7s %8s %9s %9s %8s %8s %7s'
    print(fmt % ('n', 'res', 'ok', 'fail', 'retrans', 'setup_ms', 'sb_ms', 'gen_ms', 'loss%', 'us/pkt', 'late'))
    for r in rows:
        print(fmt % (r['n'], 'PASS' if r['pass'] else 'FAIL', r.get('ok'), r.get('failed'), r.get('retrans'), r.get('setup_ms'), r['sb_ms_per_call'], r['gen_ms_per_call'], r.get('loss_pct', '-'), r.get('us_per_pkt_media') or '-', r.get('late_ticks', '-')))
    ok = [r for r in rows if r['pass']]
    print('MAX %s: %s' % (tag, max(r['n'] for r in ok) if ok else 'none passed'))
    print()
print('us/pkt = CPU of the media threads per relayed packet (as rtpengine); us/pkt* = whole process.')
print('sb_ms, gen_ms = CPU per call of the server and of the generator (sbload, caller and callee).')
print('sippdrop = drops at the SIPp uac/uas media sockets; kdrop = host-wide UDP RcvbufErrors during the run.')
EOF
}

# Open files, threads and RSS (KiB) of the server.
sb_sample() {
    local fds threads rss
    fds=$(ls "/proc/$SB_PID/fd" 2>/dev/null | wc -l)
    threads=$(ls "/proc/$SB_PID/task" 2>/dev/null | wc -l)
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SB_PID/status" 2>/dev/null)
    echo "$fds $threads ${rss:-0}"
}
metric() { curl -s "http://$IP:18080/metrics" | awk -v m="$1" '$1 == m {print $2+0}'; }

soak() {
    local d="$OUT/soak" rate=${SOAK_CPS:-20} hold=${SOAK_HOLD:-10} secs=${SOAK_SECS:-1800}
    local m=$((rate * secs)) media_s=$((hold - 1))
    rm -rf "$d"; mkdir -p "$d"
    python3 "$ANCHOR/tools/mkalaw.py" "$media_s" "$d/media.alaw" >/dev/null
    set_rmem
    log "soak: $rate calls/s held ${hold} s for ${secs} s ($m calls)"
    # The callee must outlive the run (start_uas's own -timeout is 900 s; the later one wins).
    start_sb "$d"; start_uas "$d" -rtp_echo -timeout $((secs + 600))s
    sleep 1
    local idle pk0 t0
    idle=$(sb_sample); pk0=$(relayed); t0=$(date +%s)
    echo "secs,fds,threads,rss_kb,calls_active,cdr_backlog,relayed" >"$d/samples.csv"
    (
        while kill -0 "$SB_PID" 2>/dev/null; do
            echo "$(($(date +%s) - t0)),$(sb_sample | tr ' ' ','),$(metric switchboard_calls_active),$(metric switchboard_cdr_backlog),$(relayed)" >>"$d/samples.csv"
            sleep 10
        done
    ) &
    local sampler=$!; STARTED+=("$sampler")
    if [ "${SOAK_ATTACKS:-0}" = 1 ]; then
        python3 "$ROOT/benches/load/attacks.py" "$IP" "$SB_PORT" 18080 30000 40000 "$secs" "$d/attacks.json" \
            >"$d/attacks.log" 2>&1 &
        STARTED+=("$!")
    else
        echo '{}' >"$d/attacks.json"
    fi
    run_uac "$d" uac_media.xml $((secs + 3 * hold + 120)) -r "$rate" -rp 1000 -m "$m" \
        -l $((rate * hold * 2 + 50)) -d $((hold * 1000)) -rtp_echo -rtp_threadtasks 20
    sleep 5
    local after pk1
    after=$(sb_sample); pk1=$(relayed)
    stop_pid "$sampler"; stop_pid "$UAS_PID"; stop_pid "$SB_PID"; restore_rmem
    python3 "$ANCHOR/tools/sippstat.py" "$d/uac_stat.csv" >"$d/uac_summary.json" 2>/dev/null || echo '{}' >"$d/uac_summary.json"
    sleep 2
    python3 - "$d" "$m" "$UAC_RC" "$media_s" "$pk0" "$pk1" "$idle" "$after" "$MEDIA_LOSS_MAX_PCT" <<'EOF' | tee "$d/summary.txt"
import csv, json, sqlite3, sys
d, m, rc, media_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pk0, pk1 = int(float(sys.argv[5] or 0)), int(float(sys.argv[6] or 0))
idle, after = [int(x) for x in sys.argv[7].split()], [int(x) for x in sys.argv[8].split()]
lmax = float(sys.argv[9])
s = json.load(open(d + '/uac_summary.json'))
rows = [r for r in csv.DictReader(open(d + '/samples.csv'))]
succ = s.get('successful', 0)
expected = 2 * succ * media_s * 50
loss = 100.0 * max(0, expected - (pk1 - pk0)) / expected if expected else 100.0
db = sqlite3.connect(d + '/cdr.db')
stored, open_calls = db.execute("SELECT COUNT(*), SUM(ended_at IS NULL) FROM calls").fetchone()
rss = [(int(r['secs']), int(r['rss_kb'])) for r in rows if r['rss_kb']]
# The first half is warm-up: SQLite's page caches (2 MB per connection) and the allocator's
# pools fill over the first ten minutes of a 30-minute run. A leak shows in the second half.
warm_from = rss[-1][0] / 2 if rss else 0
warm = [kb for t, kb in rss if t >= warm_from]
growth = 100.0 * (warm[-1] - warm[0]) / warm[0] if warm else 0.0
print('== soak: %d calls, %s s' % (m, rows[-1]['secs'] if rows else '?'))
print('%8s %6s %8s %8s %8s %8s' % ('secs', 'fds', 'threads', 'RSS MB', 'calls', 'backlog'))
step = max(1, len(rows) // 20)
for r in rows[::step] + rows[-1:]:
    print('%8s %6s %8s %8.1f %8s %8s' % (r['secs'], r['fds'], r['threads'], int(r['rss_kb']) / 1024, r['calls_active'], r['cdr_backlog']))
checks = {
    'calls ok': (succ == m and s.get('failed', 1) == 0 and rc == 0, '%d of %d, %s failed' % (succ, m, s.get('failed'))),
    'relay loss': (loss <= lmax, '%.4f %%' % loss),
    'CDRs stored and closed': (stored == m and not open_calls, '%s rows, %s open' % (stored, open_calls)),
    'RSS growth, second half': (growth <= 5.0, '%.1f %% (%.1f -> %.1f MB)' % (growth, warm[0] / 1024, warm[-1] / 1024) if warm else 'no samples'),
    'open files back to idle': (after[0] <= idle[0], '%d idle, %d after' % (idle[0], after[0])),
}
attacks = json.load(open(d + '/attacks.json'))
if attacks:
    print('attacks:', ', '.join('%s %d' % kv for kv in sorted(attacks.items())))
    checks['the sprayer took no audio'] = (attacks.get('rtp_received', 1) == 0,
                                           '%d packets back' % attacks.get('rtp_received', -1))
for name, (ok, detail) in checks.items():
    print('%-26s %s  %s' % (name, 'PASS' if ok else 'FAIL', detail))
print('SOAK', 'PASS' if all(ok for ok, _ in checks.values()) else 'FAIL')
EOF
}

overload() {     # overload MAX: MAX calls/s is the most carried with 0 failed calls
    local max=$1 secs=${OVERLOAD_SECS:-20} d="$OUT/overload"
    local rate=$((2 * max)) m=$((2 * max * secs))
    rm -rf "$d"; mkdir -p "$d"
    log "overload: $rate calls/s offered for $secs s ($m calls), twice the maximum of $max"
    start_sb "$d"; start_uas "$d"
    local before after
    before=$(sb_cpu)
    # Where messages wait, every half second: the server's queue in front of its core and the
    # rate overload control admits (its gauges), and the bytes waiting in the SIP sockets'
    # buffers of the server and of both SIPps (ss Recv-Q), beside the calls up.
    ( while :; do
        printf '%s %s %s %s' "$(date +%s.%N | cut -c1-14)" \
            "$(metric switchboard_sip_queue_delay_seconds)" "$(metric switchboard_sip_admission_rate)" \
            "$(metric switchboard_calls_active)"
        for p in $SB_PORT $UAC_PORT $UAS_PORT; do
            printf ' %s' "$(ss -uanH "sport = :$p" | awk '{q += $2} END {print q + 0}')"
        done
        echo
        sleep 0.5
      done >"$d/queues.txt" ) &
    local sampler=$!
    run_uac "$d" "$ROOT/benches/load/scenarios/uac_sig_overload.xml" $((secs + 90)) \
        -r "$rate" -rp 1000 -m "$m" -l $((rate * 10 + 100)) -d 1000 -trace_counts
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
    # Every admitted call's CDR is written before the server is stopped and the rows read.
    local i
    for ((i = 0; i < 100; i++)); do [ "$(metric switchboard_cdr_backlog)" = 0 ] && break; sleep 0.1; done
    after=$(sb_cpu)
    # The server's refusals: by its measured load, and while its CDR writer is behind.
    local refused backlog busy
    refused=$(( $(metric 'switchboard_sip_rejected_total{reason="overload"}') + $(metric 'switchboard_sip_rejected_total{reason="transactions"}') ))
    backlog=$(metric 'switchboard_calls_refused_total{reason="store-backlog"}')
    busy=$(metric 'switchboard_calls_refused_total{reason="trunk-busy"}')
    stop_pid "$UAS_PID"; stop_pid "$SB_PID"
    python3 "$ANCHOR/tools/sippstat.py" "$d/uac_stat.csv" >"$d/uac_summary.json" 2>/dev/null || echo '{}' >"$d/uac_summary.json"
    python3 - "$d" "$max" "$rate" "$secs" "$m" "$UAC_RC" "${refused:-0}" "${backlog:-0}" "$before" "$after" "${busy:-0}" <<'EOF' | tee "$d/summary.txt"
import glob, json, sqlite3, sys
d, mx, rate, secs, m, rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
by_load, by_backlog, by_trunk = int(float(sys.argv[7])), int(float(sys.argv[8])), int(float(sys.argv[11]))
b0, b1 = [float(x) for x in sys.argv[9].split()], [float(x) for x in sys.argv[10].split()]
s = json.load(open(d + '/uac_summary.json')); c = json.load(open(d + '/cpu.json'))
# SIPp's own count of the 503s it received (the -trace_counts columns of the 503 line).
counted = None
for f in glob.glob(d + '/*_counts.csv'):
    rows = [l.rstrip('\n').split(';') for l in open(f) if l.strip()]
    cols = [i for i, h in enumerate(rows[0]) if '503' in h and h.endswith('Recv')]
    if cols and len(rows) > 1:
        counted = sum(int(rows[-1][i] or 0) for i in cols)
db = sqlite3.connect(d + '/cdr.db')
stored = dict(db.execute("SELECT status, COUNT(*) FROM calls GROUP BY status").fetchall())
# Calls the core refused for want of RTP ports have their record, failed with the cause; those
# shed for load (overload control, the CDR writer behind, a busy trunk) never were calls.
causes = dict(db.execute("SELECT hangup_cause, COUNT(*) FROM calls WHERE status = 'failed' GROUP BY hangup_cause").fetchall())
by_core = causes.get('no-media-ports', 0)
refused = by_load + by_backlog + by_trunk + by_core
succ, failed = s.get('successful', 0), s.get('failed', -1)
carried = succ - refused
# The calls carried per second of the offered window (SIPp's creation phase).
window = max(s.get('create_phase_s') or secs, secs)
goodput = carried / window
cpu = b1[1] - b0[1]
print('== overload: %d calls/s offered for %d s (twice the maximum, %d)' % (rate, secs, mx))
print('offered %d: carried %d, refused with 503 %d (%d by measured load, %d while the CDR writer was behind, %d for a busy trunk, %d for want of RTP ports; SIPp counted %s), failed %s, retransmissions %s'
      % (m, carried, refused, by_load, by_backlog, by_trunk, by_core, counted, failed, s.get('retrans')))
print('CDRs: %s' % ', '.join('%s %d' % kv for kv in sorted(stored.items())))
print('carried %.0f calls/s = %.1f %% of the maximum; server CPU %.1f s (%.3f ms per call offered), sb %s%% of a core'
      % (goodput, 100.0 * goodput / mx, cpu, cpu * 1000 / max(1, m), c['switchboard']['avg_pct']))
checks = {
    'no call failed': (failed == 0 and rc == 0 and succ == m, '%d of %d ended, %s failed' % (succ, m, failed)),
    'each refusal a 503 at once': (counted is None or counted == refused, '%s counted by SIPp, %d by the server' % (counted, refused)),
    'every carried call stored completed': (stored.get('completed', 0) == carried and sum(stored.values()) == carried + by_core,
                                            '%d completed, %d refusals of %d rows' % (stored.get('completed', 0), by_core, sum(stored.values()))),
    'goodput >= 90 % of the maximum': (goodput >= 0.9 * mx, '%.0f of %d' % (goodput, mx)),
}
print('every 2 s: core queue (ms), admission rate (calls/s, 0 = none), calls up, bytes waiting at the sockets of switchboard / uac / uas')
rows = [l.split() for l in open(d + '/queues.txt') if len(l.split()) == 7]
for r in rows[::4]:
    t = float(r[0]) - float(rows[0][0])
    print('  %5.1f s  %7.1f  %7.0f  %6.0f  %9s %9s %9s' % (t, float(r[1] or 0) * 1000, float(r[2] or 0), float(r[3] or 0), r[4], r[5], r[6]))
for name, (ok, detail) in checks.items():
    print('%-36s %s  %s' % (name, 'PASS' if ok else 'FAIL', detail))
print('OVERLOAD', 'PASS' if all(ok for ok, _ in checks.values()) else 'FAIL')
EOF
}

log "output: $OUT"
case "$MODE" in
all | sig | media | media-cps | gen-sig | gen-media) ;;
soak) soak; exit 0 ;;
overload)
    if [ -n "${OVERLOAD_MAX:-}" ]; then BEST=$OVERLOAD_MAX; else search sig $SIG_RATES; fi
    [ "$BEST" -gt 0 ] || { log "no signalling rate passed"; exit 1; }
    report | tee "$OUT/summary.txt"
    overload "$BEST"
    exit 0
    ;;
*) echo "usage: $0 [all|sig|media|media-cps|soak|overload|gen-sig|gen-media]"; exit 2 ;;
esac
if [ "$MODE" = all ] || [ "$MODE" = sig ]; then search sig $SIG_RATES; fi
if [ "$MODE" = all ] || [ "$MODE" = media ]; then search media $MEDIA_CONC; fi
if [ "$MODE" = all ] || [ "$MODE" = media-cps ]; then search media-cps $MEDIA_CPS_RATES; fi
if [ "$MODE" = gen-sig ]; then search gen-sig $SIG_RATES; fi
if [ "$MODE" = gen-media ]; then search gen-media $MEDIA_CONC; fi
report | tee "$OUT/summary.txt"
