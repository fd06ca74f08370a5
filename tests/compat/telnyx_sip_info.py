"""SIP INFO with Telnyx's official Python SDK (telnyx 4.189.0).

    python telnyx_sip_info.py BASE_URL API_KEY PUBLIC_KEY WEBHOOK_HOST:PORT CONNECTION_ID

Dials +15551234 (the test's SIPp callee answers and expects an INFO carrying `Signal=5` as
application/dtmf-relay); once answered, tries a content type that is no media type and an
INFO without a body (both refused), then `send_sip_info` and `hangup`. Prints `ok` once the
call has hung up with every webhook verified by the SDK's `webhooks.unwrap`.
"""

import queue
import sys
import time

import telnyx
from telnyx_app import act_on, code_of, serve

BASE, KEY, PUBLIC_KEY, HOOKS, CONNECTION = sys.argv[1:6]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)

hooks = []
work = queue.Queue()
errors = {}


def act(data):
    ccid = data["payload"]["call_control_id"]
    if data["event_type"] != "call.answered":
        return
    for name, kwargs in [
        ("not_a_type", {"content_type": "dtmf\r\nX-Evil: 1", "body": "Signal=5"}),
        ("no_body", {"content_type": "application/dtmf-relay", "body": ""}),
    ]:
        try:
            client.calls.actions.send_sip_info(ccid, **kwargs)
        except telnyx.UnprocessableEntityError as e:
            errors[name] = code_of(e)
    # A parameter Telnyx documents and Switchboard does not carry out is refused, not dropped.
    try:
        client.calls.actions.speak(ccid, payload="Hello.", voice="female", service_level="premium")
    except telnyx.UnprocessableEntityError as e:
        errors["unserved"] = code_of(e)
    client.calls.actions.send_sip_info(ccid, content_type="application/dtmf-relay", body="Signal=5\r\nDuration=160\r\n")
    client.calls.actions.hangup(ccid)


serve(HOOKS, client, hooks, work)
act_on(work, act, errors)
try:
    client.calls.dial(connection_id=CONNECTION, to="+15551234", from_="+15550001", preferred_codecs="PCMA")
except telnyx.UnprocessableEntityError as e:
    errors["dial_unserved"] = code_of(e)
# A value that asks for nothing passes.
client.calls.dial(connection_id=CONNECTION, to="+15551234", from_="+15550001", media_encryption="disabled")


def events(kind):
    return [h for h in list(hooks) if h["body"]["data"]["event_type"] == kind]


deadline = time.time() + 30
while not events("call.hangup") and time.time() < deadline:
    time.sleep(0.05)
assert events("call.hangup"), "no call.hangup"
assert errors == {"not_a_type": "10032", "no_body": "10004", "unserved": "10032", "dial_unserved": "10032"}, errors
assert all(h["verified"] for h in hooks)
print("ok", flush=True)
