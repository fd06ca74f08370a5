"""TeXML's REST conference participants with Telnyx's official Python SDK (telnyx 4.189.0).

    python telnyx_texml_participants.py BASE_URL API_KEY ACCOUNT_ID HOOKS NUMBER CUSTOMER AGENT

A TeXML application (made through the SDK) places a call to CUSTOMER whose inline TeXML dials
the conference "room2"; the room is found by name. `conferences.participants.participants`
dials AGENT into it (muted, labelled): the created participant is the new call, `connecting`;
once it has joined, the room lists both, the agent muted; it leaves at its `TimeLimit`. A coach
of a call not in the room, a parameter not served and a bad `AmdStatusCallbackMethod` are
refused with Telnyx's errors. The customer is taken out; the room is over,
and its recording (`ConferenceRecord` on the agent's join) is listed as the conference's
(`conferences.retrieve_recordings`); an unknown conference's are 404. Prints `ok`.
"""

import sys

import telnyx
from compat_app import wait
from telnyx_app import code_of

BASE, KEY, ACCOUNT_ID, HOOKS, NUMBER, CUSTOMER, AGENT = sys.argv[1:8]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", max_retries=0)


def refused(code, action):
    try:
        action()
    except telnyx.UnprocessableEntityError as e:
        assert code_of(e) == code, (code, e.body)
        return
    raise AssertionError("expected " + code)


app = client.texml_applications.create(
    friendly_name="participants", voice_url="http://%s/unused" % HOOKS, voice_method="post").data
room = '<Response><Dial><Conference beep="false" waitUrl="">room2</Conference></Dial></Response>'
customer = client.texml.calls.create(app.id, from_=NUMBER, to=CUSTOMER, texml=room)
conferences = client.texml.accounts.conferences
found = wait(lambda: conferences.retrieve_conferences(ACCOUNT_ID, friendly_name="room2").conferences,
             "the room")
cf = found[0].sid
participants = conferences.participants
wait(lambda: participants.retrieve_participants(cf, account_sid=ACCOUNT_ID).participants, "the customer")

refused("10032", lambda: participants.participants(
    cf, account_sid=ACCOUNT_ID, from_=NUMBER, to=AGENT, coaching=True, call_sid_to_coach="v3:nobody"))
refused("10032", lambda: participants.participants(
    cf, account_sid=ACCOUNT_ID, from_=NUMBER, to=AGENT, early_media=False, max_participants=5))
refused("10032", lambda: participants.participants(
    cf, account_sid=ACCOUNT_ID, from_=NUMBER, to=AGENT, machine_detection="Enable",
    amd_status_callback_method="PUT"))

# The agent's call is limited to 4 s from its answer (TimeLimit, as a call's create takes it).
created = participants.participants(
    cf, account_sid=ACCOUNT_ID, from_=NUMBER, to=AGENT, muted=True, label="agent",
    conference_record="record-from-start", status_callback_event="initiated answered completed",
    time_limit=4)
assert created.conference_sid == cf and created.status == "connecting", created
assert created.muted is True and created.call_sid.startswith("v3:"), created
agent = created.call_sid
people = wait(lambda: [p for p in participants.retrieve_participants(cf, account_sid=ACCOUNT_ID).participants
                       if p.call_sid == agent], "the agent in the room")
listed = {p.call_sid: p for p in participants.retrieve_participants(cf, account_sid=ACCOUNT_ID).participants}
assert set(listed) == {customer.call_sid, agent}, listed
assert listed[agent].muted is True and listed[agent].status == "connected", listed[agent]
assert listed[customer.call_sid].muted is False, listed[customer.call_sid]

# The agent leaves at its time limit; the customer is taken out.
wait(lambda: agent not in [p.call_sid for p in participants.retrieve_participants(
    cf, account_sid=ACCOUNT_ID).participants], "the agent's time limit")
participants.delete(customer.call_sid, account_sid=ACCOUNT_ID, conference_sid=cf)
wait(lambda: conferences.retrieve(cf, account_sid=ACCOUNT_ID).status == "completed", "the room's end")

# The room was recorded from the agent's arrival (ConferenceRecord): one recording of the
# conference, saved once the room is over.
recordings = wait(lambda: [r for r in conferences.retrieve_recordings(cf, account_sid=ACCOUNT_ID).recordings
                           if r.status == "completed"], "the room's recording")
assert len(recordings) == 1, recordings
r = recordings[0]
assert r.conference_sid == cf and r.call_sid is None and r.channels == 1, r
assert r.media_url.endswith(".wav") and r.uri.startswith("/v2/texml/Accounts/" + ACCOUNT_ID), r
try:
    conferences.retrieve_recordings("CF" + "0" * 32, account_sid=ACCOUNT_ID)
    raise AssertionError("another conference's recordings")
except telnyx.NotFoundError:
    pass
print("ok", flush=True)
