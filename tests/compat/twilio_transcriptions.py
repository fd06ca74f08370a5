"""Real-time transcription of a live call through Twilio's official Python SDK, changed only in
its base URL: `calls(sid).transcriptions.create(...)`, then `.transcriptions(name).update(
status="stopped")` once the test (the caller) has spoken.

    python twilio_transcriptions.py BASE_URL ACCOUNT_SID AUTH_TOKEN CALL_SID CALLBACK_URL

Prints "STARTED", waits for a line on stdin, stops it, and prints one JSON summary.
"""

import json
import sys

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN, CALL, CALLBACK = sys.argv[1:6]
client = Client(ACCOUNT, TOKEN)
client.api.base_url = BASE

started = client.calls(CALL).transcriptions.create(
    name="notes",
    track="inbound_track",
    status_callback_url=CALLBACK,
    partial_results=True,
    language_code="en-US",
)
print("STARTED", flush=True)
sys.stdin.readline()
stopped = client.calls(CALL).transcriptions("notes").update(status="stopped")
unknown = None
try:
    client.calls(CALL).transcriptions("nothing-by-this-name").update(status="stopped")
except TwilioRestException as e:
    unknown = e.status
print(json.dumps({
    "started": {"sid": started.sid, "name": started.name, "status": started.status, "call_sid": started.call_sid},
    "stopped": {"sid": stopped.sid, "status": stopped.status},
    "unknown": unknown,
}))
