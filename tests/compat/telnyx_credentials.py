"""Credential connections and telephony credentials with Telnyx's official Python SDK
(telnyx 4.189.0).

    python telnyx_credentials.py BASE_URL API_KEY OTHER_ACCOUNTS_KEY CALL_CONTROL_APP_ID

Creates a credential connection (and checks the errors for a taken or malformed user name and
a short or missing password), lists, filters, reads and changes it; creates telephony
credentials on it (not on a Call Control application), lists them by tag, reads one, and
mints its token; an expired credential has none; another account sees nothing of either.
Then it prints `CREDENTIAL <sip_username> <sip_password>` and waits for a line on stdin while
the test registers a SIP phone with it; deletes the credential (and reads it again), prints
`DELETED` and waits for another line while the test checks the phone cannot register any
more; prints one JSON summary.
"""

import datetime
import json
import sys

import telnyx

BASE, KEY, OTHER_KEY, APP = sys.argv[1:5]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", max_retries=0)
other = telnyx.Telnyx(api_key=OTHER_KEY, base_url=BASE + "/v2", max_retries=0)
out = {"errors": {}}


def code_of(e):
    return e.body["errors"][0]["code"] if isinstance(e.body, dict) else e.body[0]["code"]


def error(name, call):
    try:
        call()
        out["errors"][name] = None
    except telnyx.APIStatusError as e:
        out["errors"][name] = {"status": e.status_code, "code": code_of(e)}


connection = client.credential_connections.create(
    connection_name="desk phones", user_name="deskphones1", password="desk-secret-1"
).data
out["connection"] = connection.to_dict()
client.credential_connections.create(
    connection_name="front desk", user_name="frontdesk22", password="front-secret-2"
)
error("taken", lambda: client.credential_connections.create(
    connection_name="again", user_name="deskphones1", password="another-secret"))
error("malformed", lambda: client.credential_connections.create(
    connection_name="bad", user_name="12345x", password="another-secret"))
error("short_password", lambda: client.credential_connections.create(
    connection_name="bad", user_name="shortpass1", password="short"))
error("no_password", lambda: client.credential_connections.create(
    connection_name="bad", user_name="nopass12", password=None))
out["listed"] = [c.connection_name for c in client.credential_connections.list()]
out["filtered"] = [c.connection_name for c in client.credential_connections.list(
    filter={"connection_name": {"contains": "desk p"}})]
out["retrieved"] = client.credential_connections.retrieve(connection.id).data.to_dict()
out["updated"] = client.credential_connections.update(
    connection.id, connection_name="desk phones v2", webhook_event_url="http://127.0.0.1:9/hooks"
).data.to_dict()
error("other_account_connection", lambda: other.credential_connections.retrieve(connection.id))
error("not_a_credential_connection", lambda: client.credential_connections.retrieve(APP))

credential = client.telephony_credentials.create(
    connection_id=connection.id, name="alice", tag="team-a"
).data
out["credential"] = credential.to_dict()
client.telephony_credentials.create(connection_id=connection.id, name="bob", tag="team-b")
error("credential_on_an_application", lambda: client.telephony_credentials.create(connection_id=APP))
out["by_tag"] = [c.name for c in client.telephony_credentials.list(filter={"tag": "team-a"})]
out["all"] = sorted(c.name for c in client.telephony_credentials.list())
out["credential_retrieved"] = client.telephony_credentials.retrieve(credential.id).data.to_dict()
token = client.telephony_credentials.create_token(credential.id)
out["token_parts"] = len(token.split("."))
past = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)).isoformat()
expired = client.telephony_credentials.create(
    connection_id=connection.id, name="old", expires_at=past
).data
out["expired"] = expired.to_dict()
error("expired_token", lambda: client.telephony_credentials.create_token(expired.id))
error("other_account_credential", lambda: other.telephony_credentials.retrieve(credential.id))
error("other_account_token", lambda: other.telephony_credentials.create_token(credential.id))

print("CREDENTIAL %s %s" % (credential.sip_username, credential.sip_password), flush=True)
sys.stdin.readline()
client.telephony_credentials.delete(credential.id)
error("deleted", lambda: client.telephony_credentials.retrieve(credential.id))
print("DELETED", flush=True)
sys.stdin.readline()
print(json.dumps(out))
