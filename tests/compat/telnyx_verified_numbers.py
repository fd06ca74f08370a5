"""Telnyx's official Python SDK verifying a number on Switchboard (telnyx 4.189.0).

    python telnyx_verified_numbers.py BASE_URL API_KEY CONNECTION_ID

The test plays the phone being verified: on `HEAR` it gets a SIPp callee ready on the carrier
trunk (and writes back `done`); on `CODE` it listens to the verification call, recognises the
spoken code with the local speech engine and writes it back once Switchboard has hung up; on
`ANSWER` it gets a callee ready that answers one call.
"""

import sys

import telnyx

BASE, KEY, CONNECTION = sys.argv[1:4]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", max_retries=0)
NUMBER = "+19995550100"


def ask(line):
    print(line, flush=True)
    return sys.stdin.readline().strip()


def tell(line):
    reply = ask(line)
    assert reply == "done", "the test's phone went otherwise after %r: %r" % (line, reply)


def expect_error(status, code, action):
    try:
        action()
    except telnyx.APIStatusError as e:
        got = e.body["errors"][0]["code"] if isinstance(e.body, dict) else e.body
        assert (e.status_code, got) == (status, code), (e.status_code, e.body)
        return e
    raise AssertionError("expected error %s" % code)


def dial_from_number():
    return client.calls.dial(connection_id=CONNECTION, to="+19995550199", from_=NUMBER)


# Not the account's number, nor one the operator allows it: calls may not present it.
expect_error(422, "10010", dial_from_number)
assert list(client.verified_numbers.list()) == []
expect_error(422, "10032", lambda: client.verified_numbers.create(
    phone_number=NUMBER, verification_method="sms"))
expect_error(422, "10015", lambda: client.verified_numbers.create(
    phone_number="99955", verification_method="call"))
expect_error(404, "10005", lambda: client.verified_numbers.actions.submit_verification_code(
    NUMBER, verification_code="123456"))

# A verification call speaks the code; the code submitted verifies the number.
tell("HEAR")
created = client.verified_numbers.create(phone_number=NUMBER, verification_method="call")
assert created.phone_number == NUMBER and created.verification_method == "call", created
code = ask("CODE")
assert len(code) == 6 and code.isdigit(), "the phone heard %r" % code
wrong = "111111" if code == "000000" else "000000"
expect_error(422, "10015", lambda: client.verified_numbers.actions.submit_verification_code(
    NUMBER, verification_code=wrong))
verified = client.verified_numbers.actions.submit_verification_code(NUMBER, verification_code=code)
assert verified.data.phone_number == NUMBER, verified
assert verified.data.record_type == "verified_number" and verified.data.verified_at, verified
assert client.verified_numbers.retrieve(NUMBER).data.phone_number == NUMBER
[listed] = list(client.verified_numbers.list())
assert listed.phone_number == NUMBER and listed.verified_at == verified.data.verified_at, listed
expect_error(422, "10015", lambda: client.verified_numbers.create(
    phone_number=NUMBER, verification_method="call"))

# Now calls may present it.
tell("ANSWER")
placed = dial_from_number()
assert placed.data.call_control_id, placed
client.calls.actions.hangup(placed.data.call_control_id)

# Deleted: gone, and refused again.
gone = client.verified_numbers.delete(NUMBER)
assert gone.data.phone_number == NUMBER, gone
expect_error(404, "10005", lambda: client.verified_numbers.retrieve(NUMBER))
expect_error(422, "10010", dial_from_number)
print("ok")
