"""SIP REFER (a cold transfer) with Telnyx's official Python SDK (telnyx 4.189.0).

    python telnyx_refer.py BASE_URL API_KEY PUBLIC_KEY WEBHOOK_HOST:PORT TAKEN BUSY

The webhook server verifies every webhook with the SDK's `webhooks.unwrap`; a worker acts:
each incoming call is answered; once answered it is referred to sip:agent@pbx.example.com
with a custom header and a client_state (for TAKEN, a refer with SIP credentials is tried
first and refused). The caller (SIPp) takes the transfer: for TAKEN it hangs up; for BUSY it
reports the agent busy and the app hangs up on `call.refer.failed`.
Prints one JSON summary once both calls have hung up.
"""

import base64
import json
import queue
import sys
import time

import telnyx
from telnyx_app import act_on, code_of, serve

BASE, KEY, PUBLIC_KEY, HOOKS, TAKEN, BUSY = sys.argv[1:7]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)

hooks = []
work = queue.Queue()
errors = {}
STATE = base64.b64encode(b"referring").decode()


def act(data):
    p = data["payload"]
    ccid = p["call_control_id"]
    kind = data["event_type"]
    if kind == "call.initiated" and p["direction"] == "incoming":
        client.calls.actions.answer(ccid)
    elif kind == "call.answered":
        if p["to"] == TAKEN:
            try:
                client.calls.actions.refer(ccid, sip_address="sip:agent@pbx.example.com", sip_auth_username="agent")
            except telnyx.UnprocessableEntityError as e:
                errors["credentials"] = code_of(e)
        client.calls.actions.refer(
            ccid,
            sip_address="sip:agent@pbx.example.com",
            custom_headers=[{"name": "X-Queue", "value": "sales"}],
            client_state=STATE,
        )
    elif kind == "call.refer.failed":
        client.calls.actions.hangup(ccid)


serve(HOOKS, client, hooks, work)
act_on(work, act, errors)
print("READY", flush=True)


def events(kind=None):
    return [h["body"]["data"] for h in list(hooks) if kind is None or h["body"]["data"]["event_type"] == kind]


deadline = time.time() + 60
while len(events("call.hangup")) < 2 and time.time() < deadline:
    time.sleep(0.05)
time.sleep(0.3)
print(json.dumps({
    "events": [(e["event_type"], e["payload"]) for e in events()],
    "verified": [h["verified"] for h in hooks],
    "errors": errors,
}))
