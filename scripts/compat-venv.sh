#!/usr/bin/env bash
# Creates (once) a Python virtual environment with a provider's official SDK that the compat
# tests drive Switchboard with, and prints its python. The signalwire SDK pins an old twilio
# (6.54), so each SDK has a venv of its own.
#
#   scripts/compat-venv.sh twilio      # → target/compat/twilio/bin/python
#   scripts/compat-venv.sh signalwire  # → target/compat/signalwire/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-twilio}
case "$name" in
    twilio) packages=(twilio==9.13.0) module=twilio ;;
    signalwire) packages=(signalwire==2.1.1) module=signalwire ;;
    *) echo "unknown venv $name" >&2; exit 2 ;;
esac
venv=target/compat/$name
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import $module" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "${packages[@]}" >&2
fi
echo "$PWD/$venv/bin/python"
