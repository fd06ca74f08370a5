"""<Dial><Application> with Twilio's official Python SDK: a caller handed to a TwiML App.

    python twilio_application_dial.py BASE_URL ACCOUNT_SID AUTH_TOKEN LISTEN ACCEPT REJECT MISSING

Creates a TwiML App (`applications.create`) whose voice URL is this script's /app, and answers
TwiML built with `VoiceResponse` on LISTEN (host:port), checking every request's signature with
`RequestValidator`:
- a call to ACCEPT runs /voice: `<Dial action=/after>` of the App with `customerId` and two
  `<Parameter>`s. The App (/app) plays /tone.wav and gathers a digit; on it (/app-key) it hangs
  up with `<Hangup><Parameter name="paid" value="yes"/>`, which /after must get as
  `ReturnParam_paid`;
- a call to REJECT runs /voice-reject: the App dialed with `copyParentTo` (so the App is told
  the caller's To, REJECT) rejects it busy with a `<Parameter>`, which /after-reject gets;
- a call to MISSING runs /voice-missing: an App that does not exist; /after-missing gets
  DialCallStatus failed and the call's notifications hold Twilio's 21218.
Prints `CALL <which>` and waits for `go` (the test places the call and listens), checks what
the requests carried, and prints `ok` at the end.
"""

import io
import json
import math
import sys
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from compat_app import wait
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

BASE, ACCOUNT, TOKEN, LISTEN, ACCEPT, REJECT, MISSING = sys.argv[1:8]
HOST, PORT = LISTEN.rsplit(":", 1)
VALIDATOR = RequestValidator(TOKEN)
client = Client(ACCOUNT, TOKEN)
client.api.base_url = BASE
requests = []
app = {}


def tone_wav():
    """A second of 1 kHz, 8 kHz 16-bit mono."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(
            int(8000 * math.sin(2 * math.pi * 1000 * i / 8000)).to_bytes(2, "little", signed=True)
            for i in range(8000)))
    return out.getvalue()


TONE = tone_wav()


def document(path, params):
    r = VoiceResponse()
    if path == "/voice":
        dial = r.dial(action="/after", method="POST")
        application = dial.application(customer_id="acme-support")
        application.application_sid(app["sid"])
        application.parameter(name="ticket", value="9876")
        application.parameter(name="tier", value="gold")
    elif path == "/voice-reject":
        dial = r.dial(action="/after-reject")
        dial.application(copy_parent_to=True).application_sid(app["sid"])
    elif path == "/voice-missing":
        dial = r.dial(action="/after-missing")
        dial.application().application_sid("AP" + "0" * 32)
    elif path == "/app":
        if params.get("To") == REJECT:
            r.reject(reason="busy").parameter(name="why", value="closed")
        else:
            gather = r.gather(num_digits=1, action="/app-key", timeout=10)
            gather.play("/tone.wav")
    elif path == "/app-key":
        r.hangup().parameter(name="paid", value="yes")
    else:
        r.hangup()
    return str(r)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/tone.wav":
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(TONE)))
            self.end_headers()
            self.wfile.write(TONE)
        else:
            self.send_response(404)
            self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(body, keep_blank_values=True))
        url = "http://%s%s" % (self.headers["Host"], self.path)
        valid = VALIDATOR.validate(url, params, self.headers.get("X-Twilio-Signature", ""))
        path = urlsplit(self.path).path
        requests.append({"path": path, "valid": valid, "params": params})
        text = document(path, params).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass


def call(which):
    print("CALL " + which, flush=True)
    assert sys.stdin.readline().strip() == "go"


def hits(path):
    return [r for r in list(requests) if r["path"] == path]


server = ThreadingHTTPServer((HOST, int(PORT)), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
created = client.applications.create(friendly_name="support desk", voice_url="http://%s/app" % LISTEN)
app["sid"] = created.sid

# The App takes the call, is told the dial's parameters, and gives one back as it hangs up.
call("accept")
after = wait(lambda: hits("/after"), "the dial's action")[0]["params"]
voice = hits("/voice")[0]["params"]
first = hits("/app")[0]["params"]
assert first["ApplicationSid"] == app["sid"] and first["To"] == app["sid"], first
assert first["From"] == voice["From"] and first["AccountSid"] == ACCOUNT, (first, voice)
assert first["CustomerId"] == "acme-support" and first["Direction"] == "inbound", first
assert (first["Param_ticket"], first["Param_tier"]) == ("9876", "gold"), first
assert first["CallSid"] != voice["CallSid"], first
assert hits("/app-key")[0]["params"]["Digits"] == "7", hits("/app-key")
assert after["DialCallStatus"] == "completed" and after["ReturnParam_paid"] == "yes", after
assert after["CallSid"] == voice["CallSid"] and after["DialCallSid"].startswith("CA"), after
assert after["DialBridged"] == "true", after

# copyParentTo: the App is told the caller's To; its <Reject> parameters come back.
call("reject")
after = wait(lambda: hits("/after-reject"), "the rejected dial's action")[0]["params"]
told = hits("/app")[-1]["params"]
assert told["To"] == REJECT and told["CustomerId"] == ACCOUNT, told
assert after["DialCallStatus"] == "busy" and after["ReturnParam_why"] == "closed", after
assert "ReturnParam_paid" not in after, after

# An App that is not there: the dial fails, and the call's notifications say why.
call("missing")
after = wait(lambda: hits("/after-missing"), "the failed dial's action")[0]["params"]
assert after["DialCallStatus"] == "failed" and not any(k.startswith("ReturnParam_") for k in after), after
notes = wait(lambda: client.calls(after["CallSid"]).notifications.list(), "the notification")
assert [n.error_code for n in notes] == ["21218"], [(n.error_code, n.message_text) for n in notes]

assert all(r["valid"] for r in requests), [r for r in requests if not r["valid"]]
print(json.dumps({"requests": len(requests)}), flush=True)
print("ok", flush=True)
