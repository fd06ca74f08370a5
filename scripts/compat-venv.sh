#!/usr/bin/env bash
# Creates (once) the Python virtual environment with Twilio's official SDK that the compat
# tests drive Switchboard with, and prints its python. The signalwire SDK pins an old twilio,
# so it will get a venv of its own.
#
#   scripts/compat-venv.sh twilio      # → target/compat/twilio/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-twilio}
case "$name" in
    twilio) packages=(twilio==9.13.0) ;;
    *) echo "unknown venv $name" >&2; exit 2 ;;
esac
venv=target/compat/$name
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import twilio" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "${packages[@]}" >&2
fi
echo "$PWD/$venv/bin/python"
