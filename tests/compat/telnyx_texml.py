"""A TeXML application with Telnyx's official Python SDK (telnyx 4.189.0).

    python telnyx_texml.py BASE_URL API_KEY PUBLIC_KEY ACCOUNT_ID HOOKS_HOST:PORT NUMBER CALLEE

The app serves its TeXML at HOOKS and checks every request Switchboard makes of it as the SDK's
`webhooks.unwrap` checks a webhook (Ed25519 over "{telnyx-timestamp}|{raw body}" with the
account's public key, the timestamp within 300 s), and that a tampered body fails that check.
Through the SDK it creates a TeXML application (voice URL /texml/inbound, status callback
/status) and points NUMBER at it; prints READY.
- A call to NUMBER fetches /texml/inbound: the 600 Hz WAV plays, then a <Gather> (one digit,
  action /texml/gathered) whose digit is printed as GATHERED; that document hangs up, and the
  `completed` status callback prints COMPLETED.
- On DIAL (stdin): `texml.calls.create` on the application to CALLEE with inline TeXML (the WAV,
  then a long pause) and `CallerId` "Texml Bot"; prints CALLED once the call is in progress (`texml.accounts.calls.retrieve`).
  Then it records that call through TeXML's REST API (dual channels, status callback
  /recording): paused, resumed and listed; a PlayBeep is refused. And streams it (TeXML's REST
  Streams, named "bot") to this script's WebSocket server on the next port, which gets
  Telnyx's `start` frame; the stream is stopped by its name and the socket closes.
- On REDIRECT (stdin): `texml.accounts.calls.update` with Url /texml/redirected, a document that
  hangs up. The recording ends with the call: its `completed` status callback comes, it is read
  back through the account's Recordings and deleted.
- On ROOM (stdin): a call to CALLEE whose inline TeXML dials the conference "room1"; through
  TeXML's REST API the room is found by name and read, its participant read, muted, announced
  to (the app's /announce document plays the WAV) and taken out (the call's TeXML goes on and
  hangs up); the room is over then. Prints ROOMED.
Prints one JSON summary when the redirected document has been fetched and the callee's call has
its `completed` callback, with the account's calls as `texml.accounts.calls.retrieve_calls`
lists them (filtered by To; one to a page).
"""

import base64
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import telnyx
from websockets.sync.server import serve as serve_ws
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from telnyx_app import code_of, serve_tone

BASE, KEY, PUBLIC_KEY, ACCOUNT_ID, HOOKS, NUMBER, CALLEE = sys.argv[1:8]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)
verify_key = VerifyKey(base64.b64decode(PUBLIC_KEY))

requests = []
errors = {}
state = {}
done = threading.Event()
roomed = threading.Event()


def verified(body, headers):
    """What the SDK's unwrap checks before it parses the body."""
    headers = {k.lower(): v for k, v in headers.items()}
    timestamp = headers.get("telnyx-timestamp")
    signature = headers.get("telnyx-signature-ed25519")
    if timestamp is None or signature is None or abs(time.time() - int(timestamp)) > 300:
        return False
    try:
        verify_key.verify(f"{timestamp}|{body}".encode(), base64.b64decode(signature))
    except BadSignatureError:
        return False
    return True


INBOUND = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Play>http://%s/tone.wav</Play>
  <Gather numDigits="1" timeout="15" action="/texml/gathered"/>
</Response>""" % HOOKS
HANGUP = "<Response><Hangup/></Response>"
OUTBOUND = "<Response><Play>http://%s/tone.wav</Play><Pause length=\"30\"/></Response>" % HOOKS


class App(BaseHTTPRequestHandler):
    def do_GET(self):
        serve_tone(self)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        headers = dict(self.headers.items())
        params = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        ok = verified(body, headers)
        if ok and "tampered" not in state:
            state["tampered"] = not verified(body + "&x=1", headers)
        requests.append({"path": self.path, "params": params, "verified": ok,
                         "content_type": self.headers.get("Content-Type")})
        document = None
        if self.path == "/texml/inbound":
            document = INBOUND
        elif self.path == "/texml/gathered":
            print("GATHERED", params.get("Digits"), flush=True)
            document = HANGUP
        elif self.path == "/texml/redirected":
            document = HANGUP
        elif self.path == "/announce":
            document = "<Response><Play>http://%s/tone.wav</Play></Response>" % HOOKS
        elif self.path == "/recording" and params.get("RecordingStatus") == "completed":
            state["recording_done"] = True
        elif self.path == "/status" and params.get("CallStatus") == "completed":
            if params.get("To") == NUMBER:
                print("COMPLETED", flush=True)
            elif params.get("To") == CALLEE:
                done.set()
        self.send_response(200)
        if document is not None:
            self.send_header("Content-Type", "application/xml")
            self.end_headers()
            self.wfile.write(document.encode())
        else:
            self.end_headers()

    def log_message(self, *args):
        pass


host, port = HOOKS.rsplit(":", 1)
server = ThreadingHTTPServer((host, int(port)), App)
threading.Thread(target=server.serve_forever, daemon=True).start()

# The stream's application: the frames it gets, and whether its socket closed.
stream_frames = []
stream_closed = threading.Event()


def stream_app(ws):
    try:
        for message in ws:
            stream_frames.append(json.loads(message))
    finally:
        stream_closed.set()


ws_server = serve_ws(stream_app, host, int(port) + 1)
threading.Thread(target=ws_server.serve_forever, daemon=True).start()
STREAM_URL = "ws://%s:%d/stream" % (host, int(port) + 1)

app = client.texml_applications.create(
    friendly_name="switchboard texml",
    voice_url="http://%s/texml/inbound" % HOOKS,
    voice_method="post",
    status_callback="http://%s/status" % HOOKS,
)
APP = app.data.id
state["application"] = app.data.to_dict(mode="json")
state["listed"] = [a.id for a in client.texml_applications.list()]
number = next(n for n in client.phone_numbers.list() if n.phone_number == NUMBER)
client.phone_numbers.update(number.id, connection_id=APP)
try:
    client.texml.calls.create("999", from_=NUMBER, to=CALLEE, texml=HANGUP)
except telnyx.UnprocessableEntityError as e:
    errors["unknown_application"] = code_of(e)
# What a call create asks that is not carried out here is refused, not dropped.
try:
    # This method's body is a union the SDK sends with the names as typed (snake_case).
    client.texml.accounts.calls.calls(ACCOUNT_ID, body={
        "application_sid": APP, "from_": NUMBER, "to": CALLEE, "texml": HANGUP, "preferred_codecs": "PCMA"})
except telnyx.UnprocessableEntityError as e:
    errors["preferred_codecs"] = code_of(e)
print("READY", flush=True)


def commands():
    for line in sys.stdin:
        line = line.strip()
        if line == "DIAL":
            # CallerId (the From display name) is not a parameter of this SDK method.
            created = client.texml.calls.create(APP, from_=NUMBER, to=CALLEE, texml=OUTBOUND,
                                                extra_body={"CallerId": "Texml Bot"})
            state["created"] = created.to_dict(mode="json")
            deadline = time.time() + 15
            while time.time() < deadline:
                call = client.texml.accounts.calls.retrieve(created.call_sid, account_sid=ACCOUNT_ID)
                if call.status == "in-progress":
                    break
                time.sleep(0.1)
            state["retrieved"] = call.to_dict(mode="json")
            sid, recordings = created.call_sid, client.texml.accounts.calls.recordings
            rec = client.texml.accounts.calls.recordings_json.recordings_json(
                sid, account_sid=ACCOUNT_ID, recording_channels="dual",
                recording_status_callback="http://%s/recording" % HOOKS,
                recording_status_callback_event="in-progress completed")
            state["recording"] = rec.to_dict(mode="json")
            state["paused"] = recordings.recording_sid_json(
                rec.sid, account_sid=ACCOUNT_ID, call_sid=sid, status="paused").to_dict(mode="json")
            state["resumed"] = recordings.recording_sid_json(
                rec.sid, account_sid=ACCOUNT_ID, call_sid=sid, status="in-progress").to_dict(mode="json")
            listed = client.texml.accounts.calls.recordings_json.retrieve_recordings_json(sid, account_sid=ACCOUNT_ID)
            state["call_recordings"] = [r.sid for r in listed.recordings]
            try:
                client.texml.accounts.calls.recordings_json.recordings_json(sid, account_sid=ACCOUNT_ID, play_beep=True)
            except telnyx.UnprocessableEntityError as e:
                errors["play_beep"] = code_of(e)
            streamed = client.texml.accounts.calls.streams_json(
                sid, account_sid=ACCOUNT_ID, url=STREAM_URL, name="bot", track="inbound_track",
                status_callback="http://%s/stream-status" % HOOKS)
            state["stream"] = streamed.to_dict(mode="json")
            deadline = time.time() + 10
            while not any(f.get("event") == "start" for f in stream_frames) and time.time() < deadline:
                time.sleep(0.05)
            stopped = client.texml.accounts.calls.streams.streaming_sid_json(
                "bot", account_sid=ACCOUNT_ID, call_sid=sid, status="stopped")
            state["stream_stopped"] = stopped.to_dict(mode="json")
            state["stream_closed"] = stream_closed.wait(10)
            state["stream_start"] = next((f for f in stream_frames if f.get("event") == "start"), None)
            print("CALLED", flush=True)
        elif line == "ROOM":
            room = ('<Response><Dial><Conference beep="false" waitUrl="">room1</Conference></Dial>'
                    '<Hangup/></Response>')
            placed = client.texml.calls.create(APP, from_=NUMBER, to=CALLEE, texml=room)
            conferences = client.texml.accounts.conferences
            deadline = time.time() + 15
            found = []
            while not found and time.time() < deadline:
                found = conferences.retrieve_conferences(ACCOUNT_ID, friendly_name="room1").conferences
                time.sleep(0.1)
            cf = found[0].sid
            participants = conferences.participants
            people = []
            while not people and time.time() < deadline:
                people = participants.retrieve_participants(cf, account_sid=ACCOUNT_ID).participants
                time.sleep(0.1)
            state["room"] = conferences.retrieve(cf, account_sid=ACCOUNT_ID).to_dict(mode="json")
            state["room_people"] = [p.to_dict(mode="json") for p in people]
            one = participants.retrieve(placed.call_sid, account_sid=ACCOUNT_ID, conference_sid=cf)
            state["room_one"] = one.to_dict(mode="json")
            muted = participants.update(placed.call_sid, account_sid=ACCOUNT_ID, conference_sid=cf, muted=True)
            state["room_muted"] = muted.to_dict(mode="json")
            conferences.update(cf, account_sid=ACCOUNT_ID, announce_url="http://%s/announce" % HOOKS)
            deadline = time.time() + 15
            while not any(r["path"] == "/announce" for r in requests) and time.time() < deadline:
                time.sleep(0.1)
            try:
                participants.update(placed.call_sid, account_sid=ACCOUNT_ID, conference_sid=cf, coaching=True)
            except telnyx.UnprocessableEntityError as e:
                errors["room_coaching"] = code_of(e)
            participants.delete(placed.call_sid, account_sid=ACCOUNT_ID, conference_sid=cf)
            deadline = time.time() + 15
            while time.time() < deadline:
                over = conferences.retrieve(cf, account_sid=ACCOUNT_ID)
                if over.status == "completed":
                    break
                time.sleep(0.1)
            state["room_over"] = over.to_dict(mode="json")
            state["room_call"] = placed.call_sid
            print("ROOMED", flush=True)
            roomed.set()
        elif line == "REDIRECT":
            updated = client.texml.accounts.calls.update(
                state["created"]["call_sid"], account_sid=ACCOUNT_ID,
                url="http://%s/texml/redirected" % HOOKS, method="POST")
            state["updated"] = updated.to_dict(mode="json")


threading.Thread(target=commands, daemon=True).start()
done.wait(90)
roomed.wait(60)
time.sleep(0.3)
# The recording ended with the call: reported, read back from the account's, deleted.
deadline = time.time() + 15
while "recording_done" not in state and time.time() < deadline:
    time.sleep(0.1)
account_recordings = client.texml.accounts.recordings.json
rec_sid = state["recording"]["sid"]
state["recording_after"] = account_recordings.retrieve_recording_sid_json(rec_sid, account_sid=ACCOUNT_ID).to_dict(mode="json")
page = client.texml.accounts.retrieve_recordings_json(ACCOUNT_ID, page_size=1)
state["account_recordings"] = page.to_dict(mode="json")
state["transcriptions"] = client.texml.accounts.retrieve_transcriptions_json(ACCOUNT_ID).to_dict(mode="json")
try:
    client.texml.accounts.transcriptions.json.retrieve_recording_transcription_sid_json("TR" + "0" * 32, account_sid=ACCOUNT_ID)
except telnyx.NotFoundError as e:
    errors["no_transcription"] = code_of(e)
account_recordings.delete_recording_sid_json(rec_sid, account_sid=ACCOUNT_ID)
try:
    account_recordings.retrieve_recording_sid_json(rec_sid, account_sid=ACCOUNT_ID)
except telnyx.NotFoundError as e:
    errors["deleted"] = code_of(e)
# The account's calls, listed: filtered by To, and one to a page.
to_callee = client.texml.accounts.calls.retrieve_calls(ACCOUNT_ID, to=CALLEE)
state["listed_to_callee"] = [c.sid for c in to_callee.calls]
first_page = client.texml.accounts.calls.retrieve_calls(ACCOUNT_ID, page_size=1)
state["first_page"] = first_page.to_dict(mode="json")
try:
    client.texml.accounts.calls.retrieve_calls(ACCOUNT_ID, start_time="yesterday")
except telnyx.UnprocessableEntityError as e:
    errors["bad_start_time"] = code_of(e)
# Queues through TeXML's REST API: made, listed, read, resized, a second of the same name
# refused, deleted.
queues = client.texml.accounts.queues
made = queues.create(ACCOUNT_ID, friendly_name="support", max_size=10)
state["queue"] = made.to_dict(mode="json")
state["queues"] = [q.sid for q in queues.list(ACCOUNT_ID).queues]
state["queue_read"] = queues.retrieve(made.sid, account_sid=ACCOUNT_ID).to_dict(mode="json")
state["queue_resized"] = queues.update(made.sid, account_sid=ACCOUNT_ID, max_size=20).to_dict(mode="json")
try:
    queues.create(ACCOUNT_ID, friendly_name="support")
except telnyx.UnprocessableEntityError as e:
    errors["queue_name_taken"] = code_of(e)
queues.delete(made.sid, account_sid=ACCOUNT_ID)
try:
    queues.retrieve(made.sid, account_sid=ACCOUNT_ID)
except telnyx.NotFoundError as e:
    errors["queue_deleted"] = code_of(e)
print(json.dumps({"requests": requests, "state": state, "errors": errors}))
