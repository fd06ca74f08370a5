"""Twilio's official Python SDK provisioning an Elastic SIP Trunk on Switchboard.

    python twilio_sip_trunking.py BASE_URL ACCOUNT_SID AUTH_TOKEN OTHER_ACCOUNT OTHER_TOKEN PBX_IP PBX_PORT NUMBER

A trunk acme.pstn.twilio.com is given an IP access control list holding PBX_IP (its
termination), an origination URL sip:PBX_IP:PBX_PORT and the account's number NUMBER (phase
TRUNK: the test's carrier calls the number and the PBX answers; the PBX calls out through the
trunk; both calls are recorded, dual). Then the number is taken back (phase RELEASED: its voice URL answers again) and the
trunk deleted. Along the way: what the SDK reads back, and what is refused — another account's
trunk, list, number and domain name, an invalid domain, what Switchboard does not serve.
"""

import json
import sys

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN, OTHER, OTHER_TOKEN, PBX_IP, PBX_PORT, NUMBER = sys.argv[1:9]
c = Client(ACCOUNT, TOKEN)
c.api.base_url = BASE
c.trunking.base_url = BASE
other = Client(OTHER, OTHER_TOKEN)
other.api.base_url = BASE
other.trunking.base_url = BASE
DOMAIN = "acme.pstn.twilio.com"


def expect_error(status, code, action):
    try:
        action()
    except TwilioRestException as e:
        assert (e.status, e.code) == (status, code), (e.status, e.code, e.msg)
        return
    except TwilioException as e:
        response = e.args[1]
        assert (response.status_code, json.loads(response.text)["code"]) == (status, code), response.text
        return
    raise AssertionError("expected error %d" % code)


acl = c.sip.ip_access_control_lists.create(friendly_name="office")
c.sip.ip_access_control_lists(acl.sid).ip_addresses.create(friendly_name="pbx", ip_address=PBX_IP)

trunks = c.trunking.v1.trunks
trunk = trunks.create(friendly_name="Office", domain_name=DOMAIN)
assert trunk.sid.startswith("TK") and trunk.domain_name == DOMAIN, trunk
assert trunk.friendly_name == "Office" and trunk.secure is False, trunk
assert trunk.transfer_mode == "disable-all" and trunk.auth_type is None, trunk
assert trunk.account_sid == ACCOUNT and trunk.date_created is not None, trunk
# A domain is one trunk's, across accounts; Twilio's form; what is not served is refused.
expect_error(400, 21248, lambda: other.trunking.v1.trunks.create(domain_name=DOMAIN))
expect_error(400, 21245, lambda: trunks.create(domain_name="acme.example.com"))
expect_error(400, 21231, lambda: trunks.create(disaster_recovery_url="https://example.com/dr"))
expect_error(400, 21231, lambda: trunks.create(transfer_mode="enable-all"))
expect_error(400, 21231, lambda: trunks.create(cnam_lookup_enabled=True))
# Another account sees none of it.
expect_error(404, 20404, lambda: other.trunking.v1.trunks(trunk.sid).fetch())
assert other.trunking.v1.trunks.list() == []

t = trunks(trunk.sid)
given = t.ip_access_control_lists.create(ip_access_control_list_sid=acl.sid)
assert given.sid == acl.sid and given.trunk_sid == trunk.sid and given.friendly_name == "office", given
others_acl = other.sip.ip_access_control_lists.create(friendly_name="theirs")
expect_error(400, 21201, lambda: t.ip_access_control_lists.create(ip_access_control_list_sid=others_acl.sid))
assert t.fetch().auth_type == "IP_ACL"

expect_error(400, 21201, lambda: t.origination_urls.create(
    friendly_name="bad", sip_url="http://example.com", priority=1, weight=1, enabled=True))
url = t.origination_urls.create(friendly_name="pbx", sip_url="sip:%s:%s" % (PBX_IP, PBX_PORT),
                                priority=10, weight=10, enabled=True)
assert url.sid.startswith("OU") and url.trunk_sid == trunk.sid and url.priority == 10, url
assert url.weight == 10 and url.enabled is True and url.sip_url.endswith(PBX_PORT), url
assert [u.sid for u in t.origination_urls.list()] == [url.sid]

number = [n for n in c.incoming_phone_numbers.list() if n.phone_number == NUMBER][0]
assert number.trunk_sid is None, number
pn = t.phone_numbers.create(phone_number_sid=number.sid)
assert pn.sid == number.sid and pn.trunk_sid == trunk.sid and pn.phone_number == NUMBER, pn
assert c.incoming_phone_numbers(number.sid).fetch().trunk_sid == trunk.sid
assert [p.phone_number for p in t.phone_numbers.list()] == [NUMBER]
# Another account's trunk cannot take this account's number.
theirs = other.trunking.v1.trunks.create(friendly_name="theirs")
expect_error(400, 21201, lambda: other.trunking.v1.trunks(theirs.sid).phone_numbers.create(
    phone_number_sid=number.sid))
assert [x.sid for x in trunks.list()] == [trunk.sid]

# Its calls recorded from the answer, both parties apart; from the ringing is not served.
assert t.recordings().fetch().mode == "do-not-record"
rec = t.recordings().update(mode="record-from-answer-dual", trim="do-not-trim")
assert (rec.mode, rec.trim) == ("record-from-answer-dual", "do-not-trim"), rec
assert t.recordings().fetch().mode == "record-from-answer-dual"
expect_error(400, 21231, lambda: t.recordings().update(mode="record-from-ringing"))
assert t.fetch().recording == {"mode": "record-from-answer-dual", "trim": "do-not-trim"}

print("TRUNK " + trunk.sid, flush=True)
assert sys.stdin.readline().strip() == "go"

t.phone_numbers(number.sid).delete()
assert t.phone_numbers.list() == []
assert c.incoming_phone_numbers(number.sid).fetch().trunk_sid is None
print("RELEASED", flush=True)
assert sys.stdin.readline().strip() == "go"

# The number given to the trunk from the number's side (TrunkSid), then taken back; a trunk
# that is not the account's is refused; fax and regulatory settings are not served.
assert c.incoming_phone_numbers(number.sid).update(trunk_sid=trunk.sid).trunk_sid == trunk.sid
assert [p.phone_number for p in t.phone_numbers.list()] == [NUMBER]
expect_error(400, 20001, lambda: c.incoming_phone_numbers(number.sid).update(trunk_sid="TK" + "0" * 32))
expect_error(400, 20001, lambda: c.incoming_phone_numbers(number.sid).update(voice_receive_mode="fax"))
expect_error(400, 20001, lambda: c.incoming_phone_numbers(number.sid).update(address_sid="AD" + "0" * 32))
assert c.incoming_phone_numbers(number.sid).update(trunk_sid="").trunk_sid is None
assert t.phone_numbers.list() == []

t.delete()
expect_error(404, 20404, lambda: t.fetch())
assert trunks.list() == []
print("ok", flush=True)
