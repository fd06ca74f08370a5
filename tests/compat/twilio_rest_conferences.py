"""Twilio's official Python SDK managing conferences on Switchboard.

    python twilio_rest_conferences.py BASE_URL ACCOUNT_SID AUTH_TOKEN

Two calls to +15551234 (a SIPp callee answers both) join the room "sales" by TwiML.
"""

import sys
import time

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN = sys.argv[1:4]
c = Client(ACCOUNT, TOKEN)
c.api.base_url = BASE


def wait(check, what, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def status_of(sid):
    return c.calls(sid).fetch().status


TWIML = '<Response><Dial><Conference beep="false">sales</Conference></Dial></Response>'
a = c.calls.create(to="+15551234", from_="+15550001", twiml=TWIML)
b = c.calls.create(to="+15551234", from_="+15550002", twiml=TWIML)

conf = wait(lambda: next(iter(c.conferences.list(friendly_name="sales")), None), "the room")
wait(lambda: len(c.conferences(conf.sid).participants.list()) == 2, "two participants")
conf = c.conferences(conf.sid).fetch()
assert conf.sid.startswith("CF") and conf.friendly_name == "sales", conf.friendly_name
assert conf.status == "in-progress" and conf.account_sid == ACCOUNT, conf.status
assert conf.date_created is not None
parts = c.conferences(conf.sid).participants.list()
assert sorted(p.call_sid for p in parts) == sorted([a.sid, b.sid])
assert all(p.muted is False and p.hold is False and p.start_conference_on_enter for p in parts)

# Mute, hold, unhold, kick.
assert c.conferences(conf.sid).participants(a.sid).update(muted=True).muted is True
assert [p.call_sid for p in c.conferences(conf.sid).participants.list(muted=True)] == [a.sid]
assert c.conferences(conf.sid).participants(b.sid).update(hold=True).hold is True
assert c.conferences(conf.sid).participants(b.sid).fetch().hold is True
assert c.conferences(conf.sid).participants(b.sid).update(hold=False).hold is False
assert c.conferences(conf.sid).participants(b.sid).delete() is True
# Kicked, b's call goes on after its <Dial>: the document ends, the call is hung up.
wait(lambda: status_of(b.sid) == "completed", "b completed")
assert [p.call_sid for p in c.conferences(conf.sid).participants.list()] == [a.sid]

# Ending the conference through the API: a leaves it, and its TwiML ends too.
ended = c.conferences(conf.sid).update(status="completed")
assert ended.status == "completed", ended.status
wait(lambda: status_of(a.sid) == "completed", "a completed")
assert c.conferences.list(status="in-progress") == []
try:
    c.conferences(conf.sid).fetch()
    raise AssertionError("an ended conference is still found")
except TwilioRestException as e:
    assert (e.status, e.code) == (404, 20404), (e.status, e.code)
print("ok")
