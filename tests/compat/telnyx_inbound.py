"""Incoming calls to numbers on a connection, handled with Telnyx's official Python SDK (telnyx 4.189.0).

    python telnyx_inbound.py BASE_URL API_KEY PUBLIC_KEY WEBHOOK_HOST:PORT ANSWERED BUSY IGNORED \
        TRANSFERRED CALLEE

The webhook server verifies every webhook with the SDK's `webhooks.unwrap` (Ed25519) and acts on
it from a worker thread, as an app would:
- a call to ANSWERED: a recording and a fork refused before the answer (not answered yet),
  `answer` (with client_state, custom_headers and a command_id, sent
  twice), then on
  `call.answered` a two-digit `gather_using_audio` of a 600 Hz WAV this server serves (two
  tries: the test listens for it at the caller, stays silent, hears it again and keys 4, 2);
  on the valid `call.gather.ended` a `gather_using_speak` it stops at once with `gather_stop`,
  and on that (cancelled) `call.gather.ended` it hangs up (with custom_headers for the BYE);
- a call to BUSY: `reject` with cause USER_BUSY;
- a call to IGNORED: nothing (the connection's first-command timeout ends it);
- a call to TRANSFERRED: `transfer` to CALLEE (with the WAV as `audio_url` for the callee and
  a `target_leg_client_state`), unanswered; the test talks both ways through the bridge and
  then writes HANGUP to stdin, and the app hangs up the callee's leg (the caller's follows).
Also tries `bridge` with an unknown call and with the call itself.
Prints READY once listening, then one JSON summary when the five legs have hung up: every
event with its payload, each webhook's verdict, a tampered webhook's verdict, and the errors
the SDK raised.
"""

import base64
import json
import queue
import sys
import threading
import time

import telnyx
from telnyx_app import act_on, code_of, serve

BASE, KEY, PUBLIC_KEY, HOOKS, ANSWERED, BUSY, IGNORED, TRANSFERRED, CALLEE = sys.argv[1:10]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)
# The SDK imports its resources on first use (1.6 s for `calls.actions` on this machine, more
# under load): done now, before READY, so that the connection's first-command timeout measures
# Switchboard and the app's answer, not Python's imports.
client.calls.actions
STATE = base64.b64encode(b"inbound-app").decode()


hooks = []
work = queue.Queue()
errors = {}
legs = {}


def act(data):
    p = data["payload"]
    ccid = p["call_control_id"]
    kind = data["event_type"]
    if kind == "call.initiated" and p["direction"] == "incoming":
        if p["to"] == ANSWERED:
            # Before the answer there is no audio to record, fork or transcribe.
            for name, start in [
                ("record_unanswered", lambda: client.calls.actions.start_recording(
                    ccid, format="wav", channels="single")),
                ("fork_unanswered", lambda: client.calls.actions.start_forking(
                    ccid, rx="udp:127.0.0.1:9", tx="udp:127.0.0.1:9")),
            ]:
                try:
                    start()
                except telnyx.UnprocessableEntityError as e:
                    errors[name] = code_of(e)
            answered = client.calls.actions.answer(
                ccid, client_state=STATE, command_id="answer-1",
                custom_headers=[{"name": "X-Answered-By", "value": "inbound-bot"}])
            assert answered.data.result == "ok"
            # A retry of the same command: answered as the first, run once.
            assert client.calls.actions.answer(ccid, command_id="answer-1").data.result == "ok"
        elif p["to"] == TRANSFERRED:
            legs["transferred"] = ccid
            client.calls.actions.transfer(
                ccid, to=CALLEE, audio_url="http://%s/tone.wav" % HOOKS, timeout_secs=20,
                target_leg_client_state=base64.b64encode(b"b-leg").decode())
        elif p["to"] == BUSY:
            client.calls.actions.reject(ccid, cause="USER_BUSY")
            try:
                client.calls.actions.answer(ccid)
            except telnyx.UnprocessableEntityError as e:
                errors["answer_after_reject"] = e.body["errors"][0]["code"]
    elif kind == "call.initiated" and p["direction"] == "outgoing":
        legs["callee"] = ccid
    elif kind == "call.answered" and p["to"] == ANSWERED:
        for name, other in [("bridge_unknown", "v3:AAAAAAAAAAAAAAAAAAAAAA"), ("bridge_self", ccid)]:
            try:
                client.calls.actions.bridge(ccid, call_control_id_to_bridge_with=other)
            except telnyx.UnprocessableEntityError as e:
                errors[name] = code_of(e)
        client.calls.actions.gather_using_audio(
            ccid, audio_url="http://%s/tone.wav" % HOOKS, minimum_digits=2, maximum_digits=2,
            maximum_tries=2, inter_digit_timeout_millis=4000, valid_digits="0123456789",
            extra_body={"gather_id": "code"})
    elif kind == "call.gather.ended" and p["to"] == ANSWERED:
        if p["status"] == "valid":
            client.calls.actions.gather_using_speak(ccid, payload="Thank you.", voice="female", maximum_digits=1)
            client.calls.actions.stop_gather(ccid)
        else:
            client.calls.actions.hangup(ccid, custom_headers=[{"name": "X-Reason", "value": "gathered"}])


serve(HOOKS, client, hooks, work)
act_on(work, act, errors)
print("READY", flush=True)


def commands():
    for line in sys.stdin:
        if line.strip() == "HANGUP":
            client.calls.actions.hangup(legs["callee"])


threading.Thread(target=commands, daemon=True).start()


def events(kind=None):
    return [h["body"]["data"] for h in list(hooks) if kind is None or h["body"]["data"]["event_type"] == kind]


deadline = time.time() + 90
while len(events("call.hangup")) < 5 and time.time() < deadline:
    time.sleep(0.05)
# Whatever follows the hang-ups (nothing should) has a moment to arrive.
time.sleep(0.5)

# A webhook whose body was changed after signing is refused by the SDK.
first = hooks[0]
tampered = first["raw"].replace('"call.initiated"', '"call.answered"')
try:
    client.webhooks.unwrap(tampered, headers=first["headers"])
    tampered_verified = True
except Exception:
    tampered_verified = False

print(json.dumps({
    "events": [(e["event_type"], e["payload"]) for e in events()],
    "verified": [h["verified"] for h in hooks],
    "tampered_verified": tampered_verified,
    "errors": errors,
}))
