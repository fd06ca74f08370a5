"""Twilio's official Python SDK coaching a conference participant on Switchboard.

    python twilio_coaching.py BASE_URL ACCOUNT_SID AUTH_TOKEN ROOM CUSTOMER AGENT SUPERVISOR APP

The three calls are in the room; the supervisor joined it with <Conference coach=AGENT>. At
each `TALK <phase>` line the test checks who hears whom, and answers `go`. APP is the test's
application: /announce answers TwiML playing its /tone.wav.
"""

import sys

from compat_app import wait
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN, ROOM, CUSTOMER, AGENT, SUPERVISOR, APP = sys.argv[1:9]
c = Client(ACCOUNT, TOKEN)
c.api.base_url = BASE


def talk(phase):
    print("TALK " + phase, flush=True)
    assert sys.stdin.readline().strip() == "go"


conf = wait(lambda: next(iter(c.conferences.list(friendly_name=ROOM, status="in-progress")), None), "the room")
participants = c.conferences(conf.sid).participants
wait(lambda: len(participants.list()) == 3, "three participants")
coach = participants(SUPERVISOR).fetch()
assert coach.coaching is True and coach.call_sid_to_coach == AGENT, (coach.coaching, coach.call_sid_to_coach)
agent = participants(AGENT).fetch()
assert agent.coaching is False and agent.call_sid_to_coach is None
talk("coached")

# Barge: the supervisor is heard by everyone.
barged = participants(SUPERVISOR).update(coaching=False)
assert barged.coaching is False and barged.call_sid_to_coach is None
assert participants(SUPERVISOR).fetch().coaching is False
talk("barged")

# A SID to coach alone makes a coach again: now of the customer.
coaching = participants(SUPERVISOR).update(call_sid_to_coach=CUSTOMER)
assert coaching.coaching is True and coaching.call_sid_to_coach == CUSTOMER
talk("customer")

for status, code, action in [
    # Coaching needs someone to coach.
    (400, 21220, lambda: participants(AGENT).update(coaching=True)),
    # Someone in this conference.
    (400, 21220, lambda: participants(AGENT).update(call_sid_to_coach="CA" + "0" * 32)),
    (400, 20001, lambda: participants(AGENT).update(call_sid_to_coach="nobody")),
]:
    try:
        action()
        raise AssertionError("expected %d" % code)
    except TwilioRestException as e:
        assert (e.status, e.code) == (status, code), (e.status, e.code, e.msg)
# The failed updates changed nothing.
assert participants(AGENT).fetch().coaching is False
assert participants(SUPERVISOR).fetch().call_sid_to_coach == CUSTOMER

# Announcements: TwiML for the room (POST), a file for the agent alone (GET).
assert c.conferences(conf.sid).update(announce_url=APP + "/announce").sid == conf.sid
talk("announced")
updated = participants(AGENT).update(announce_url=APP + "/tone.wav", announce_method="GET")
assert updated.call_sid == AGENT
talk("announced-agent")
try:
    participants(AGENT).update(announce_url="not a url")
    raise AssertionError("a bad AnnounceUrl was taken")
except TwilioRestException as e:
    assert (e.status, e.code) == (400, 21205), (e.status, e.code)
print("ok")
