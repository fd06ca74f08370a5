"""Conferences with Telnyx's official Python SDK (telnyx 4.189.0).

    python telnyx_conferences.py BASE_URL API_KEY PUBLIC_KEY WEBHOOK_HOST:PORT CONNECTION \
        CUSTOMER AGENT SUPERVISOR

The app dials the three numbers one after another (the test's SIPp callees answer): the
customer's leg opens the conference "support" (`conferences.create`), the agent joins it, the
supervisor joins it whispering to the agent (`supervisor_role=whisper`). Every webhook is
verified with the SDK's `webhooks.unwrap`. At each `TALK <phase>` line the test checks who
hears whom by the tones its phones hear, and answers `go`. Prints `ok` at the end.
"""

import base64
import io
import math
import queue
import sys
import threading
import time
import urllib.request
import wave

import telnyx
from telnyx_app import act_on, code_of, serve

BASE, KEY, PUBLIC_KEY, HOOKS, CONNECTION, CUSTOMER, AGENT, SUPERVISOR = sys.argv[1:9]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)

hooks = []
work = queue.Queue()
errors = {}
legs = {}
conf = {}
STATE = base64.b64encode(b"support").decode()
everyone_in = threading.Event()


def dial(number):
    client.calls.dial(connection_id=CONNECTION, to=number, from_="+15550001")


def act(data):
    p = data["payload"]
    kind = data["event_type"]
    if kind == "call.answered":
        legs[p["to"]] = p["call_control_id"]
        if p["to"] == CUSTOMER:
            created = client.conferences.create(
                call_control_id=p["call_control_id"], name="support", beep_enabled="never", client_state=STATE
            ).data
            conf["id"] = created.id
            conf["created"] = created
        elif p["to"] == AGENT:
            client.conferences.actions.join(conf["id"], call_control_id=p["call_control_id"])
        elif p["to"] == SUPERVISOR:
            client.conferences.actions.join(
                conf["id"],
                call_control_id=p["call_control_id"],
                supervisor_role="whisper",
                whisper_call_control_ids=[legs[AGENT]],
            )
    elif kind == "conference.participant.joined":
        number = next(n for n, c in legs.items() if c == p["call_control_id"])
        following = {CUSTOMER: AGENT, AGENT: SUPERVISOR}.get(number)
        if following:
            dial(following)
        else:
            everyone_in.set()


def talk(phase):
    print("TALK " + phase, flush=True)
    assert sys.stdin.readline().strip() == "go"


def events(kind):
    return [h["body"]["data"] for h in list(hooks) if h["body"]["data"]["event_type"] == kind]


def wait(check, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


serve(HOOKS, client, hooks, work)
act_on(work, act, errors)
dial(CUSTOMER)
assert everyone_in.wait(30), ("not everyone joined", errors, [h["body"]["data"]["event_type"] for h in hooks])
cid = conf["id"]
created = conf["created"]
assert created.name == "support" and created.status == "in_progress", created
assert created.record_type == "conference" and created.expires_at > created.created_at

got = client.conferences.retrieve(cid).data
assert (got.id, got.name, got.status) == (cid, "support", "in_progress"), got
listed = client.conferences.list(filter={"name": "support"})
assert [c.id for c in listed.data] == [cid], listed
parts = {x.call_control_id: x for x in client.conferences.list_participants(cid).data}
assert set(parts) == {legs[CUSTOMER], legs[AGENT], legs[SUPERVISOR]}, parts
assert parts[legs[SUPERVISOR]].whisper_call_control_ids == [legs[AGENT]]
assert parts[legs[AGENT]].whisper_call_control_ids == [] and parts[legs[AGENT]].status == "joined"
assert all(x.conference.id == cid for x in parts.values())
talk("whisper")

# Barge: the supervisor is heard by everyone.
client.conferences.actions.update(cid, call_control_id=legs[SUPERVISOR], supervisor_role="barge")
wait(lambda: [x for x in client.conferences.list_participants(cid).data
              if x.call_control_id == legs[SUPERVISOR] and x.whisper_call_control_ids == []], "barged")
talk("barge")

# The customer muted: heard by nobody.
client.conferences.actions.mute(cid, call_control_ids=[legs[CUSTOMER]])
muted = [x.call_control_id for x in client.conferences.list_participants(cid).data if x.muted]
assert muted == [legs[CUSTOMER]], muted
talk("muted")
client.conferences.actions.unmute(cid)
# Digits to the customer alone (the test listens for them on its phone).
client.conferences.actions.send_dtmf(cid, digits="1", call_control_ids=[legs[CUSTOMER]])
talk("dtmf")
assert not any(x.muted for x in client.conferences.list_participants(cid).data)
client.conferences.actions.hold(cid, call_control_ids=[legs[AGENT]])
assert [x.on_hold for x in client.conferences.list_participants(cid).data if x.call_control_id == legs[AGENT]] == [True]
client.conferences.actions.unhold(cid, call_control_ids=[legs[AGENT]])

for code, action in [
    ("90033", lambda: client.conferences.create(call_control_id=legs[AGENT], name="support")),
    ("10032", lambda: client.conferences.create(call_control_id=legs[AGENT], name="other", max_participants=5)),
    ("10032", lambda: client.conferences.actions.update(cid, call_control_id=legs[AGENT], supervisor_role="boss")),
]:
    try:
        action()
        raise AssertionError("expected " + code)
    except telnyx.UnprocessableEntityError as e:
        assert code_of(e) == code, (code, code_of(e))
# Audio into the room: a tone everyone hears, then one the agent alone hears until stopped,
# then speech to everyone; each with its webhooks.
TONE_URL = "http://" + HOOKS + "/tone.wav"
# The room is recorded meanwhile (paused for two seconds once the tone has played).
client.conferences.actions.record_start(cid, format="wav", command_id="rec-1")
recording_since = time.time()
client.conferences.actions.record_start(cid, format="wav", command_id="rec-1")  # ignored: same command_id
client.conferences.actions.play(cid, audio_url=TONE_URL)
talk("play")
ended = wait(lambda: events("conference.playback.ended"), "conference.playback.ended")
client.conferences.actions.record_pause(cid)
time.sleep(2)
client.conferences.actions.record_resume(cid)
client.conferences.actions.record_stop(cid)
recorded_for = time.time() - recording_since
started = events("conference.playback.started")
for e in started + ended:
    p = e["payload"]
    assert (p["conference_id"], p["media_url"], p["connection_id"]) == (cid, TONE_URL, CONNECTION), p
    assert "call_control_id" not in p, p
assert len(started) == 1 and len(ended) == 1, (started, ended)
saved = wait(lambda: events("conference.recording.saved"), "conference.recording.saved")
assert len(saved) == 1, saved
p = saved[0]["payload"]
assert (p["conference_id"], p["format"], p["channels"]) == (cid, "wav", "single"), p
assert p["call_control_id"] == legs[CUSTOMER] and p["recording_started_at"] < p["recording_ended_at"], p
# Served where the public URL says; the test's server has none set, so its base is used.
url = p["recording_urls"]["wav"]
with urllib.request.urlopen(BASE + url[url.index("/v2/recording_files/"):], timeout=10) as r:
    with wave.open(io.BytesIO(r.read())) as w:
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
samples = [int.from_bytes(pcm[i:i + 2], "little", signed=True) for i in range(0, len(pcm), 2)]


def share_at(window, freq):
    """The share of the window's energy at `freq` (Goertzel)."""
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in window:
        s1, s2 = x + k * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    energy = sum(x * x for x in window) or 1
    return 2 * power / (len(window) * energy)


step = rate // 10
toned = sum(1 for i in range(0, len(samples) - step, step) if share_at(samples[i:i + step], 600) > 0.8)
assert toned >= 10, ("the recording holds no tone", toned)
assert len(samples) / rate <= recorded_for - 1.5, ("the pause was recorded", len(samples) / rate, recorded_for)
client.conferences.actions.play(cid, audio_url=TONE_URL, loop="infinity", call_control_ids=[legs[AGENT]])
talk("play-agent")
client.conferences.actions.stop(cid, call_control_ids=[legs[AGENT]])
ended = wait(lambda: events("conference.participant.playback.ended"), "the agent's playback ended")
started = events("conference.participant.playback.started")
for e in started + ended:
    p = e["payload"]
    assert (p["conference_id"], p["media_url"], p["call_control_id"]) == (cid, TONE_URL, legs[AGENT]), p
talk("quiet")
client.conferences.actions.speak(cid, payload="Welcome to the support line. Your call may be recorded.", voice="female")
talk("speak")
spoken = wait(lambda: events("conference.speak.ended"), "conference.speak.ended")
assert [e["payload"]["conference_id"] for e in events("conference.speak.started") + spoken] == [cid, cid]
# The agent alone is prompted (the tone, in place of the room while it plays) and gathered
# from; its digits stop the prompt and end the gather on its leg.
client.conferences.actions.gather_dtmf_audio(
    cid, call_control_id=legs[AGENT], audio_url=TONE_URL, minimum_digits=2, maximum_digits=2, gather_id="pin")
talk("gather")
gathered = wait(lambda: [e["payload"] for e in events("call.gather.ended")
                         if e["payload"]["call_control_id"] == legs[AGENT]], "the agent's call.gather.ended")
assert len(gathered) == 1, gathered
assert (gathered[0]["digits"], gathered[0]["status"], gathered[0]["gather_id"]) == ("42", "valid", "pin"), gathered
pressed = [e["payload"]["digit"] for e in events("call.dtmf.received") if e["payload"]["call_control_id"] == legs[AGENT]]
assert pressed == ["4", "2"], pressed
for code, action in [
    ("10032", lambda: client.conferences.actions.play(cid, media_name="greeting.wav")),
    ("10032", lambda: client.conferences.actions.record_start(cid, format="wav", channels="dual")),
    ("90000", lambda: client.conferences.actions.record_stop(cid)),
    ("10032", lambda: client.conferences.actions.speak(cid, payload="hi", voice="female", voice_settings={"type": "telnyx", "voice_speed": 2})),
    ("10032", lambda: client.conferences.actions.gather_dtmf_audio(cid, call_control_id=legs[AGENT], audio_url=TONE_URL, stop_playback_on_dtmf=False)),
    ("10032", lambda: client.conferences.actions.gather_dtmf_audio(cid, call_control_id=legs[AGENT], media_name="menu.wav")),
]:
    try:
        action()
        raise AssertionError("expected " + code)
    except telnyx.UnprocessableEntityError as e:
        assert code_of(e) == code, (code, code_of(e))

client.conferences.actions.end_conference(cid)
ended = wait(lambda: events("conference.ended"), "conference.ended")
assert len(ended) == 1 and ended[0]["payload"]["conference_id"] == cid, ended
assert ended[0]["payload"]["reason"] == "ended_via_api", ended
over = client.conferences.retrieve(cid).data
assert over.status == "completed" and over.end_reason == "ended_via_api", over
assert client.conferences.list_participants(cid).data == []

created_hooks = events("conference.created")
assert len(created_hooks) == 1 and created_hooks[0]["payload"]["call_control_id"] == legs[CUSTOMER]
assert created_hooks[0]["payload"]["client_state"] == STATE
joined = [e["payload"]["call_control_id"] for e in events("conference.participant.joined")]
assert joined == [legs[CUSTOMER], legs[AGENT], legs[SUPERVISOR]], joined
left = wait(lambda: len(events("conference.participant.left")) == 3 and events("conference.participant.left"), "three left")
assert all(e["payload"]["conference_id"] == cid for e in left)
for ccid in legs.values():
    client.calls.actions.hangup(ccid)
wait(lambda: len(events("call.hangup")) == 3, "three hangups")
assert all(h["verified"] for h in hooks), "a webhook the SDK did not verify"
assert "acting" not in errors, errors
print("ok", flush=True)
