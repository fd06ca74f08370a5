"""Media streams with Twilio's official Python SDK on Switchboard.

    python twilio_media_streams.py BASE_URL ACCOUNT_SID AUTH_TOKEN

A call to +15551234 (a SIPp callee answers) runs TwiML built with the SDK's VoiceResponse:
<Start><Stream> of both tracks to this script's WebSocket server (the `websockets` package),
then a long <Pause>. The server checks every upgrade's X-Twilio-Signature with the SDK's
RequestValidator and keeps what each stream sends. The SDK then starts a second stream
through the Streams resource (with a parameter), stops it by name, stops the first by its
SID, and hangs up; every status callback is validated too.
"""

import asyncio
import json
import sys
import threading

from compat_app import App, twilio_validator, wait
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Start, VoiceResponse
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

BASE, ACCOUNT, TOKEN = sys.argv[1:4]
c = Client(ACCOUNT, TOKEN)
c.api.base_url = BASE
VALIDATOR = RequestValidator(TOKEN)

# Status callbacks are answered with nothing (204) and recorded with their verdict.
app = App(twilio_validator(TOKEN), lambda path, params: None)

# What each stream (by its path) sent, and whether its upgrade was signed right.
streams = {}
ws_host = []


async def handler(conn):
    path = conn.request.path
    url = "ws://%s%s" % (ws_host[0], path)
    signature = conn.request.headers.get("X-Twilio-Signature", "")
    stream = {"valid": VALIDATOR.validate(url, {}, signature), "messages": [], "closed": False}
    streams[path] = stream
    try:
        async for text in conn:
            stream["messages"].append(json.loads(text))
    except ConnectionClosed:
        pass
    stream["closed"] = True


def websocket_server():
    async def main():
        async with serve(handler, "127.0.0.1", 0) as server:
            ws_host.append("127.0.0.1:%d" % server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


threading.Thread(target=websocket_server, daemon=True).start()
wait(lambda: ws_host, "the WebSocket server")
WS = "ws://" + ws_host[0]


def events(path, name):
    return [m for m in streams.get(path, {}).get("messages", []) if m["event"] == name]


twiml = VoiceResponse()
start = Start()
start.stream(name="fork", url=WS + "/fork", track="both_tracks", status_callback=app.base + "/stream-status")
twiml.append(start)
twiml.pause(length=30)
call = c.calls.create(to="+15551234", from_="+15550001", twiml=str(twiml))

# The fork: signed, its start message, then media on both tracks.
wait(lambda: events("/fork", "start"), "the fork's start")
fork = streams["/fork"]
assert fork["valid"], "the fork's upgrade is signed"
first = fork["messages"][0]
assert first == {"event": "connected", "protocol": "Call", "version": "1.0.0"}, first
s = events("/fork", "start")[0]
fork_sid = s["streamSid"]
assert fork_sid.startswith("MZ") and s["sequenceNumber"] == "1", s
assert s["start"]["callSid"] == call.sid and s["start"]["accountSid"] == ACCOUNT, s
assert s["start"]["tracks"] == ["inbound", "outbound"], s
wait(lambda: len(events("/fork", "media")) >= 50, "media on the fork")
tracks = {m["media"]["track"] for m in events("/fork", "media")}
assert tracks == {"inbound", "outbound"}, tracks

# A second stream through the REST API, with a parameter; the SDK reads the resource back.
rest = c.calls(call.sid).streams.create(
    url=WS + "/rest",
    name="rest",
    track="inbound_track",
    status_callback=app.base + "/stream-status",
    parameter1_name="agent",
    parameter1_value="a1",
)
assert rest.sid.startswith("MZ") and rest.status == "in-progress" and rest.name == "rest", rest
assert rest.call_sid == call.sid and rest.account_sid == ACCOUNT
wait(lambda: events("/rest", "start"), "the REST stream's start")
r = events("/rest", "start")[0]
assert r["streamSid"] == rest.sid and streams["/rest"]["valid"], r
assert r["start"]["customParameters"] == {"agent": "a1"} and r["start"]["tracks"] == ["inbound"], r

# Stopped by name, then the fork by its SID: each gets `stop` and a close.
stopped = c.calls(call.sid).streams("rest").update(status="stopped")
assert stopped.status == "stopped" and stopped.sid == rest.sid, stopped.status
wait(lambda: streams["/rest"]["closed"] and events("/rest", "stop"), "the REST stream's end")
assert events("/rest", "stop")[0]["stop"] == {"accountSid": ACCOUNT, "callSid": call.sid}
c.calls(call.sid).streams(fork_sid).update(status="stopped")
wait(lambda: fork["closed"] and events("/fork", "stop"), "the fork's end")
try:
    c.calls(call.sid).streams("no-such-stream").update(status="stopped")
    raise AssertionError("stopping an unknown stream")
except TwilioRestException as e:
    assert (e.status, e.code) == (404, 20404), (e.status, e.code)

# Four validated status callbacks: each stream started, then stopped.
wait(lambda: len(app.requests("/stream-status")) >= 4, "the stream callbacks")
seen = sorted((p["StreamSid"], p["StreamEvent"]) for p in app.requests("/stream-status"))
assert seen == sorted([(fork_sid, "stream-started"), (fork_sid, "stream-stopped"),
                       (rest.sid, "stream-started"), (rest.sid, "stream-stopped")]), seen
names = {p["StreamSid"]: p["StreamName"] for p in app.requests("/stream-status")}
assert names == {fork_sid: "fork", rest.sid: "rest"}, names
assert app.all_valid(), "every callback validates"

c.calls(call.sid).update(status="completed")
wait(lambda: c.calls(call.sid).fetch().status == "completed", "the hang-up")
print("ok")
