"""Twilio's official Python SDK against Switchboard's REST API, changed only in its base URL.

    python twilio_rest_calls.py BASE_URL ACCOUNT_SID AUTH_TOKEN OTHER_ACCOUNT_SID

The calls go to +15551234, which the server routes to a SIPp callee that answers.
"""

import sys
import time
from datetime import datetime, timedelta, timezone

from compat_app import App, twilio_validator
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN, OTHER = sys.argv[1:5]


def client(account=ACCOUNT, token=TOKEN):
    c = Client(account, token)
    c.api.base_url = BASE
    return c


def wait_for(c, sid, status, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        call = c.calls(sid).fetch()
        if call.status == status:
            return call
        time.sleep(0.1)
    raise AssertionError("call %s never became %s (last %s)" % (sid, status, call.status))


def expect_error(status, code, fn):
    try:
        fn()
    except TwilioRestException as e:
        assert (e.status, e.code) == (status, code), (e.status, e.code, e.msg)
        return e
    raise AssertionError("no error, expected %d/%d" % (status, code))


c = client()

# What Twilio documents and Switchboard does not carry out is refused, not dropped (no call
# is placed).
expect_error(400, 20001, lambda: c.calls.create(to="+15551234", from_="+15550001", twiml="<Response/>",
                                                byoc="BY" + "0" * 32))

# The second call's application: it records what Switchboard asks and checks the signature
# with the SDK's own validator.
app = App(twilio_validator(TOKEN), lambda path, params: '<Response><Pause length="30"/></Response>')
APP_URL = app.base + "/voice"

# Create: queued at once, then in progress once the callee answers.
call = c.calls.create(
    to="+15551234",
    from_="+15550001",
    twiml='<Response><Say>Hello from the SDK.</Say><Pause length="30"/></Response>',
    status_callback_event=["initiated", "ringing", "answered", "completed"],
)
assert call.sid.startswith("CA") and len(call.sid) == 34, call.sid
assert call.status == "queued", call.status
assert call.direction == "outbound-api", call.direction
assert call.account_sid == ACCOUNT
assert call.to == "+15551234" and call._from == "+15550001"
assert call.to_formatted == "+15551234", call.to_formatted
assert call.api_version == "2010-04-01" and call.price_unit == "USD"
assert call.uri == "/2010-04-01/Accounts/%s/Calls/%s.json" % (ACCOUNT, call.sid), call.uri
assert call.date_created is not None, "RFC 2822 dates parse"
live = wait_for(c, call.sid, "in-progress")
assert live.start_time is not None and live.end_time is None and live.duration is None

# A second call, hung up through the API.
other = c.calls.create(to="+15551234", from_="+15550002", url=APP_URL, machine_detection="Enable")
wait_for(c, other.sid, "in-progress")
deadline = time.time() + 10
while not app.asked:
    assert time.time() < deadline, "the application was never asked"
    time.sleep(0.05)
_, params, valid = app.asked[0]
assert valid, "the SDK's RequestValidator rejects the signature"
assert params["CallSid"] == other.sid and params["Direction"] == "outbound-api", params
assert params["CallStatus"] == "in-progress" and params["AnsweredBy"] == "unknown", params
expect_error(400, 20001, lambda: c.calls.create(to="+15551234", from_="+1", url=APP_URL, machine_detection="Psychic"))

# List: filters, paging (next_page_uri with the filters kept), newest first.
listed = c.calls.list(to="+15551234", limit=20)
assert [x.sid for x in listed] == [other.sid, call.sid], [x.sid for x in listed]
assert [x.sid for x in c.calls.list(from_="+15550002")] == [other.sid]
page = c.calls.page(page_size=1)
assert [x.sid for x in page] == [other.sid] and page.next_page_url is not None
second = page.next_page()
assert [x.sid for x in second] == [call.sid], [x.sid for x in second]
assert [x.sid for x in c.calls.list(status="in-progress")] == [other.sid, call.sid]
# Time filters: days (the SDK sends dates as YYYY-MM-DD) and instants.
today = datetime.now(timezone.utc).date()
assert [x.sid for x in c.calls.list(start_time_after=today)] == [other.sid, call.sid]
assert [x.sid for x in c.calls.list(start_time=today)] == [other.sid, call.sid]
assert c.calls.list(start_time_before=today - timedelta(days=1)) == []
assert c.calls.list(start_time_after=datetime.now(timezone.utc) + timedelta(minutes=5)) == []
assert all(x.end_time is not None for x in c.calls.list(end_time_after=today))
assert {call.sid, other.sid}.isdisjoint(x.sid for x in c.calls.list(end_time=today)), "still up"

# Recording the live call: start, pause, resume, stop; then it is listed and fetched.
rec = c.calls(call.sid).recordings.create(
    recording_channels="dual",
    recording_status_callback=APP_URL + "?recording=1",
    recording_status_callback_event=["in-progress", "completed"],
)
assert rec.sid.startswith("RE") and rec.status == "in-progress" and rec.channels == 2, rec.status
assert rec.call_sid == call.sid
recording_since = time.time()
assert c.calls(call.sid).recordings(rec.sid).update(status="paused").status == "paused"
# Paused as Twilio pauses by default: the two seconds are kept in the file, as silence.
time.sleep(2)
assert c.calls(call.sid).recordings("Twilio.CURRENT").update(status="in-progress").status == "in-progress"
time.sleep(1)
assert c.calls(call.sid).recordings(rec.sid).update(status="stopped").status == "stopped"
deadline = time.time() + 10
while c.recordings(rec.sid).fetch().status != "completed":
    assert time.time() < deadline, "the recording never completed"
    time.sleep(0.1)
saved = c.recordings(rec.sid).fetch()
recorded_for = time.time() - recording_since
assert saved.duration is not None and int(saved.duration) >= recorded_for - 1.5, (saved.duration, recorded_for)
assert [r.sid for r in c.recordings.list(call_sid=call.sid)] == [rec.sid]
assert [r.sid for r in c.calls(call.sid).recordings.list()] == [rec.sid]
assert rec.sid not in [r.sid for r in c.calls(other.sid).recordings.list()]
assert saved.source == "StartCallRecordingAPI", saved.source
# Its status callbacks: in-progress at the start, completed once saved, both signed.
deadline = time.time() + 10
while len([p for _, p, _ in app.asked if p.get("RecordingSid") == rec.sid]) < 2:
    assert time.time() < deadline, "recording status callbacks missing"
    time.sleep(0.1)
reports = [(p, valid) for _, p, valid in app.asked if p.get("RecordingSid") == rec.sid]
assert [p["RecordingStatus"] for p, _ in reports] == ["in-progress", "completed"], reports
assert all(valid for _, valid in reports) and reports[1][0]["RecordingChannels"] == "2"
assert reports[0][0]["RecordingSource"] == "StartCallRecordingAPI" and "RecordingDuration" not in reports[0][0]

# Update: redirect the first to inline TwiML that hangs up; hang up the second.
c.calls(call.sid).update(twiml="<Response><Hangup/></Response>")
done = wait_for(c, call.sid, "completed")
assert done.end_time is not None and done.duration is not None, (done.end_time, done.duration)
ended = c.calls(other.sid).update(status="completed")
wait_for(c, other.sid, "completed")
e = expect_error(400, 21220, lambda: c.calls(call.sid).update(url="http://127.0.0.1:1/x"))

# Errors in Twilio's shape.
expect_error(400, 21205, lambda: c.calls.create(to="+15551234", from_="+15550001"))
expect_error(400, 21201, lambda: c.calls.create(to="", from_="+15550001", url="http://x/y"))
expect_error(401, 20003, lambda: client(token="wrong").calls(call.sid).fetch())
expect_error(404, 20404, lambda: c.calls("CA" + "0" * 32).fetch())
# (Lists raise the SDK's plain TwilioException on any status but 200.)
try:
    client(token="wrong").calls.list()
    raise AssertionError("a list with a wrong token worked")
except TwilioException as e:
    assert "HTTP 401" in str(e) and "20003" in str(e), str(e)
# Another account's credentials see nothing of this account's calls.
expect_error(404, 20404, lambda: client(OTHER, TOKEN + "-other").calls(call.sid).fetch())
assert client(OTHER, TOKEN + "-other").calls.list() == []

# Delete: 204, and the recording and the call are gone.
assert c.recordings(rec.sid).delete() is True
expect_error(404, 20404, lambda: c.recordings(rec.sid).fetch())
assert c.calls(call.sid).delete() is True
expect_error(404, 20404, lambda: c.calls(call.sid).fetch())

# Broken applications leave notifications: TwiML that breaks the schema (12200), and a voice
# URL nobody answers (a fetch error); the callee hears the apology and the call ends.
broken = c.calls.create(to="+15551234", from_="+15550003", twiml="<Response><Dance/></Response>")
down = c.calls.create(to="+15551234", from_="+15550004", url="http://127.0.0.1:9/nobody")
wait_for(c, broken.sid, "completed", 20)
wait_for(c, down.sid, "completed", 20)
[schema] = c.calls(broken.sid).notifications.list()
assert schema.error_code == "12200" and schema.log == "0" and schema.call_sid == broken.sid, schema.error_code
assert "Dance" in schema.message_text and schema.request_url is None
[fetch] = c.calls(down.sid).notifications.list()
assert fetch.error_code.startswith("11") and fetch.request_url == "http://127.0.0.1:9/nobody", fetch.error_code
assert fetch.request_method == "POST" and fetch.more_info.endswith(fetch.error_code)
assert sorted(n.sid for n in c.notifications.list()) == sorted([schema.sid, fetch.sid])
assert c.notifications(fetch.sid).fetch().call_sid == down.sid
assert c.notifications.list(log=1) == []
expect_error(404, 20404, lambda: c.notifications("NO" + "0" * 32).fetch())
assert client(OTHER, TOKEN + "-other").notifications.list() == []

# An App of the account runs a call (ApplicationSid): its voice URL is asked, naming it; the
# call is recorded from the callee's side only (RecordingTrack), and hung up 2 s after its
# answer (TimeLimit) though its TwiML pauses for 30.
ivr = c.applications.create(friendly_name="IVR", voice_url=app.base + "/app-voice")
theirs = client(OTHER, TOKEN + "-other").applications.create(friendly_name="x", voice_url=app.base + "/x")
expect_error(400, 21218, lambda: c.calls.create(to="+15551234", from_="+15550005", application_sid=theirs.sid))
limited = c.calls.create(to="+15551234", from_="+15550005", application_sid=ivr.sid, time_limit=2,
                         record=True, recording_track="inbound",
                         recording_status_callback=app.base + "/rec")
ended = wait_for(c, limited.sid, "completed", 15)
assert 1 <= int(ended.duration) <= 4, ended.duration
asked = [(p, valid) for path, p, valid in app.asked if path == "/app-voice"]
assert len(asked) == 1 and asked[0][1], asked
assert asked[0][0]["ApplicationSid"] == ivr.sid and asked[0][0]["CallSid"] == limited.sid, asked
assert asked[0][0]["Direction"] == "outbound-api", asked
deadline = time.time() + 10
while not [p for path, p, _ in app.asked if path == "/rec" and p.get("RecordingStatus") == "completed"]:
    assert time.time() < deadline, "the recording was never reported"
    time.sleep(0.1)
[saved] = [p for path, p, _ in app.asked if path == "/rec" and p.get("RecordingStatus") == "completed"]
assert saved["RecordingTrack"] == "inbound" and saved["CallSid"] == limited.sid, saved

# A live call's update: a new Url that fails falls back to the FallbackUrl (told the error), a
# TimeLimit bounds the call from its answer, and moving its StatusCallback is refused.
live = c.calls.create(to="+15551234", from_="+15550006", twiml='<Response><Pause length="30"/></Response>')
up = wait_for(c, live.sid, "in-progress")
expect_error(400, 20001, lambda: c.calls(live.sid).update(status_callback=app.base + "/elsewhere"))
c.calls(live.sid).update(url="http://127.0.0.1:9/nobody", fallback_url=app.base + "/fallback")
deadline = time.time() + 10
while not [p for path, p, _ in app.asked if path == "/fallback"]:
    assert time.time() < deadline, "the fallback URL was never asked"
    time.sleep(0.05)
[fell] = [p for path, p, _ in app.asked if path == "/fallback"]
assert fell["ErrorUrl"] == "http://127.0.0.1:9/nobody" and fell["CallSid"] == live.sid, fell
limit = int((datetime.now(timezone.utc) - up.start_time).total_seconds()) + 3
c.calls(live.sid).update(time_limit=limit)
time.sleep(0.5)
assert c.calls(live.sid).fetch().status == "in-progress", "hung up before its limit"
over = wait_for(c, live.sid, "completed", 10)
assert abs(int(over.duration) - limit) <= 1, (over.duration, limit)
print("ok")
