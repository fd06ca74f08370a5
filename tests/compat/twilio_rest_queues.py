"""Twilio's official Python SDK with call queues on Switchboard.

    python twilio_rest_queues.py BASE_URL ACCOUNT_SID AUTH_TOKEN

Calls to +15551234 (a SIPp callee answers them) wait in the queue "support" by <Enqueue>,
hearing the app's waitUrl document; the SDK lists the queue and its members, dequeues one to
other TwiML, and an agent call's <Dial><Queue> bridges the head of the queue. Every webhook is
checked with the SDK's RequestValidator.
"""

import sys
import time

from compat_app import App, twilio_validator, wait
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN = sys.argv[1:4]
c = Client(ACCOUNT, TOKEN)
c.api.base_url = BASE

DOCS = {
    "/wait": '<Response><Pause length="1"/></Response>',
    "/leave": "<Response><Leave/></Response>",
    "/out": "<Response><Hangup/></Response>",
    "/after": "<Response><Hangup/></Response>",
    "/dialdone": "<Response><Hangup/></Response>",
}
app = App(twilio_validator(TOKEN), lambda path, params: DOCS.get(path, "<Response/>"))
APP = app.base
requests = app.requests


def status_of(sid):
    return c.calls(sid).fetch().status


def expect_error(status, code, action):
    try:
        action()
    except TwilioRestException as e:
        assert (e.status, e.code) == (status, code), (e.status, e.code, e.msg)
        return
    raise AssertionError("expected error %d" % code)


def enqueue(queue, wait_doc):
    twiml = '<Response><Enqueue waitUrl="%s%s" action="%s/after">%s</Enqueue></Response>' % (APP, wait_doc, APP, queue)
    return c.calls.create(to="+15551234", from_="+15550001", twiml=twiml)


# Two callers wait in "support" (created on demand), in order.
a = enqueue("support", "/wait")
wait(lambda: requests("/wait", a.sid), "a waiting")
b = enqueue("support", "/wait")
wait(lambda: requests("/wait", b.sid), "b waiting")
support = wait(lambda: [q for q in c.queues.list() if q.friendly_name == "support"], "the queue")[0]
assert support.sid.startswith("QU") and support.current_size == 2 and support.max_size == 1000, support.current_size
members = c.queues(support.sid).members.list()
assert [m.call_sid for m in members] == [a.sid, b.sid] and [m.position for m in members] == [1, 2]
assert c.queues(support.sid).members("Front").fetch().call_sid == a.sid
assert c.queues(support.sid).members(b.sid).fetch().queue_sid == support.sid
# The wait document is asked with the caller's place in the queue.
w = wait(lambda: [p for p in requests("/wait", b.sid) if p["CurrentQueueSize"] == "2"], "b's place")[-1]
assert w["QueuePosition"] == "2" and w["QueueSid"] == support.sid and w["MaxQueueSize"] == "1000", w

# Dequeue b to other TwiML through the API: it runs that document (a hang-up).
c.queues(support.sid).members(b.sid).update(url=APP + "/out", method="POST")
wait(lambda: requests("/out", b.sid), "b redirected")
wait(lambda: status_of(b.sid) == "completed", "b completed")
assert c.queues(support.sid).fetch().current_size == 1

# An agent's <Dial><Queue> bridges the head of the queue; when the caller hangs up, the
# agent's Dial action and the caller's Enqueue action both learn it.
agent = c.calls.create(
    to="+15551234", from_="+15550009",
    twiml='<Response><Dial action="%s/dialdone"><Queue>support</Queue></Dial></Response>' % APP,
)
wait(lambda: c.queues(support.sid).fetch().current_size == 0, "a dequeued")
time.sleep(1.0)
c.calls(a.sid).update(status="completed")
done = wait(lambda: requests("/dialdone", agent.sid), "the agent's Dial action")[0]
assert done["DialCallStatus"] == "completed" and done["DialCallSid"] == a.sid, done
assert done["DialBridged"] == "true" and int(done["DialCallDuration"]) >= 1, done
after = wait(lambda: requests("/after", a.sid), "a's Enqueue action")[0]
assert after["QueueResult"] == "bridged" and after["QueueSid"] == support.sid, after
wait(lambda: status_of(agent.sid) == "completed", "the agent completed")

# <Leave> in the wait document: the caller's action says so.
d = enqueue("sales", "/leave")
left = wait(lambda: requests("/after", d.sid), "d left")[0]
assert left["QueueResult"] == "leave" and left["QueueSid"].startswith("QU"), left
wait(lambda: status_of(d.sid) == "completed", "d completed")

# A caller ended while it waits: its action still comes, saying so.
f = enqueue("sales", "/wait")
wait(lambda: requests("/wait", f.sid), "f waiting")
c.calls(f.sid).update(status="completed")
hung_up = wait(lambda: requests("/after", f.sid), "f's Enqueue action")[0]
assert hung_up["QueueResult"] == "hangup" and hung_up["CallStatus"] == "completed", hung_up
assert hung_up["QueueSid"] == left["QueueSid"], hung_up

# A <Dial><Queue> on a queue that does not exist fails at once.
e = c.calls.create(
    to="+15551234", from_="+15550008",
    twiml='<Response><Dial action="%s/dialdone"><Queue>nobody</Queue></Dial></Response>' % APP,
)
failed = wait(lambda: requests("/dialdone", e.sid), "e's Dial action")[0]
assert failed["DialCallStatus"] == "failed", failed

# A <Dial timeout="2"><Queue> on a queue nobody waits in gives up at its timeout (timed by
# the call's alarm in the core), not before.
g = c.calls.create(
    to="+15551234", from_="+15550009",
    twiml='<Response><Dial timeout="2" action="%s/dialdone"><Queue>sales</Queue></Dial></Response>' % APP,
)
wait(lambda: status_of(g.sid) == "in-progress", "g answered")
answered = time.monotonic()
gave_up = wait(lambda: requests("/dialdone", g.sid), "g's Dial action")[0]
waited = time.monotonic() - answered
assert gave_up["DialCallStatus"] == "no-answer", gave_up
assert 1.5 <= waited <= 6, waited

# The Queues resource itself.
billing = c.queues.create(friendly_name="billing", max_size=5)
assert billing.sid.startswith("QU") and billing.max_size == 5 and billing.current_size == 0
expect_error(400, 22003, lambda: c.queues.create(friendly_name="billing"))
expect_error(400, 20001, lambda: c.queues.create(friendly_name="huge", max_size=5001))
expect_error(400, 20001, lambda: c.queues.create(friendly_name="", max_size=5))
assert c.queues(billing.sid).update(max_size=10, friendly_name="accounts").max_size == 10
assert c.queues(billing.sid).fetch().friendly_name == "accounts"
assert sorted(q.friendly_name for q in c.queues.list()) == ["accounts", "sales", "support"]
expect_error(404, 20404, lambda: c.queues(support.sid).members(a.sid).fetch())
assert c.queues(billing.sid).delete() is True
expect_error(404, 20404, lambda: c.queues(billing.sid).fetch())
assert app.all_valid(), "the SDK's RequestValidator rejects a signature"
print("ok")
