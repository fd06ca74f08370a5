"""Answering-machine detection and transcription on Switchboard, driven by Telnyx's official
Python SDK (telnyx 4.189.0).

    python telnyx_speech.py BASE_URL API_KEY PUBLIC_KEY CONNECTION_ID WEBHOOK_HOST:PORT

Dials +15551234 with `answering_machine_detection=detect_beep` and `transcription` from the
answer (the test is the callee: a voicemail greeting, then its beep); waits for
`call.machine.detection.ended` and `call.machine.greeting.ended`; `transcription_start` must fail
with 90054 (one runs already); tells the test to speak ("TRANSCRIBING"); waits for the final
`call.transcription`s of the greeting and of the words (recorded meanwhile with `transcription`,
whose `call.recording.transcription.saved` it waits for); stops the transcription and hangs up. Every webhook
is verified with the SDK's `webhooks.unwrap` (Ed25519). Prints one JSON summary.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import telnyx

BASE, KEY, PUBLIC_KEY, CONNECTION, HOOKS = sys.argv[1:6]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)
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


def wait(check, what, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what + "; webhooks: " + json.dumps(events()))


call = client.calls.dial(
    connection_id=CONNECTION,
    from_="+15550002222",
    to="+15551234",
    answering_machine_detection="detect_beep",
    answering_machine_detection_config={"total_analysis_time_millis": 20000},
    transcription=True,
    transcription_config={"transcription_engine": "B", "transcription_tracks": "inbound"},
).data
ccid = call.call_control_id
wait(lambda: events("call.answered"), "call.answered")
print("ANSWERED", flush=True)
wait(lambda: events("call.machine.greeting.ended"), "call.machine.greeting.ended")
again = None
try:
    client.calls.actions.start_transcription(ccid, transcription_engine="B")
except telnyx.UnprocessableEntityError as e:
    again = e.body["errors"][0]["code"] if isinstance(e.body, dict) and "errors" in e.body else e.body[0]["code"]
# The words are recorded too, and the recording transcribed once saved.
client.calls.actions.start_recording(
    ccid, format="wav", channels="single", recording_track="inbound", transcription=True
)
print("TRANSCRIBING", flush=True)
final = wait(
    lambda: len([e for e in events("call.transcription") if e["payload"]["transcription_data"]["is_final"]]) >= 2,
    "the final call.transcription of the greeting and of the words after it",
)
client.calls.actions.stop_transcription(ccid)
client.calls.actions.stop_recording(ccid)
wait(lambda: events("call.recording.transcription.saved"), "call.recording.transcription.saved", 60)
client.calls.actions.hangup(ccid)
wait(lambda: events("call.hangup"), "call.hangup")
print(json.dumps({
    "call_control_id": ccid,
    "events": [(e["event_type"], e["payload"]) for e in events()],
    "verified": [h["verified"] for h in hooks],
    "again": again,
}))
