"""What the Telnyx SDK scripts share: the webhook server an app runs (every webhook verified
with the SDK's `webhooks.unwrap`, then handed to the app's worker), the 600 Hz WAV it serves
as a prompt, and the error code of an SDK exception."""

import io
import json
import math
import sys
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tone_wav():
    """Two seconds of 600 Hz, 8 kHz 16-bit mono."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(
            int(8000 * math.sin(2 * math.pi * 600 * i / 8000)).to_bytes(2, "little", signed=True)
            for i in range(16000)
        ))
    return out.getvalue()


TONE = tone_wav()


def code_of(e):
    """The Telnyx error code of an SDK exception."""
    return e.body["errors"][0]["code"] if isinstance(e.body, dict) else e.body[0]["code"]


def serve_tone(handler):
    """Answers a GET: /tone.wav is TONE, anything else 404."""
    if handler.path != "/tone.wav":
        handler.send_response(404)
        handler.end_headers()
        return
    handler.send_response(200)
    handler.send_header("Content-Type", "audio/wav")
    handler.send_header("Content-Length", str(len(TONE)))
    handler.end_headers()
    handler.wfile.write(TONE)


def serve(address, client, hooks, work):
    """Listens on `address` (host:port): GET /tone.wav serves TONE; each POSTed webhook is
    verified, appended to `hooks` (body, raw, headers, verdict) and its `data` put on `work`."""

    class Hooks(BaseHTTPRequestHandler):
        def do_GET(self):
            serve_tone(self)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            headers = dict(self.headers.items())
            try:
                event = client.webhooks.unwrap(body, headers=headers)
                verified = event.data.event_type is not None
            except Exception as e:  # a bad signature or timestamp
                print("webhook not verified:", e, file=sys.stderr)
                verified = False
            hooks.append({"body": json.loads(body), "raw": body, "headers": headers, "verified": verified})
            self.send_response(200)
            self.end_headers()
            work.put(json.loads(body)["data"])

        def log_message(self, *args):
            pass

    host, port = address.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def act_on(work, act, errors, failed=None):
    """Runs `act` on each webhook's data from `work`, one at a time, on a thread of its own; a
    failure is printed and listed under errors["acting"] (and `failed`, if given, is called)."""

    def worker():
        while True:
            data = work.get()
            try:
                act(data)
            except Exception as e:
                print("acting on", data["event_type"], "failed:", repr(e), file=sys.stderr)
                errors.setdefault("acting", []).append(repr(e))
                if failed:
                    failed()

    threading.Thread(target=worker, daemon=True).start()
