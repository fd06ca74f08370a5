"""SignalWire's official Python SDK (signalwire 2.1.1, on twilio 6.54) against Switchboard.

    python signalwire_rest.py BASE_URL PROJECT_ID API_TOKEN SIGNING_KEY

A SignalWire project places a call to +15551234 (a SIPp callee answers) driven by LaML the
SDK's VoiceResponse builds; the project's own application checks every webhook with the SDK's
RequestValidator and the project's signing key (X-SignalWire-Signature). Then: list and fetch
the call, record it (start, pause, resume, stop), list, fetch, download and delete the
recording, find a conference a second call joined and mute and remove it, manage a phone
number, hang up, delete — once through `/2010-04-01` (what the SDK calls) and once through
`/api/laml/2010-04-01` (SignalWire's documented prefix).
"""

import sys
import time
import urllib.request

from compat_app import App, wait
from signalwire.request_validator import RequestValidator
from signalwire.rest import Client
from signalwire.voice_response import VoiceResponse
from twilio.base.exceptions import TwilioRestException

BASE, PROJECT, TOKEN, SIGNING_KEY = sys.argv[1:5]
host = BASE.split("://", 1)[1]

validator = RequestValidator(SIGNING_KEY)


def signed(url, params, headers):
    """Both headers carry the signing key's signature."""
    return all(
        validator.validate(url, params, headers.get(h, ""))
        for h in ("X-SignalWire-Signature", "X-Twilio-Signature")
    )


def laml(path, params):
    r = VoiceResponse()
    r.say("Hello from LaML")
    r.pause(length=30)
    return str(r)


app = App(signed, laml)
APP = app.base
asked = app.asked


def session(base):
    # The SDK forces https on the space URL; a local server is reached with one line.
    c = Client(PROJECT, TOKEN, signalwire_space_url=host)
    c.api.base_url = base
    del asked[:]

    account = c.api.accounts(PROJECT).fetch()
    assert account.sid == PROJECT and account.status == "active", account.sid

    call = c.calls.create(
        to="+15551234",
        from_="+15550001",
        url=APP + "/laml",
        status_callback=APP + "/status",
        status_callback_event=["initiated", "answered", "completed"],
    )
    assert call.sid and call.status == "queued" and call.account_sid == PROJECT, call.status
    wait(lambda: any(path == "/laml" for path, _, _ in asked), "the LaML request")
    path, params, valid = next(a for a in asked if a[0] == "/laml")
    assert valid, "the SDK's RequestValidator rejects the signing-key signature"
    assert params["AccountSid"] == PROJECT and params["CallSid"] == call.sid, params
    assert params["CallStatus"] == "in-progress" and params["Direction"] == "outbound-api", params
    assert params["To"] == "+15551234" and params["From"] == "+15550001", params

    assert c.calls(call.sid).fetch().status == "in-progress"
    assert call.sid in [x.sid for x in c.calls.list(to="+15551234", status="in-progress")]

    # Recording a live call; the SDK's patched RecordingInstance reads every key it expects.
    rec = c.calls(call.sid).recordings.create(recording_channels="dual")
    assert rec.sid.startswith("RE") and rec.status == "in-progress", rec.status
    time.sleep(0.5)
    assert c.calls(call.sid).recordings(rec.sid).update(status="paused").status == "paused"
    assert c.calls(call.sid).recordings(rec.sid).update(status="in-progress").status == "in-progress"
    time.sleep(1.2)
    c.calls(call.sid).recordings(rec.sid).update(status="stopped")
    done = wait(lambda: [r for r in c.recordings.list(call_sid=call.sid) if r.status == "completed"], "the recording")
    assert done[0].sid == rec.sid and int(done[0].duration) >= 1, done[0].duration
    fetched = c.recordings(rec.sid).fetch()
    assert fetched.call_sid == call.sid and fetched.account_sid == PROJECT
    # The media, as any HTTP client downloads it.
    with urllib.request.urlopen("%s/2010-04-01/Accounts/%s/Recordings/%s.wav" % (base, PROJECT, rec.sid)) as r:
        wav = r.read()
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE" and len(wav) > 44, wav[:12]
    assert c.recordings(rec.sid).delete() is True

    # A conference: the project's second call joins a room by LaML; the SDK finds it, mutes
    # and removes the participant (whose call then ends with its document).
    room = "sw-%d" % len(base)
    joined = c.calls.create(
        to="+15551234", from_="+15550002",
        twiml="<Response><Dial><Conference>%s</Conference></Dial></Response>" % room,
    )
    conf = wait(lambda: next(iter(c.conferences.list(friendly_name=room, status="init")), None), "the room")
    assert conf.account_sid == PROJECT
    [part] = c.conferences(conf.sid).participants.list()
    assert part.call_sid == joined.sid
    assert c.conferences(conf.sid).participants(joined.sid).update(muted=True).muted is True
    assert c.conferences(conf.sid).participants(joined.sid).delete() is True
    wait(lambda: c.calls(joined.sid).fetch().status == "completed", "the participant's call ended")

    # A phone number, through the SDK's patched IncomingPhoneNumberInstance.
    number = c.incoming_phone_numbers.create(phone_number="+16665550177", voice_url=APP + "/laml")
    assert number.phone_number == "+16665550177" and number.voice_url == APP + "/laml"
    assert [n.sid for n in c.incoming_phone_numbers.list()] == [number.sid]
    assert c.incoming_phone_numbers(number.sid).delete() is True

    # Hang up; the status callbacks arrive signed, in order.
    c.calls(call.sid).update(status="completed")
    wait(lambda: c.calls(call.sid).fetch().status == "completed", "completed")
    statuses = wait(
        lambda: [p["CallStatus"] for path, p, _ in asked if path == "/status"][2:] and
        [p["CallStatus"] for path, p, _ in asked if path == "/status"],
        "three status callbacks",
    )
    assert statuses == ["initiated", "in-progress", "completed"], statuses
    assert all(valid for _, _, valid in asked), "a webhook fails the SDK's validator"
    assert all(p["AccountSid"] == PROJECT for _, p, _ in asked)

    assert c.calls(joined.sid).delete() is True
    try:
        c.calls(joined.sid).fetch()
        raise AssertionError("expected 404")
    except TwilioRestException as e:
        assert (e.status, e.code) == (404, 20404), (e.status, e.code)

    bad = Client(PROJECT, "wrong-token", signalwire_space_url=host)
    bad.api.base_url = base
    try:
        bad.calls(call.sid).fetch()
        raise AssertionError("expected 401")
    except TwilioRestException as e:
        assert e.status == 401, e.status


session(BASE)
session(BASE + "/api/laml")
print("ok")
