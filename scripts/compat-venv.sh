#!/usr/bin/env bash
# Creates (once) an environment with a provider's official SDK that the compat tests drive
# Switchboard with, and prints what the tests run it with. The signalwire SDK pins an old
# twilio (6.54), so each SDK has an environment of its own.
#
#   scripts/compat-venv.sh twilio       # → target/compat/twilio/bin/python
#   scripts/compat-venv.sh signalwire   # → target/compat/signalwire/bin/python
#   scripts/compat-venv.sh telnyx       # → target/compat/telnyx/bin/python
#   scripts/compat-venv.sh twilio-node  # → target/compat/twilio-node/node_modules (for NODE_PATH)
#                                       #   (with the `websocket` package of Twilio's stream samples,
#                                       #   `ws` and `openai` for the ConversationRelay app)
#   scripts/compat-venv.sh telnyx-node  # → target/compat/telnyx-node/node_modules
#                                       #   (with `ws`, the app's media-stream socket)
#   scripts/compat-venv.sh jssip        # → target/compat/jssip/node_modules (the browser SDKs:
#                                       #   JsSIP, @telnyx/webrtc, @twilio/voice-sdk;
#                                       #   puppeteer-core, esbuild)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-twilio}
dir=target/compat/$name
# Node packages (name@version …) into $dir/node_modules, once; prints the folder for NODE_PATH.
npm_packages() {
    local p missing=""
    for p in "$@"; do
        [ -f "$dir/node_modules/${p%@*}/package.json" ] || missing=1
    done
    if [ -n "$missing" ]; then
        mkdir -p "$dir"
        npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "$@" >&2
    fi
    echo "$PWD/$dir/node_modules"
    exit 0
}
case "$name" in
    # websockets: the application side of the media-stream tests.
    twilio) packages=(twilio==9.13.0 websockets==15.0.1) module="twilio, websockets" ;;
    signalwire) packages=(signalwire==2.1.1) module=signalwire ;;
    # pynacl: the SDK's webhooks.unwrap verifies Ed25519 with it.
    # openai: the LLM vendor's SDK of the voice-AI app (tests/compat/telnyx_relay_app.py).
    telnyx) packages=(telnyx==4.189.0 pynacl==1.6.2 websockets==15.0.1 openai==3.57.0) module="telnyx, nacl, websockets, openai" ;;
    # websocket: the WebSocket server library of Twilio's media-streams samples; ws and openai
    # (6.30.1: 7.x needs Node 22, Debian has 20): the voice-AI app's socket and LLM vendor SDK
    # (tests/compat/twilio_relay_app.js).
    twilio-node) npm_packages twilio@6.2.0 websocket@1.0.35 ws@8.23.0 openai@6.30.1 ;;
    # 7.24.0 verifies webhooks with Ed25519 (7.6–7.17 used HMAC); ws: the app's media socket.
    telnyx-node) npm_packages telnyx@7.24.0 ws@8.23.0 ;;
    # JsSIP, the SIP-over-WebSocket stack of browser softphones (ws: its socket under Node).
    # puppeteer-core: drives Debian's Chromium, where JsSIP runs as in a browser softphone.
    # esbuild: bundles the SDKs for the page, as an application's build would.
    # @telnyx/webrtc: Telnyx's browser SDK (Verto over WebSocket), run unmodified in the page.
    # @twilio/voice-sdk: Twilio's browser SDK (its signalling over wss://HOST/signal), unmodified.
    jssip) npm_packages jssip@3.13.8 ws@8.23.0 puppeteer-core@25.16.0 esbuild@0.28.2 @telnyx/webrtc@2.27.10 @twilio/voice-sdk@2.18.5 ;;
    *) echo "unknown environment $name" >&2; exit 2 ;;
esac
if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c "import $module" 2>/dev/null; then
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/pip" install -q --disable-pip-version-check "${packages[@]}" >&2
fi
echo "$PWD/$dir/bin/python"
