"""Twilio's official Python SDK managing conferences on Switchboard.

    python twilio_rest_conferences.py BASE_URL ACCOUNT_SID AUTH_TOKEN

Two calls to +15551234 (a SIPp callee answers both) join the room "sales" by TwiML.
"""

import sys
import time

from compat_app import App, twilio_validator, wait
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN = sys.argv[1:4]
c = Client(ACCOUNT, TOKEN)
c.api.base_url = BASE


def status_of(sid):
    return c.calls(sid).fetch().status


# The conference's status callbacks, each checked with the SDK's validator.
app = App(twilio_validator(TOKEN), lambda path, params: None)
EVENTS = app.base + "/conference-events"
reports = app.asked

# The room's recording's status callbacks, on an application of their own.
recording_app = App(twilio_validator(TOKEN), lambda path, params: None)
TWIML = (
    '<Response><Dial><Conference beep="false" record="record-from-start" statusCallback="%s" '
    'statusCallbackEvent="start end join leave announcement" recordingStatusCallback="%s/recording" '
    'recordingStatusCallbackEvent="in-progress completed">sales</Conference></Dial></Response>'
    % (EVENTS, recording_app.base)
)
a = c.calls.create(to="+15551234", from_="+15550001", twiml=TWIML)
b = c.calls.create(to="+15551234", from_="+15550002", twiml=TWIML)

conf = wait(lambda: next(iter(c.conferences.list(friendly_name="sales")), None), "the room")
wait(lambda: len(c.conferences(conf.sid).participants.list()) == 2, "two participants")
# The room records from its start, which the second participant made.
recording_since = time.time()
conf = c.conferences(conf.sid).fetch()
assert conf.sid.startswith("CF") and conf.friendly_name == "sales", conf.friendly_name
assert conf.status == "in-progress" and conf.account_sid == ACCOUNT, conf.status
assert conf.date_created is not None
parts = c.conferences(conf.sid).participants.list()
assert sorted(p.call_sid for p in parts) == sorted([a.sid, b.sid])
assert all(p.muted is False and p.hold is False and p.start_conference_on_enter for p in parts)

# The running recording paused for three seconds, skipped, then resumed: the file is that much
# shorter than the room's life (checked once it is saved).
current = c.conferences(conf.sid).recordings("Twilio.CURRENT")
paused = current.update(status="paused", pause_behavior="skip")
assert paused.status == "paused" and paused.conference_sid == conf.sid, paused.status
time.sleep(3)
assert current.update(status="in-progress").status == "in-progress"

# Mute, hold, unhold, kick.
assert c.conferences(conf.sid).participants(a.sid).update(muted=True).muted is True
assert [p.call_sid for p in c.conferences(conf.sid).participants.list(muted=True)] == [a.sid]
assert c.conferences(conf.sid).participants(b.sid).update(hold=True).hold is True
assert c.conferences(conf.sid).participants(b.sid).fetch().hold is True
assert c.conferences(conf.sid).participants(b.sid).update(hold=False).hold is False
# What Twilio documents and Switchboard does not carry out is refused, not dropped.
for action in [
    lambda: c.conferences(conf.sid).participants.create(from_="+15550003", to="+15551234",
                                                        jitter_buffer_size="large"),
]:
    try:
        action()
        raise AssertionError("an unserved parameter was accepted")
    except TwilioRestException as e:
        assert (e.status, e.code) == (400, 20001), (e.status, e.code, e.msg)
# An announcement whose URL answers nothing to play fails, as the room reports.
c.conferences(conf.sid).participants(a.sid).update(announce_url=recording_app.base + "/nothing")
failed = wait(lambda: [r for r in app.requests("/conference-events") if r["StatusCallbackEvent"] == "announcement-fail"], "announcement-fail")
assert failed[0]["CallSid"] == a.sid and failed[0]["ConferenceSid"] == conf.sid, failed
assert c.conferences(conf.sid).participants(b.sid).delete() is True
# Kicked, b's call goes on after its <Dial>: the document ends, the call is hung up.
wait(lambda: status_of(b.sid) == "completed", "b completed")
assert [p.call_sid for p in c.conferences(conf.sid).participants.list()] == [a.sid]

# Ending the conference through the API: a leaves it, and its TwiML ends too.
recorded_for = time.time() - recording_since
ended = c.conferences(conf.sid).update(status="completed")
assert ended.status == "completed", ended.status
wait(lambda: status_of(a.sid) == "completed", "a completed")
assert c.conferences.list(status="in-progress") == []
# Over, it is still there: completed, with why and by whom.
over = c.conferences(conf.sid).fetch()
assert over.status == "completed" and over.reason_conference_ended == "conference-ended-via-api", over.status
assert over.call_sid_ending_conference is None and over.date_updated >= over.date_created
assert [x.sid for x in c.conferences.list(status="completed")] == [conf.sid]
assert c.conferences(conf.sid).participants.list() == []

# Its recording (of the mix, from its start): filed under the conference, and the account's.
rec = wait(lambda: next(iter(r for r in c.conferences(conf.sid).recordings.list() if r.status == "completed"), None), "the recording")
assert rec.conference_sid == conf.sid and rec.call_sid is None, (rec.conference_sid, rec.call_sid)
assert rec.sid.startswith("RE") and rec.source == "Conference", rec.source
assert c.conferences(conf.sid).recordings(rec.sid).fetch().sid == rec.sid
assert int(rec.duration) <= recorded_for - 1.5, ("the pause was recorded", rec.duration, recorded_for)
# Its statuses went to the room's recordingStatusCallback, as the conference's, signed.
told = wait(lambda: len(recording_app.requests("/recording")) >= 2 and recording_app.requests("/recording"), "the recording's statuses")
assert [t["RecordingStatus"] for t in told] == ["in-progress", "completed"], told
assert all(t["ConferenceSid"] == conf.sid and t["RecordingSid"] == rec.sid for t in told), told
assert all(t["RecordingSource"] == "Conference" and "CallSid" not in t for t in told), told
assert recording_app.all_valid()
assert rec.sid in [r.sid for r in c.recordings.list()]
try:
    c.conferences(conf.sid).recordings(rec.sid).update(status="paused")
    raise AssertionError("a recording that ended cannot be paused")
except TwilioRestException as e:
    assert (e.status, e.code) == (400, 21220), (e.status, e.code)
assert c.conferences(conf.sid).recordings(rec.sid).delete() is True
assert c.conferences(conf.sid).recordings.list() == []
try:
    c.conferences("CF" + "0" * 32).fetch()
    raise AssertionError("a conference that never was is found")
except TwilioRestException as e:
    assert (e.status, e.code) == (404, 20404), (e.status, e.code)

# What the conference reported, in order: joins, the start, b's leave, a's leave and the end.
wait(lambda: any(p["StatusCallbackEvent"] == "conference-end" for _, p, _ in reports), "conference-end")
wait(lambda: len(reports) >= 7, "seven reports")
assert all(valid for _, _, valid in reports), "the SDK's RequestValidator rejects a signature"
seen = [(p["StatusCallbackEvent"], p.get("CallSid")) for _, p, _ in reports]
assert sorted(seen[:2]) == sorted([("participant-join", a.sid), ("participant-join", b.sid)]), seen
assert seen[2:] == [
    ("conference-start", None),
    ("announcement-fail", a.sid),
    ("participant-leave", b.sid),
    ("participant-leave", a.sid),
    ("conference-end", None),
], seen
assert [int(p["SequenceNumber"]) for _, p, _ in reports] == list(range(1, len(reports) + 1))
assert all(p["ConferenceSid"] == conf.sid and p["FriendlyName"] == "sales" for _, p, _ in reports)
assert all(p["AccountSid"] == ACCOUNT for _, p, _ in reports)
end = next(p for _, p, _ in reports if p["StatusCallbackEvent"] == "conference-end")
assert end["ReasonConferenceEnded"], end

# Participants created through the API: the first opens the room "lobby" by its name (and has
# its joins reported with GET, signed), the second joins that conference by its SID.
methods = []
validate = twilio_validator(TOKEN)


def validate_noting_method(url, params, headers):
    methods.append("POST" if headers.get("Content-Length") else "GET")
    return validate(url, params, headers)


lobby_app = App(validate_noting_method, lambda path, params: None)
first = c.conferences("lobby").participants.create(
    from_="+15550003", to="+15551234", label="first", beep="false", start_conference_on_enter=False,
    conference_status_callback=lobby_app.base + "/lobby-events",
    conference_status_callback_method="GET", conference_status_callback_event=["join"],
)
assert first.call_sid.startswith("CA") and first.status == "queued" and first.label == "first"
lobby = wait(lambda: next(iter(c.conferences.list(friendly_name="lobby")), None), "the lobby")
wait(lambda: [p.call_sid for p in c.conferences(lobby.sid).participants.list()] == [first.call_sid], "first in")
assert c.conferences(lobby.sid).participants(first.call_sid).fetch().start_conference_on_enter is False
second = c.conferences(lobby.sid).participants.create(from_="+15550004", to="+15551234", muted=True)
assert second.conference_sid == lobby.sid and second.muted is True
wait(lambda: len(c.conferences(lobby.sid).participants.list()) == 2, "second in")
assert [p.call_sid for p in c.conferences(lobby.sid).participants.list(muted=True)] == [second.call_sid]
assert c.calls(second.call_sid).fetch()._from == "+15550004"
joins = wait(lambda: len(lobby_app.requests("/lobby-events")) >= 2 and lobby_app.requests("/lobby-events"),
             "the lobby's joins")
assert [j["StatusCallbackEvent"] for j in joins] == ["participant-join", "participant-join"], joins
assert lobby_app.all_valid() and set(methods) == {"GET"}, methods
c.conferences(lobby.sid).update(status="completed")
wait(lambda: status_of(first.call_sid) == "completed" and status_of(second.call_sid) == "completed", "lobby over")
assert sorted(x.friendly_name for x in c.conferences.list(status="completed")) == ["lobby", "sales"]
for status, code, action in [
    (400, 21201, lambda: c.conferences("lobby").participants.create(from_="+15550003", to="")),
    (404, 20404, lambda: c.conferences("CF" + "0" * 32).participants.create(from_="+15550003", to="+15551234")),
]:
    try:
        action()
        raise AssertionError("expected %d" % code)
    except TwilioRestException as e:
        assert (e.status, e.code) == (status, code), (e.status, e.code)

# A participant whose call is recorded (its far end only) and hung up 2 s after its answer.
timed = c.conferences("standup").participants.create(
    from_="+15550005", to="+15551234", time_limit=2, record=True, recording_track="inbound",
    recording_status_callback=recording_app.base + "/participant-recording")
wait(lambda: status_of(timed.call_sid) == "completed", "the timed participant hung up", 15)
assert 1 <= int(c.calls(timed.call_sid).fetch().duration) <= 4
saved = wait(lambda: [r for r in recording_app.requests("/participant-recording")
                      if r["RecordingStatus"] == "completed"], "the participant's recording")
assert saved[0]["CallSid"] == timed.call_sid and saved[0]["RecordingTrack"] == "inbound", saved
print("ok")
