"""Twilio's official Python SDK verifying an outgoing caller ID on Switchboard.

    python twilio_rest_caller_ids.py BASE_URL ACCOUNT_SID AUTH_TOKEN

The test plays the phone being verified: on `PHONE` it gets a SIPp callee ready on the carrier
trunk (and writes back `done`); on `KEY <digits> <rounds>` it waits for the verification
call's spoken prompt, keys the digits (RFC 4733), `rounds` times, and writes back `done` once
Switchboard has hung up; on `ANSWER` it gets a callee ready that answers one call.
"""

import sys

from compat_app import App, twilio_validator, wait
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN = sys.argv[1:4]
c = Client(ACCOUNT, TOKEN)
c.api.base_url = BASE
NUMBER = "+19995550100"
app = App(twilio_validator(TOKEN), lambda path, params: "<Response><Hangup/></Response>")


def tell(line):
    print(line, flush=True)
    reply = sys.stdin.readline().strip()
    assert reply == "done", "the test's phone went otherwise after %r: %r" % (line, reply)


def expect_error(status, code, action):
    try:
        action()
    except TwilioRestException as e:
        assert (e.status, e.code) == (status, code), (e.status, e.code, e.msg)
        return e
    raise AssertionError("expected error %d" % code)


def call_from_number():
    return c.calls.create(to="+15551234", from_=NUMBER, url=app.base + "/voice")


# Not the account's number, nor one the operator allows it: calls may not present it.
expect_error(400, 21210, call_from_number)
expect_error(400, 21421, lambda: c.validation_requests.create(phone_number="99955"))
assert c.outgoing_caller_ids.list() == []

# A validation request rings the number; the right code keyed there verifies it.
tell("PHONE")
v = c.validation_requests.create(
    phone_number=NUMBER, friendly_name="Desk", status_callback=app.base + "/verified"
)
assert v.account_sid == ACCOUNT and v.phone_number == NUMBER and v.friendly_name == "Desk", v
assert len(v.validation_code) == 6 and v.validation_code.isdigit(), v.validation_code
assert v.call_sid.startswith("CA") and len(v.call_sid) == 34, v.call_sid
tell("KEY %s 1" % v.validation_code)
[result] = wait(lambda: app.requests("/verified"), "the verification's status callback")
assert result["VerificationStatus"] == "success", result
assert result["To"] == NUMBER and result["CallSid"] == v.call_sid, result
assert result["AccountSid"] == ACCOUNT and result["CallStatus"] == "completed", result
assert app.all_valid(), "the SDK's RequestValidator rejects a signature"

# The caller ID, as the resource shows it.
[caller_id] = c.outgoing_caller_ids.list()
assert caller_id.sid == result["OutgoingCallerIdSid"] and caller_id.sid.startswith("PN"), caller_id.sid
assert caller_id.phone_number == NUMBER and caller_id.friendly_name == "Desk"
assert caller_id.account_sid == ACCOUNT and caller_id.date_created is not None
assert caller_id.uri.endswith("/OutgoingCallerIds/%s.json" % caller_id.sid), caller_id.uri
assert c.outgoing_caller_ids(caller_id.sid).fetch().phone_number == NUMBER
renamed = c.outgoing_caller_ids(caller_id.sid).update(friendly_name="Front desk")
assert renamed.friendly_name == "Front desk"
assert [i.sid for i in c.outgoing_caller_ids.list(phone_number=NUMBER)] == [caller_id.sid]
assert c.outgoing_caller_ids.list(friendly_name="Desk") == []
expect_error(400, 21450, lambda: c.validation_requests.create(phone_number=NUMBER))

# Now calls may present it.
tell("ANSWER")
placed = call_from_number()
assert placed._from == NUMBER and placed.sid.startswith("CA"), placed._from

# Deleted: refused again, and gone.
c.outgoing_caller_ids(caller_id.sid).delete()
expect_error(400, 21210, call_from_number)
expect_error(404, 20404, lambda: c.outgoing_caller_ids(caller_id.sid).fetch())

# A wrong code, three times: not verified, and the callback says so.
tell("PHONE")
again = c.validation_requests.create(phone_number=NUMBER, status_callback=app.base + "/failed")
wrong = "111111" if again.validation_code == "000000" else "000000"
tell("KEY %s 3" % wrong)
[failed] = wait(lambda: app.requests("/failed"), "the failed verification's callback")
assert failed["VerificationStatus"] == "failed" and "OutgoingCallerIdSid" not in failed, failed
assert failed["CallSid"] == again.call_sid, failed
assert c.outgoing_caller_ids.list() == []
expect_error(400, 21210, call_from_number)
print("ok")
