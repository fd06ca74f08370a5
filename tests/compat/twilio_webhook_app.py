"""A voice application written against Twilio's official Python SDK, for Switchboard's tests.

It answers TwiML built with `twilio.twiml.voice_response.VoiceResponse` and checks every
request's X-Twilio-Signature with `twilio.request_validator.RequestValidator`, printing one JSON
line per request (path, method, whether the signature validated, the parameters).

    python twilio_webhook_app.py AUTH_TOKEN BIND_IP      # prints "listening PORT" first
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

TOKEN, BIND_IP = sys.argv[1], sys.argv[2]
VALIDATOR = RequestValidator(TOKEN)


def document(path):
    response = VoiceResponse()
    if path == "/voice":
        gather = response.gather(num_digits=1, action="/key", timeout=1)
        gather.say("Hello from an application built with the official SDK.", voice="woman")
        response.redirect("/bye?step=2", method="GET")
    elif path == "/bye":
        response.say("Goodbye.", voice="Polly.Matthew")
        response.hangup()
    else:
        return None
    return str(response)


class Handler(BaseHTTPRequestHandler):
    def _serve(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        url = "http://%s%s" % (self.headers["Host"], self.path)
        params = dict(parse_qsl(body, keep_blank_values=True)) if method == "POST" else {}
        signature = self.headers.get("X-Twilio-Signature", "")
        valid = VALIDATOR.validate(url, params, signature)
        path = urlsplit(self.path).path
        query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        print(json.dumps({"path": path, "method": method, "valid": valid,
                          "params": params or query}), flush=True)
        text = document(path) or ""
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(text.encode())))
        self.end_headers()
        self.wfile.write(text.encode())

    def do_POST(self):
        self._serve("POST")

    def do_GET(self):
        self._serve("GET")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((BIND_IP, 0), Handler)
print("listening %d" % server.server_address[1], flush=True)
server.serve_forever()
