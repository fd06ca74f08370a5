"""Twilio's official Python SDK provisioning a SIP domain on Switchboard.

    python twilio_sip_domains.py BASE_URL ACCOUNT_SID AUTH_TOKEN OTHER_ACCOUNT OTHER_TOKEN VOICE_URL PBX_IP

A credential list "phones" (alice) is mapped to the domain acme.sip.twilio.com for
registrations and calls, a list "callers" (carol) for calls only, and an IP access control
list holding PBX_IP for calls; the domain's voice URL fails and its fallback, VOICE_URL, is
fetched by GET. Then the test's phones register and call (phase DOMAIN); registration is turned off
(phase UNREGISTERED); the domain is deleted. Along the way: what the SDK reads back, another
account refused the domain's name and its resources.
"""

import json
import sys

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN, OTHER, OTHER_TOKEN, VOICE_URL, PBX_IP = sys.argv[1:8]
c = Client(ACCOUNT, TOKEN)
c.api.base_url = BASE
other = Client(OTHER, OTHER_TOKEN)
other.api.base_url = BASE


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


phones = c.sip.credential_lists.create(friendly_name="phones")
assert phones.sid.startswith("CL") and phones.friendly_name == "phones", phones
alice = c.sip.credential_lists(phones.sid).credentials.create(username="alice", password="Alice-Secret-1")
assert alice.username == "alice" and alice.credential_list_sid == phones.sid, alice
expect_error(400, 21232, lambda: c.sip.credential_lists(phones.sid).credentials.create(
    username="alice", password="Another-Secret-2"))
callers = c.sip.credential_lists.create(friendly_name="callers")
c.sip.credential_lists(callers.sid).credentials.create(username="carol", password="Carol-Secret-3")
assert [l.friendly_name for l in c.sip.credential_lists.list()] == ["phones", "callers"]
assert [x.username for x in c.sip.credential_lists(phones.sid).credentials.list()] == ["alice"]

BROKEN = VOICE_URL.rsplit("/", 1)[0] + "/broken"
domain = c.sip.domains.create(domain_name="acme.sip.twilio.com", friendly_name="Acme",
                              voice_url=BROKEN, voice_fallback_url=VOICE_URL, voice_fallback_method="GET",
                              sip_registration=True)
assert domain.sid.startswith("SD") and domain.domain_name == "acme.sip.twilio.com", domain
assert domain.voice_url == BROKEN and domain.voice_method == "POST" and domain.sip_registration
assert domain.voice_fallback_url == VOICE_URL and domain.voice_fallback_method == "GET", domain
assert domain.auth_type is None
expect_error(400, 21232, lambda: other.sip.domains.create(domain_name="acme.sip.twilio.com"))
expect_error(400, 21232, lambda: c.sip.domains.create(domain_name="acme.example.com"))
expect_error(400, 21231, lambda: c.sip.domains.create(domain_name="secure.sip.twilio.com", secure=True))
expect_error(404, 20404, lambda: other.sip.domains(domain.sid).fetch())
expect_error(404, 20404, lambda: other.sip.credential_lists(phones.sid).fetch())

d = c.sip.domains(domain.sid)
d.auth.registrations.credential_list_mappings.create(credential_list_sid=phones.sid)
d.auth.calls.credential_list_mappings.create(credential_list_sid=phones.sid)
legacy = d.credential_list_mappings.create(credential_list_sid=callers.sid)
assert legacy.sid == callers.sid and legacy.domain_sid == domain.sid and legacy.friendly_name == "callers", legacy
expect_error(400, 21231, lambda: d.auth.calls.credential_list_mappings.create(credential_list_sid=phones.sid))
expect_error(400, 21231, lambda: d.auth.calls.credential_list_mappings.create(credential_list_sid="CL" + "0" * 32))
assert [m.sid for m in d.auth.registrations.credential_list_mappings.list()] == [phones.sid]
assert [m.sid for m in d.auth.calls.credential_list_mappings.list()] == [phones.sid]
assert [m.sid for m in d.credential_list_mappings.list()] == [callers.sid]
assert d.fetch().auth_type == "CREDENTIAL_LIST"

# The office PBX's address is admitted for calls without credentials (not for registrations).
acl = c.sip.ip_access_control_lists.create(friendly_name="office")
address = c.sip.ip_access_control_lists(acl.sid).ip_addresses.create(friendly_name="pbx", ip_address=PBX_IP)
assert address.cidr_prefix_length == 32 and address.ip_address == PBX_IP, address
c.sip.ip_access_control_lists(acl.sid).ip_addresses.create(friendly_name="v6", ip_address="2001:db8::", cidr_prefix_length=48)
expect_error(400, 21201, lambda: c.sip.ip_access_control_lists(acl.sid).ip_addresses.create(friendly_name="x", ip_address="pbx.example"))
mapped = d.auth.calls.ip_access_control_list_mappings.create(ip_access_control_list_sid=acl.sid)
assert mapped.sid == acl.sid and mapped.friendly_name == "office", mapped
assert d.fetch().auth_type == "IP_ACL,CREDENTIAL_LIST"

print("DOMAIN " + domain.sid, flush=True)
assert sys.stdin.readline().strip() == "go"

# Registration off: the domain's phones no longer register.
assert c.sip.domains(domain.sid).update(sip_registration=False).sip_registration is False
print("UNREGISTERED", flush=True)
assert sys.stdin.readline().strip() == "go"

c.sip.ip_access_control_lists(acl.sid).delete()
d.delete()
expect_error(404, 20404, lambda: c.sip.domains(domain.sid).fetch())
assert c.sip.domains.list() == []
print("ok", flush=True)
