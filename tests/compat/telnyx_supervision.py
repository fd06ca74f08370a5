"""A supervisor on a bridged call with Telnyx's official Python SDK (telnyx 4.189.0).

    python telnyx_supervision.py BASE_URL API_KEY PUBLIC_KEY WEBHOOK_HOST:PORT CONNECTION \
        CUSTOMER AGENT SUPERVISOR

The app dials the customer and the agent and bridges them (`calls.actions.bridge`), then dials
the supervisor with `supervise_call_control_id` (the agent's leg) and
`supervisor_role="monitor"`, switches its role (`calls.actions.switch_supervisor_role`) to
`whisper` and `barge`, and hangs the supervisor up. At each `TALK <phase>` line the test checks
who hears whom by the tones its phones hear, and answers `go`. Refusals are checked with the
SDK's errors. Every webhook is verified with the SDK's `webhooks.unwrap`. Prints `ok` at the end.
"""

import queue
import sys
import threading
import time

import telnyx
from telnyx_app import act_on, code_of, serve

BASE, KEY, PUBLIC_KEY, HOOKS, CONNECTION, CUSTOMER, AGENT, SUPERVISOR = sys.argv[1:9]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)

hooks = []
work = queue.Queue()
errors = {}
legs = {}
bridged = threading.Event()
supervising = threading.Event()


def dial(number, **more):
    return client.calls.dial(connection_id=CONNECTION, to=number, from_="+15550001", **more).data


def act(data):
    p = data["payload"]
    kind = data["event_type"]
    if kind == "call.answered":
        legs[p["to"]] = p["call_control_id"]
        if p["to"] == CUSTOMER:
            dial(AGENT)
        elif p["to"] == AGENT:
            client.calls.actions.bridge(p["call_control_id"], call_control_id_to_bridge_with=legs[CUSTOMER])
        elif p["to"] == SUPERVISOR:
            supervising.set()
    elif kind == "call.bridged" and p["call_control_id"] == legs.get(AGENT):
        bridged.set()


def talk(phase):
    print("TALK " + phase, flush=True)
    assert sys.stdin.readline().strip() == "go"


def refused(status, code, action):
    try:
        action()
    except telnyx.APIStatusError as e:
        assert (e.status_code, code_of(e)) == (status, code), (e.status_code, e.body)
        return
    raise AssertionError("expected %d %s" % (status, code))


serve(HOOKS, client, hooks, work)
act_on(work, act, errors)
dial(CUSTOMER)
assert bridged.wait(30), ("not bridged", errors, [h["body"]["data"]["event_type"] for h in hooks])

# A role Telnyx does not have, a supervised call that is not a live call of the account.
refused(422, "10032", lambda: dial(SUPERVISOR, supervise_call_control_id=legs[AGENT], supervisor_role="boss"))
refused(422, "90015", lambda: dial(SUPERVISOR, supervise_call_control_id="v3:not-a-call", supervisor_role="monitor"))

supervisor = dial(SUPERVISOR, supervise_call_control_id=legs[AGENT], supervisor_role="monitor")
assert supervising.wait(30), ("the supervisor did not answer", errors)
assert legs[SUPERVISOR] == supervisor.call_control_id
talk("monitor")

client.calls.actions.switch_supervisor_role(legs[SUPERVISOR], role="whisper")
talk("whisper")
client.calls.actions.switch_supervisor_role(legs[SUPERVISOR], role="barge")
talk("barge")

# The customer supervises nothing; a role switch names one of Telnyx's three.
refused(422, "90000", lambda: client.calls.actions.switch_supervisor_role(legs[CUSTOMER], role="whisper"))
refused(422, "10032", lambda: client.calls.actions.switch_supervisor_role(legs[SUPERVISOR], role="boss"))

# The supervisor leaves: the two go on together.
client.calls.actions.hangup(legs[SUPERVISOR])
talk("left")

assert not errors, errors
assert all(h["verified"] for h in hooks), [h["raw"] for h in hooks if not h["verified"]]
# Still bridged: the customer's hang-up ends the agent's call too, as a bridge does.
client.calls.actions.hangup(legs[CUSTOMER])
deadline = time.time() + 20
while not [h for h in list(hooks) if h["body"]["data"]["event_type"] == "call.hangup"
           and h["body"]["data"]["payload"]["call_control_id"] == legs[AGENT]]:
    assert time.time() < deadline, "the agent's call outlived the bridge"
    time.sleep(0.05)
print("ok", flush=True)
