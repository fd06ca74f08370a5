"""Telnyx's official Python SDK dialing a SIP URI whose far end demands digest credentials.

    python telnyx_sip_auth.py BASE_URL API_KEY CONNECTION_ID SIP_URI

`calls.dial` with `sip_auth_username`/`sip_auth_password`: first a wrong password (the far end
refuses it: the test answers `failed` once the call ended so), then the right one (the test
answers `answered` once the call is up), which the SDK hangs up.
"""

import sys

import telnyx

BASE, KEY, CONNECTION, SIP_URI = sys.argv[1:5]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2")


def dial(password):
    made = client.calls.dial(
        connection_id=CONNECTION,
        to=SIP_URI,
        from_="+15550001",
        sip_auth_username="sbuser",
        sip_auth_password=password,
    )
    return made.data.call_control_id


wrong = dial("not-the-password")
print("DIALED wrong", wrong, flush=True)
assert sys.stdin.readline().strip() == "failed"

right = dial("sbpass")
print("DIALED right", right, flush=True)
assert sys.stdin.readline().strip() == "answered"
client.calls.actions.hangup(right)
print("ok", flush=True)
