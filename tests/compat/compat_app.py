"""What the compat scripts share: a loopback webhook application that answers every request
and records it with the verdict of the provider's signature validator, and a wait loop."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


class App:
    """An application on 127.0.0.1: `validate(url, params, headers)` judges each request's
    signature (for a GET, `params` is empty: they are in the URL); `respond(path, params)`
    gives the body (TwiML), or None for an empty 204. Requests land in `asked` as
    (path without the query, params, signature valid)."""

    def __init__(self, validate, respond):
        self.asked = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def handle_request(self, params, signed):
                path = self.path.partition("?")[0]
                url = "http://%s%s" % (self.headers["Host"], self.path)
                app.asked.append((path, params, validate(url, signed, self.headers)))
                text = respond(path, params)
                if text is None:
                    self.send_response(204)
                    self.end_headers()
                    return
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = dict(parse_qsl(body, keep_blank_values=True))
                self.handle_request(params, params)

            def do_GET(self):
                query = self.path.partition("?")[2]
                self.handle_request(dict(parse_qsl(query, keep_blank_values=True)), {})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = "http://127.0.0.1:%d" % self.server.server_address[1]

    def requests(self, path, call=None):
        """The parameters of the requests to `path` (of one call when `call` is given)."""
        return [p for x, p, _ in self.asked if x == path and (call is None or p.get("CallSid") == call)]

    def all_valid(self):
        return all(valid for _, _, valid in self.asked)


def twilio_validator(token):
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(token)
    return lambda url, params, headers: validator.validate(url, params, headers.get("X-Twilio-Signature", ""))


def wait(check, what, seconds=15):
    """Polls `check` until it gives something true, which it returns."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)
