"""Call queues with Telnyx's official Python SDK (telnyx 4.189.0).

    python telnyx_queues.py BASE_URL API_KEY PUBLIC_KEY WEBHOOK_HOST:PORT CONNECTION_ID LEAVER \
        WAITER CALLEE

The webhook server verifies every webhook with the SDK's `webhooks.unwrap`; a worker acts:
- a call to LEAVER: `answer`; `enqueue` in "support" (a second `enqueue` is refused), then
  `leave_queue`; then `enqueue` in "short" with `max_wait_time_secs=1`, and once that
  `call.dequeued` (timeout) comes, `leave_queue` (refused: it is in none) and `hangup`;
- a call to WAITER: `answer`, `enqueue` in "support" and a 600 Hz WAV played as hold music;
  prints ENQUEUED. On DIAL (stdin) it dials CALLEE and, when that leg answers, `bridge`s it with
  the queue "support" (after trying a queue that does not exist); prints BRIDGED on both
  legs' `call.bridged`. On REQUEUE (stdin) it enqueues the waiter in "support" again, which
  takes it out of the bridge; prints REQUEUED on its `call.enqueued`. On HANGUP (stdin) it
  hangs up both legs.
Prints one JSON summary once both bridged legs and the leaver have hung up.
"""

import json
import queue
import sys
import threading
import time

import telnyx
from telnyx_app import act_on, code_of, serve

BASE, KEY, PUBLIC_KEY, HOOKS, CONNECTION, LEAVER, WAITER, CALLEE = sys.argv[1:9]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)

hooks = []
work = queue.Queue()
errors = {}
rest = {}
legs = {}
bridged = set()


def act(data):
    p = data["payload"]
    ccid = p["call_control_id"]
    kind = data["event_type"]
    if kind == "call.initiated" and p["direction"] == "incoming":
        client.calls.actions.answer(ccid)
    elif kind == "call.answered" and p["to"] == LEAVER:
        client.calls.actions.enqueue(ccid, queue_name="support")
        try:
            client.calls.actions.enqueue(ccid, queue_name="support")
        except telnyx.UnprocessableEntityError as e:
            errors["enqueued_twice"] = code_of(e)
        client.calls.actions.leave_queue(ccid)
        client.calls.actions.enqueue(ccid, queue_name="short", max_wait_time_secs=1)
    elif kind == "call.dequeued" and p["to"] == LEAVER and p["reason"] == "timeout":
        try:
            client.calls.actions.leave_queue(ccid)
        except telnyx.UnprocessableEntityError as e:
            errors["leave_unqueued"] = code_of(e)
        client.calls.actions.hangup(ccid)
    elif kind == "call.answered" and p["to"] == WAITER:
        legs["waiter"] = ccid
        client.calls.actions.enqueue(ccid, queue_name="support", max_size=10)
        client.calls.actions.start_playback(ccid, audio_url="http://%s/tone.wav" % HOOKS)
        rest_api(ccid)
        print("ENQUEUED", flush=True)
    elif kind == "call.answered" and p["to"] == CALLEE:
        legs["callee"] = ccid
        try:
            client.calls.actions.bridge(ccid, call_control_id_to_bridge_with="", queue="nobody-here")
        except telnyx.UnprocessableEntityError as e:
            errors["unknown_queue"] = code_of(e)
        client.calls.actions.bridge(ccid, call_control_id_to_bridge_with="", queue="support")
    elif kind == "call.enqueued" and p["to"] == WAITER and legs.get("requeued"):
        print("REQUEUED", flush=True)
    elif kind == "call.bridged":
        bridged.add(ccid)
        if len(bridged) == 2:
            print("BRIDGED", flush=True)


def rest_api(waiter):
    """The queues' own resources while the waiter waits in "support"."""
    support = client.queues.retrieve("support").data
    rest["support"] = [support.name, support.current_size, support.max_size, support.record_type]
    waiting = client.queues.calls.list("support").data
    rest["calls"] = [[c.call_control_id == waiter, c.queue_position, c.record_type, c.is_alive] for c in waiting]
    one = client.queues.calls.retrieve(waiter, queue_name="support").data
    rest["call"] = [one.call_control_id == waiter, one.from_, one.to == WAITER]
    spare = client.queues.create(queue_name="spare", max_size=5).data
    rest["created"] = [spare.name, spare.max_size, spare.current_size]
    rest["updated"] = client.queues.update("spare", max_size=7).data.max_size
    rest["listed"] = sorted(q.name for q in client.queues.list().data)
    client.queues.delete("spare")
    for name, action in [
        ("keep_after_hangup", lambda: client.queues.calls.update(waiter, queue_name="support", keep_after_hangup=True)),
        ("delete_busy", lambda: client.queues.delete("support")),
    ]:
        try:
            action()
            rest[name] = "accepted"
        except telnyx.UnprocessableEntityError as e:
            rest[name] = code_of(e)
    try:
        client.queues.retrieve("spare")
        rest["deleted"] = "still there"
    except telnyx.NotFoundError:
        rest["deleted"] = "gone"


def commands():
    for line in sys.stdin:
        line = line.strip()
        if line == "DIAL":
            client.calls.dial(connection_id=CONNECTION, to=CALLEE, from_=WAITER)
        elif line == "REQUEUE":
            legs["requeued"] = True
            client.calls.actions.enqueue(legs["waiter"], queue_name="support")
        elif line == "HANGUP":
            client.calls.actions.hangup(legs["callee"])
            client.calls.actions.hangup(legs["waiter"])


serve(HOOKS, client, hooks, work)
act_on(work, act, errors)
threading.Thread(target=commands, daemon=True).start()
print("READY", flush=True)


def events(kind=None):
    return [h["body"]["data"] for h in list(hooks) if kind is None or h["body"]["data"]["event_type"] == kind]


deadline = time.time() + 90
while len(events("call.hangup")) < 3 and time.time() < deadline:
    time.sleep(0.05)
time.sleep(0.5)
print(json.dumps({
    "events": [(e["event_type"], e["payload"]) for e in events()],
    "verified": [h["verified"] for h in hooks],
    "errors": errors,
    "rest": rest,
}))
