"""Call Control applications managed with Telnyx's official Python SDK (telnyx 4.189.0).

    python telnyx_applications.py BASE_URL API_KEY OTHER_ACCOUNTS_KEY PUBLIC_KEY WEBHOOK_HOST:PORT NUMBER

Creates three applications, lists them (the SDK's auto-pagination, two per page, and a name
filter), reads one, changes it with PATCH, dials through one it created (the dial's webhooks
must reach that application's new webhook URL, signed, which answers too late for its
webhook_timeout_secs, and then its failover URL), deletes one, and checks the
errors: a missing webhook_event_url, an unknown id, another account's application, a
version-1 webhook format. Then the account's numbers: listed (not the other account's), NUMBER
given to the first application with PATCH (filter by connection_id, errors for another
account's application or number and a field not kept); it prints PATCHED and waits for a line
on stdin while the test calls NUMBER (the call's webhooks must reach that application, whose
first-command timeout ends it); deleting the application takes the number back. Prints one
JSON summary.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import telnyx

BASE, KEY, OTHER_KEY, PUBLIC_KEY, HOOKS, NUMBER = sys.argv[1:7]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", public_key=PUBLIC_KEY, max_retries=0)
other = telnyx.Telnyx(api_key=OTHER_KEY, base_url=BASE + "/v2", max_retries=0)
hooks = []


class Hooks(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        try:
            client.webhooks.unwrap(body, headers=dict(self.headers.items()))
            verified = True
        except Exception:
            verified = False
        envelope = json.loads(body)
        hooks.append({"path": self.path, "event": envelope["data"]["event_type"], "verified": verified,
                      "attempt": envelope["meta"]["attempt"], "delivered_to": envelope["meta"]["delivered_to"]})
        # The changed application's event URL answers only after its 1 s webhook_timeout_secs:
        # its failover URL must get the webhooks.
        if self.path == "/beta2":
            time.sleep(3)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


host, port = HOOKS.rsplit(":", 1)
server = ThreadingHTTPServer((host, int(port)), Hooks)
threading.Thread(target=server.serve_forever, daemon=True).start()

out = {"errors": {}}


def code_of(e):
    return e.body["errors"][0]["code"] if isinstance(e.body, dict) else e.body[0]["code"]

made = []
for name in ["alpha bot", "beta bot", "gamma ivr"]:
    made.append(client.call_control_applications.create(
        application_name=name,
        webhook_event_url="http://%s/%s" % (HOOKS, name.split()[0]),
        first_command_timeout=True,
        first_command_timeout_secs=2,
        dtmf_type="RFC 2833",
    ).data)
out["created"] = made[0].to_dict()
out["listed"] = [a.application_name for a in client.call_control_applications.list(page_size=2)]
out["filtered"] = [a.application_name for a in client.call_control_applications.list(
    filter={"application_name": {"contains": "BOT"}})]
out["retrieved"] = client.call_control_applications.retrieve(made[1].id).data.to_dict()
out["updated"] = client.call_control_applications.update(
    made[1].id,
    application_name="beta bot v2",
    webhook_event_url="http://%s/beta2" % HOOKS,
    webhook_event_failover_url="http://%s/beta-failover" % HOOKS,
    first_command_timeout=False,
    webhook_timeout_secs=1,
    tags=["seed", "v2"],
).data.to_dict()
out["other_sees"] = [a.id for a in other.call_control_applications.list()]

# A dial through the updated application: its webhooks go to the new URL, which fails, and
# then to its failover URL.
call = client.calls.dial(connection_id=made[1].id, from_="+15550002222", to="+15551234").data
deadline = time.time() + 20
while not any(h["event"] == "call.hangup" and h["path"] == "/beta-failover" for h in hooks) \
        and time.time() < deadline:
    time.sleep(0.05)
out["hooks"] = hooks

# The account's numbers, and one given to the first application.
numbers = list(client.phone_numbers.list())
out["numbers"] = sorted(n.phone_number for n in numbers)
out["other_numbers"] = [n.phone_number for n in other.phone_numbers.list()]
number = next(n for n in numbers if n.phone_number == NUMBER)
out["patched"] = client.phone_numbers.update(number.id, connection_id=made[0].id).data.to_dict(mode="json")
out["by_connection"] = [n.phone_number for n in client.phone_numbers.list(filter={"connection_id": made[0].id})]
others_app = other.call_control_applications.create(application_name="theirs", webhook_event_url="http://%s/theirs" % HOOKS).data
try:
    client.phone_numbers.update(number.id, connection_id=others_app.id)
except telnyx.UnprocessableEntityError as e:
    out["errors"]["others_connection"] = code_of(e)
try:
    other.phone_numbers.retrieve(number.id)
except telnyx.NotFoundError as e:
    out["errors"]["others_number"] = e.status_code
try:
    client.phone_numbers.update(number.id, tags=["x"])
except telnyx.UnprocessableEntityError as e:
    out["errors"]["tags"] = code_of(e)
print("PATCHED", flush=True)
sys.stdin.readline()
deadline = time.time() + 20
while not any(h["event"] == "call.hangup" and h["path"] == "/alpha" for h in hooks) and time.time() < deadline:
    time.sleep(0.05)
deleted = client.call_control_applications.delete(made[2].id).data
out["deleted"] = deleted.id == made[2].id
try:
    client.call_control_applications.retrieve(made[2].id)
except telnyx.NotFoundError as e:
    out["errors"]["deleted"] = e.status_code
try:
    other.call_control_applications.retrieve(made[0].id)
except telnyx.NotFoundError as e:
    out["errors"]["other_account"] = e.status_code
try:
    client.post("/call_control_applications", body={"application_name": "x"}, cast_to=object)
except telnyx.UnprocessableEntityError as e:
    out["errors"]["missing"] = e.body["errors"][0] if isinstance(e.body, dict) else e.body[0]
try:
    client.call_control_applications.update(made[0].id, application_name="a", webhook_event_url="http://%s/a" % HOOKS,
                                             webhook_api_version="1")
except telnyx.UnprocessableEntityError as e:
    out["errors"]["version_1"] = e.body["errors"][0]["code"] if isinstance(e.body, dict) else e.body[0]["code"]
# A setting Switchboard does not serve is refused, never kept unused: its error names it.
for field, body in [("dtmf_type", {"dtmf_type": "Inband"}),
                    ("inbound", {"inbound": {"channel_limit": 1, "sip_subdomain": "acme"}})]:
    try:
        client.call_control_applications.update(made[0].id, application_name="alpha bot",
                                                 webhook_event_url="http://%s/alpha" % HOOKS, **body)
    except telnyx.UnprocessableEntityError as e:
        error = e.body["errors"][0] if isinstance(e.body, dict) else e.body[0]
        out["errors"]["unserved_" + field] = [error["code"], error["source"]["pointer"]]
try:
    client.calls.dial(connection_id=made[2].id, from_="+15550002222", to="+15551234")
except telnyx.UnprocessableEntityError as e:
    out["errors"]["dial_deleted"] = e.body["errors"][0]["code"] if isinstance(e.body, dict) else e.body[0]["code"]
client.call_control_applications.delete(made[0].id)
out["number_after_delete"] = client.phone_numbers.retrieve(number.id).data.connection_id
out["remaining"] = sorted(a.application_name for a in client.call_control_applications.list())
print(json.dumps(out))
