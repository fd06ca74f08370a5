"""The seed voice-AI app on Switchboard, with Telnyx's official Python SDK (telnyx 4.189.0).

    python telnyx_call_control.py BASE_URL API_KEY PUBLIC_KEY CONNECTION_ID WEBHOOK_HOST:PORT

It dials +15551234 (the test's SIPp callee answers; the test is the callee's RTP) with a
bidirectional stream (`stream_bidirectional_mode=rtp`, PCMU 8000, both tracks, an auth token),
`client_state`, `command_id`, a `from_display_name` and a custom header (the callee checks its
INVITE for them); repeats the dial with the same `command_id` (the same call comes
back); verifies every webhook with the SDK's `webhooks.unwrap` (Ed25519); talks into the call
over the socket (a 600 Hz tone the test listens for at the callee) and listens for the callee
(the test sends 1 kHz, then noise); turns on `suppression_start {direction: both}` and measures
the callee's noise again (the median RMS of its noise frames before; every frame's RMS after);
updates its
client_state; hangs up with `actions/hangup` (twice, with one command_id); and checks the errors
the SDK raises for a dead call, a missing parameter and a wrong key. Prints one JSON summary.
"""

import asyncio
import base64
import json
import math
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import telnyx
from websockets.asyncio.server import serve

BASE, KEY, PUBLIC_KEY, CONNECTION, HOOKS = sys.argv[1:6]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)

# Webhooks: each kept with the SDK's verdict on its signature.
hooks = []


class Hooks(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        try:
            event = client.webhooks.unwrap(body, headers=dict(self.headers.items()))
            verified = event.data.event_type is not None
        except Exception as e:  # a bad signature or timestamp
            print("webhook not verified:", e, file=sys.stderr)
            verified = False
        hooks.append({"body": json.loads(body), "verified": verified})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


host, port = HOOKS.rsplit(":", 1)
server = ThreadingHTTPServer((host, int(port)), Hooks)
threading.Thread(target=server.serve_forever, daemon=True).start()


def events(kind=None):
    return [h["body"]["data"] for h in hooks if kind is None or h["body"]["data"]["event_type"] == kind]


def wait(check, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what + "; webhooks: " + json.dumps(events()))


# μ-law, as G.711 defines it.
def ulaw_decode(b):
    b = ~b & 0xFF
    t = ((b & 0x0F) << 3) + 0x84
    t <<= (b & 0x70) >> 4
    return (0x84 - t) if (b & 0x80) else (t - 0x84)


def ulaw_encode(s):
    s = max(-32635, min(32635, s))
    sign = 0x80 if s < 0 else 0
    s = abs(s) + 0x84
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not (s & mask):
        exponent -= 1
        mask >>= 1
    mantissa = (s >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def goertzel(samples, freq, rate=8000):
    """Power at `freq` relative to the signal's power (1.0 for a pure tone)."""
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    energy = sum(x * x for x in samples) or 1.0
    return 2 * power / (len(samples) * energy)


stream = {"token_header": None, "messages": [], "tracks": set(), "tone_frames": 0}
# The RMS of the callee's noise frames, before and after suppression_start.
noise = {"before": [], "after": [], "settling": []}
phase = ["before"]
ws_host = []


async def handler(conn):
    stream["token_header"] = conn.request.headers.get("x-telnyx-streaming-auth-token")
    talk = None
    async for text in conn:
        m = json.loads(text)
        stream["messages"].append({k: v for k, v in m.items() if k != "media"})
        if m["event"] == "start" and talk is None:
            talk = asyncio.create_task(speak(conn))
        if m["event"] == "media":
            stream["tracks"].add(m["media"]["track"])
            if m["media"]["track"] == "inbound":
                pcm = [ulaw_decode(b) for b in base64.b64decode(m["media"]["payload"])]
                rms = math.sqrt(sum(x * x for x in pcm) / max(len(pcm), 1))
                if len(pcm) >= 160 and max(abs(x) for x in pcm) > 2000 and goertzel(pcm, 1000) > 0.7:
                    stream["tone_frames"] += 1
                elif len(pcm) >= 160 and (phase[0] == "after" or rms > 300):
                    # Before: the callee's noise frames; after: every frame (suppressed noise
                    # and silence look alike; the test finds the noise by its timing).
                    noise[phase[0]].append(rms)


async def speak(conn):
    """A 600 Hz tone for 4 s, in 100 ms messages at real-time pace, then a mark."""
    n = 0
    for _ in range(40):
        chunk = bytes(ulaw_encode(int(8000 * math.sin(2 * math.pi * 600 * (n + i) / 8000))) for i in range(800))
        n += 800
        await conn.send(json.dumps({"event": "media", "media": {"payload": base64.b64encode(chunk).decode()}}))
        await asyncio.sleep(0.1)
    await conn.send(json.dumps({"event": "mark", "mark": {"name": "spoken"}}))


def websocket_server():
    async def main():
        async with serve(handler, "127.0.0.1", 0) as s:
            ws_host.append("127.0.0.1:%d" % s.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


threading.Thread(target=websocket_server, daemon=True).start()
wait(lambda: ws_host, "the WebSocket server")

state = base64.b64encode(b"seed-app").decode()
dial = dict(
    connection_id=CONNECTION,
    from_="+15550002222",
    to="+15551234",
    stream_url="ws://%s/media" % ws_host[0],
    stream_track="both_tracks",
    stream_bidirectional_mode="rtp",
    stream_bidirectional_codec="PCMU",
    stream_bidirectional_sampling_rate=8000,
    stream_auth_token="s3cret-token",
    client_state=state,
    command_id="dial-1",
    from_display_name="Seed Bot",
    custom_headers=[{"name": "X-Seed-Id", "value": "42"}],
)
first = client.calls.dial(**dial).data
again = client.calls.dial(**dial).data
assert again.call_control_id == first.call_control_id, (first, again)
ccid = first.call_control_id
assert ccid.startswith("v3:") and first.is_alive is False and first.client_state == state, first

wait(lambda: events("call.answered"), "call.answered")
wait(lambda: events("streaming.started"), "streaming.started")
# The test hears the 600 Hz and answers with 1 kHz, then noise, which arrive on the inbound
# track.
print("TALKING", flush=True)
wait(lambda: stream["tone_frames"] >= 50, "the callee's 1 kHz on the inbound track", 30)
# Nearly all of the callee's 2 s (100 frames) of noise first: none of it is still on its way
# once suppression is on (a tap may drop a frame or two under load, so not all 100).
wait(lambda: len(noise["before"]) >= 90, "the callee's noise", 30)
assert client.calls.actions.start_noise_suppression(ccid, direction="both").data.result == "ok"
phase[0] = "settling"
time.sleep(0.5)
phase[0] = "after"
# The test sends the same noise again: what reaches the app now is suppressed.
print("SUPPRESSED", flush=True)
wait(lambda: len(noise["after"]) >= 200, "4 s of the callee's audio, suppressed", 30)
status = client.calls.retrieve_status(ccid).data
assert status.is_alive is True and status.client_state == state, status
after = base64.b64encode(b"after").decode()
client.calls.actions.update_client_state(ccid, client_state=after)
assert client.calls.actions.hangup(ccid, command_id="bye").data.result == "ok"
wait(lambda: events("call.hangup"), "call.hangup")
# The same command_id again: ignored, the same answer.
assert client.calls.actions.hangup(ccid, command_id="bye").data.result == "ok"
wait(lambda: events("streaming.stopped"), "streaming.stopped")

errors = {}
try:
    client.calls.actions.speak(ccid, payload="too late", voice="female")
except telnyx.UnprocessableEntityError as e:
    errors["ended"] = e.body["errors"][0]["code"] if isinstance(e.body, dict) and "errors" in e.body else e.body[0]["code"]
try:
    client.calls.dial(connection_id=CONNECTION, from_="+15550002222", to="")
except telnyx.UnprocessableEntityError as e:
    errors["missing"] = e.body["errors"][0] if isinstance(e.body, dict) and "errors" in e.body else e.body[0]
try:
    telnyx.Telnyx(api_key="KEY-not-a-key-of-anyone", base_url=BASE + "/v2", max_retries=0).calls.retrieve_status(ccid)
except telnyx.AuthenticationError as e:
    errors["auth"] = e.status_code
status = client.calls.retrieve_status(ccid).data

print(json.dumps({
    "call_control_id": ccid,
    "events": [(e["event_type"], e["payload"]) for e in events()],
    "verified": [h["verified"] for h in hooks],
    "stream": {
        "token_header": stream["token_header"],
        "events": [m["event"] for m in stream["messages"]],
        "start": next((m for m in stream["messages"] if m["event"] == "start"), None),
        "tracks": sorted(stream["tracks"]),
        "tone_frames": stream["tone_frames"],
    },
    "noise_rms": {
        "before": sorted(noise["before"])[len(noise["before"]) // 2],
        "after": [round(x) for x in noise["after"][:250]],
    },
    "final_status": {"is_alive": status.is_alive, "client_state": status.client_state},
    "errors": errors,
}))
