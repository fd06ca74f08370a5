"""Telnyx's official Python SDK managing outbound voice profiles on Switchboard, and what they
do to the calls placed through a Call Control application that names one.

    python telnyx_outbound_profiles.py BASE_URL API_KEY

The application is made here; its calls go to the test's trunk, where nothing answers: a call
rings (and holds a channel) until it is hung up.
"""

import sys

import telnyx
from telnyx_app import code_of

BASE, KEY = sys.argv[1:3]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", max_retries=0)


def refused(code, action, says=None):
    try:
        action()
    except telnyx.APIStatusError as e:
        assert code_of(e) == code, (code, e.body)
        detail = e.body["errors"][0]["detail"]
        assert says is None or says in detail, (says, detail)
        return
    raise AssertionError("expected " + code)


profile = client.outbound_voice_profiles.create(
    name="office", concurrent_call_limit=1, whitelisted_destinations=["US"], tags=["desk"]).data
assert profile.record_type == "outbound_voice_profile" and profile.name == "office", profile
assert profile.enabled and profile.service_plan == "global" and profile.traffic_type == "conversational"
assert profile.concurrent_call_limit == 1 and profile.whitelisted_destinations == ["US"]
assert profile.connections_count == 0 and profile.usage_payment_method == "rate-deck"
assert profile.call_recording.call_recording_type == "none"
other = client.outbound_voice_profiles.create(name="spare").data
assert other.whitelisted_destinations == ["US", "CA"] and other.concurrent_call_limit is None
assert [p.id for p in client.outbound_voice_profiles.list()] == [profile.id, other.id]
assert [p.id for p in client.outbound_voice_profiles.list(filter={"name": {"contains": "OFF"}})] == [profile.id]
assert client.outbound_voice_profiles.retrieve(other.id).data.name == "spare"
renamed = client.outbound_voice_profiles.update(other.id, name="spare-2").data
assert renamed.name == "spare-2" and renamed.whitelisted_destinations == ["US", "CA"]
assert client.outbound_voice_profiles.delete(other.id).data.id == other.id
refused("10005", lambda: client.outbound_voice_profiles.retrieve(other.id))
# What needs a rate deck, or is not built, is refused rather than kept.
refused("10015", lambda: client.outbound_voice_profiles.create(name="x", max_destination_rate=0.1))
refused("10015", lambda: client.outbound_voice_profiles.create(name="x", daily_spend_limit_enabled=True))
refused("10032", lambda: client.outbound_voice_profiles.create(name="x", whitelisted_destinations=["XX"]))
refused("10032", lambda: client.outbound_voice_profiles.create(name=""))

app = client.call_control_applications.create(
    application_name="dialer", webhook_event_url="http://127.0.0.1:9/telnyx",
    outbound={"outbound_voice_profile_id": profile.id}).data
assert app.outbound.outbound_voice_profile_id == profile.id, app.outbound
assert client.outbound_voice_profiles.retrieve(profile.id).data.connections_count == 1
refused("90000", lambda: client.outbound_voice_profiles.delete(profile.id), "used by")


def dial(to="+15551234"):
    return client.calls.dial(connection_id=app.id, to=to, from_="+15550001", timeout_secs=30).data


# The profile's one channel: a second call waits for the first to end.
first = dial()
refused("10010", dial, "Channel limit exceeded")
client.calls.actions.hangup(first.call_control_id)
second = dial()
client.calls.actions.hangup(second.call_control_id)
# Outside the whitelisted destinations (Canada), disabled: not placed.
refused("10016", lambda: dial("+14165551234"), "(CA)")
client.outbound_voice_profiles.update(profile.id, name="office", whitelisted_destinations=["CA"])
refused("10016", dial, "(US)")
client.outbound_voice_profiles.update(profile.id, name="office", whitelisted_destinations=["US", "CA"], enabled=False)
refused("10010", dial, "disabled")
# The connection's own channel limit, with a profile that limits nothing.
client.outbound_voice_profiles.update(profile.id, name="office", enabled=True, concurrent_call_limit=None)
client.call_control_applications.update(
    app.id, application_name="dialer", webhook_event_url="http://127.0.0.1:9/telnyx",
    outbound={"outbound_voice_profile_id": profile.id, "channel_limit": 1})
first = dial()
refused("10010", dial, "connection:" + app.id)
client.calls.actions.hangup(first.call_control_id)
# An inactive connection places nothing.
client.call_control_applications.update(
    app.id, application_name="dialer", webhook_event_url="http://127.0.0.1:9/telnyx", active=False)
refused("10010", dial, "not active")
print("ok")
