"""Twilio's official Python SDK making and running subaccounts on Switchboard.

    python twilio_subaccounts.py BASE_URL ACCOUNT_SID AUTH_TOKEN OTHER_ACCOUNT

The main account (granted +1666555*) makes a subaccount; the subaccount, with its own
credentials, claims a number within its owner's grants and places a call from it (the test's
carrier answers); the owner's credentials reach the subaccount's resources, the subaccount's
never reach its owner's; suspended, its credentials fail until its owner makes it active again;
closed, for good. Another account sees none of it.
"""

import json
import sys
import time

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN, OTHER = sys.argv[1:5]


def client(sid, token):
    c = Client(sid, token)
    c.api.base_url = BASE
    return c


def expect_error(status, action, code=None):
    try:
        action()
    except TwilioRestException as e:
        assert e.status == status and (code is None or e.code == code), (e.status, e.code, e.msg)
        return
    except TwilioException as e:
        # A list's page the API refuses: the SDK raises with the response.
        response = e.args[1]
        assert response.status_code == status, response.text
        assert code is None or json.loads(response.text)["code"] == code, response.text
        return
    raise AssertionError("expected HTTP %d" % status)


c = client(ACCOUNT, TOKEN)
other = client(OTHER, TOKEN + "-other")
me = c.api.accounts(ACCOUNT).fetch()
assert me.status == "active" and me.owner_account_sid == ACCOUNT and me.auth_token == TOKEN

sub = c.api.accounts.create(friendly_name="Tenant A")
assert sub.sid.startswith("AC") and len(sub.sid) == 34 and sub.sid != ACCOUNT, sub.sid
assert sub.owner_account_sid == ACCOUNT and sub.status == "active" and sub.friendly_name == "Tenant A"
assert len(sub.auth_token) == 32, sub.auth_token
assert [a.sid for a in c.api.accounts.list()] == [ACCOUNT, sub.sid]
assert [a.sid for a in c.api.accounts.list(friendly_name="Tenant A")] == [sub.sid]
assert [a.sid for a in c.api.accounts.list(status="suspended")] == []

s = client(sub.sid, sub.auth_token)
assert s.api.accounts(sub.sid).fetch().friendly_name == "Tenant A"
assert [a.sid for a in s.api.accounts.list()] == [sub.sid]
# Its own number, within its owner's grants, and a call from it through the trunk.
number = s.incoming_phone_numbers.create(phone_number="+16665550100")
assert number.account_sid == sub.sid
call = s.calls.create(to="+15551234", from_="+16665550100", twiml="<Response><Pause length=\"1\"/></Response>")
assert call.account_sid == sub.sid
deadline = time.time() + 20
while s.calls(call.sid).fetch().status != "completed":
    assert time.time() < deadline, s.calls(call.sid).fetch().status
    time.sleep(0.2)
# The owner reaches the subaccount's resources; its own lists hold none of them.
assert [n.sid for n in c.api.accounts(sub.sid).incoming_phone_numbers.list()] == [number.sid]
assert [x.sid for x in c.api.accounts(sub.sid).calls.list()] == [call.sid]
assert c.incoming_phone_numbers.list() == [] and call.sid not in [x.sid for x in c.calls.list()]
# A number moves between the account and its subaccount, asked by the account; the
# subaccount cannot give its number away, nor the account move one to a stranger.
expect_error(400, lambda: s.incoming_phone_numbers(number.sid).update(account_sid=ACCOUNT), 20001)
moved = c.api.accounts(sub.sid).incoming_phone_numbers(number.sid).update(account_sid=ACCOUNT)
assert moved.account_sid == ACCOUNT, moved.account_sid
assert [n.sid for n in c.incoming_phone_numbers.list()] == [number.sid] and s.incoming_phone_numbers.list() == []
expect_error(400, lambda: c.incoming_phone_numbers(number.sid).update(account_sid=OTHER), 20001)
back = c.incoming_phone_numbers(number.sid).update(account_sid=sub.sid)
assert back.account_sid == sub.sid and [n.sid for n in s.incoming_phone_numbers.list()] == [number.sid]
# The subaccount reaches nothing of its owner's, and makes no subaccounts.
expect_error(404, lambda: s.api.accounts(ACCOUNT).fetch())
expect_error(404, lambda: s.api.accounts(ACCOUNT).calls.list())
expect_error(400, lambda: s.api.accounts.create(friendly_name="nested"), 20001)
# Another account: nothing.
expect_error(404, lambda: other.api.accounts(sub.sid).fetch())
expect_error(404, lambda: other.api.accounts(sub.sid).calls.list())

# Suspended: its credentials fail, its owner still reads it; active again, they work.
assert c.api.accounts(sub.sid).update(status="suspended").status == "suspended"
expect_error(401, lambda: s.api.accounts(sub.sid).fetch())
expect_error(401, lambda: s.calls.list())
assert c.api.accounts(sub.sid).fetch().status == "suspended"
assert c.api.accounts(sub.sid).update(status="active").status == "active"
assert s.api.accounts(sub.sid).fetch().status == "active"
# It renames itself; its status is its owner's to change.
assert s.api.accounts(sub.sid).update(friendly_name="Tenant A1").friendly_name == "Tenant A1"
expect_error(400, lambda: s.api.accounts(sub.sid).update(status="closed"), 20001)
expect_error(400, lambda: c.api.accounts(sub.sid).update(status="paused"), 20001)
expect_error(400, lambda: c.api.accounts(ACCOUNT).update(friendly_name="me"), 20001)
# Closed for good.
assert c.api.accounts(sub.sid).update(status="closed").status == "closed"
expect_error(400, lambda: c.api.accounts(sub.sid).update(status="active"), 20001)
expect_error(401, lambda: s.incoming_phone_numbers.list())
assert [a.status for a in c.api.accounts.list(friendly_name="Tenant A1")] == ["closed"]
print("ok")
