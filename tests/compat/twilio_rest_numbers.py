"""Twilio's official Python SDK managing IncomingPhoneNumbers on Switchboard.

    python twilio_rest_numbers.py BASE_URL ACCOUNT_SID AUTH_TOKEN OTHER_ACCOUNT SEEDED_NUMBER [--after-restart]

The test drives the far end: when this script prints `CALL <number> <outcome>` it places a
SIPp call from the carrier trunk to that number (outcome `answered`: answered and hung up by
Switchboard; or a SIP failure code) and writes back `done` once the call went that way.
"""

import sys

from compat_app import App, twilio_validator
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN, OTHER, SEEDED = sys.argv[1:6]
c = Client(ACCOUNT, TOKEN)
c.api.base_url = BASE
other = Client(OTHER, TOKEN + "-other")
other.api.base_url = BASE
NUMBER = "+16665550100"
KEPT = "http://127.0.0.1:9/kept"

if sys.argv[6:] == ["--after-restart"]:
    # What the API made of the numbers outlives a restart; the config does not overwrite it.
    [seed] = c.incoming_phone_numbers.list()
    assert seed.phone_number == SEEDED and seed.voice_url == KEPT, seed.voice_url
    [taken] = other.incoming_phone_numbers.list()
    assert taken.phone_number == NUMBER and taken.account_sid == OTHER
    print("ok")
    sys.exit(0)

# The number's application: every request checked with the SDK's own validator.
app = App(twilio_validator(TOKEN), lambda path, params: "<Response><Hangup/></Response>")
APP = app.base
asked = app.asked


def call(number, outcome):
    print("CALL %s %s" % (number, outcome), flush=True)
    reply = sys.stdin.readline().strip()
    assert reply == "done", "the test's call to %s went otherwise: %r" % (number, reply)


def expect_error(status, code, action):
    try:
        action()
    except TwilioRestException as e:
        assert (e.status, e.code) == (status, code), (e.status, e.code, e.msg)
        return e
    raise AssertionError("expected error %d" % code)


# The configured number is listed, with its configured application.
seeded = c.incoming_phone_numbers.list()
assert [n.phone_number for n in seeded] == [SEEDED], [n.phone_number for n in seeded]
seed = seeded[0]
assert seed.sid.startswith("PN") and seed.account_sid == ACCOUNT
assert seed.voice_url == "http://127.0.0.1:9/seeded" and seed.voice_method == "GET"
assert seed.capabilities["voice"] is True and seed.status == "in-use"

# Claim a number and point it at the app: an inbound call runs the app's TwiML.
number = c.incoming_phone_numbers.create(
    phone_number=NUMBER, voice_url=APP + "/voice", status_callback=APP + "/status", friendly_name="Front desk"
)
assert number.sid.startswith("PN") and number.phone_number == NUMBER, number.phone_number
assert number.friendly_name == "Front desk" and number.voice_method == "POST"
assert number.date_created is not None and number.uri.endswith(number.sid + ".json")
assert c.incoming_phone_numbers(number.sid).fetch().voice_url == APP + "/voice"
call(NUMBER, "answered")
voice = [p for path, p, _ in asked if path == "/voice"]
assert len(voice) == 1, asked
assert voice[0]["To"] == NUMBER and voice[0]["Direction"] == "inbound", voice[0]
assert voice[0]["AccountSid"] == ACCOUNT and voice[0]["CallStatus"] == "ringing", voice[0]
assert all(valid for _, _, valid in asked), "the SDK's RequestValidator rejects a signature"

# Change the application (GET, another path): the next call follows it.
updated = c.incoming_phone_numbers(number.sid).update(voice_url=APP + "/v2", voice_method="GET")
assert updated.voice_url == APP + "/v2" and updated.voice_method == "GET"
assert updated.status_callback == APP + "/status" and updated.friendly_name == "Front desk"


call(NUMBER, "answered")
v2 = [p for path, p, _ in asked if path == "/v2"]
assert len(v2) == 1 and v2[0]["To"] == NUMBER, asked
assert all(valid for _, _, valid in asked), "the SDK's RequestValidator rejects a signature"

# Point the number at a TwiML App: the App's voice URL answers its calls (the number's own set
# aside, kept), with the App's SID among the parameters.
ivr = c.applications.create(friendly_name="IVR", voice_url=APP + "/app-voice")
pointed = c.incoming_phone_numbers(number.sid).update(voice_application_sid=ivr.sid)
assert pointed.voice_application_sid == ivr.sid and pointed.voice_url == APP + "/v2", pointed
call(NUMBER, "answered")
by_app = [p for path, p, _ in asked if path == "/app-voice"]
assert len(by_app) == 1 and by_app[0]["To"] == NUMBER, asked
assert by_app[0]["ApplicationSid"] == ivr.sid and by_app[0]["Direction"] == "inbound", by_app[0]
assert all(valid for _, _, valid in asked), "the SDK's RequestValidator rejects a signature"
# Another account's App, or no App, is refused; CNAM lookups are not served.
theirs = other.applications.create(friendly_name="theirs", voice_url=APP + "/theirs")
expect_error(400, 21218, lambda: c.incoming_phone_numbers(number.sid).update(voice_application_sid=theirs.sid))
expect_error(400, 21218, lambda: c.incoming_phone_numbers(number.sid).update(voice_application_sid="AP" + "0" * 32))
expect_error(400, 21231, lambda: c.incoming_phone_numbers(number.sid).update(voice_caller_id_lookup=True))
# Unset: the number's own voice URL answers again.
unset = c.incoming_phone_numbers(number.sid).update(voice_application_sid="")
assert unset.voice_application_sid is None and unset.voice_url == APP + "/v2", unset

# Filters and paging.
assert [n.sid for n in c.incoming_phone_numbers.list(phone_number="666")] == [number.sid]
assert [n.sid for n in c.incoming_phone_numbers.list(phone_number="+1666***0100")] == [number.sid]
assert [n.sid for n in c.incoming_phone_numbers.list(friendly_name="Front desk")] == [number.sid]
page = c.incoming_phone_numbers.page(page_size=1)
assert len(list(page)) == 1 and len(list(page.next_page())) == 1
assert len(c.incoming_phone_numbers.list(page_size=1)) == 2

# Bad input, in Twilio's words.
expect_error(400, 21422, lambda: c.incoming_phone_numbers.create(phone_number=NUMBER))
expect_error(400, 21421, lambda: c.incoming_phone_numbers.create(phone_number="6665550100"))
expect_error(400, 21452, lambda: c.incoming_phone_numbers.create(area_code="777"))
# Outside the ranges the operator granted this account (+1666555*), free or not.
expect_error(400, 21422, lambda: c.incoming_phone_numbers.create(phone_number="+18885550100"))
expect_error(400, 21205, lambda: c.incoming_phone_numbers(number.sid).update(voice_url="ftp://nowhere"))
expect_error(400, 21209, lambda: c.incoming_phone_numbers(number.sid).update(voice_method="PUT"))
expect_error(404, 20404, lambda: c.incoming_phone_numbers("PN" + "0" * 32).fetch())

# Another account sees none of them and cannot take the number.
assert other.incoming_phone_numbers.list() == []
expect_error(404, 20404, lambda: other.incoming_phone_numbers(number.sid).fetch())
expect_error(400, 21422, lambda: other.incoming_phone_numbers.create(phone_number=NUMBER))

# Clearing the voice URL, then releasing the number: calls to it meet the routes (none: 404).
assert c.incoming_phone_numbers(number.sid).update(voice_url="").voice_url is None
call(NUMBER, "404")
assert c.incoming_phone_numbers(number.sid).update(voice_url=APP + "/voice").voice_url == APP + "/voice"
assert c.incoming_phone_numbers(number.sid).delete() is True
expect_error(404, 20404, lambda: c.incoming_phone_numbers(number.sid).fetch())
call(NUMBER, "404")
assert len([p for path, p, _ in asked if path in ("/voice", "/v2")]) == 2, asked

# Released, the number can be claimed by the other account; the seeded number stays.
taken = other.incoming_phone_numbers.create(phone_number=NUMBER, voice_url=APP + "/voice")
assert taken.account_sid == OTHER
c.incoming_phone_numbers(seed.sid).update(voice_url=KEPT)
print("ok")
