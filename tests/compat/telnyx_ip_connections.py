"""Telnyx's official Python SDK provisioning an IP connection on Switchboard.

    python telnyx_ip_connections.py BASE_URL API_KEY OTHER_API_KEY PBX_IP PBX_PORT NUMBER FQDN_PORT

An IP connection "office" gets the PBX's address (PBX_IP:PBX_PORT) and the account's number
NUMBER (phase CONNECTED: the test's carrier calls the number and the PBX answers; the PBX calls
out from its address). Its calls out are then held to an outbound voice profile of the US only
and a channel limit of 1 (phase LIMITED). The connection is then made inactive (phase INACTIVE: neither works),
active again and its address deleted (phase NO_ADDRESS: the PBX is a stranger), and the
connection deleted. Then an FQDN connection "branch" gets the FQDN localhost (its A record,
127.0.0.1, port FQDN_PORT) and the number (phase FQDN: the same calls, from and to
127.0.0.1). Along the way: what the SDK reads back, and what is refused — another
account's claim on the address, its view of the connection, a bad address.
"""

import sys

import telnyx
from telnyx_app import code_of

BASE, KEY, OTHER_KEY, PBX_IP, PBX_PORT, NUMBER, FQDN_PORT = sys.argv[1:8]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", max_retries=0)
other = telnyx.Telnyx(api_key=OTHER_KEY, base_url=BASE + "/v2", max_retries=0)


def refused(code, action):
    try:
        action()
    except telnyx.APIStatusError as e:
        assert code_of(e) == code, (code, e.body)
        return
    raise AssertionError("expected " + code)


def phase(name):
    print(name, flush=True)
    assert sys.stdin.readline().strip() == "go"


conn = client.ip_connections.create(connection_name="office", transport_protocol="UDP").data
assert conn.record_type == "ip_connection" and conn.connection_name == "office", conn
assert conn.transport_protocol == "UDP" and conn.encrypted_media is None, conn
assert [c.id for c in client.ip_connections.list()] == [conn.id]
refused("10005", lambda: other.ip_connections.retrieve(conn.id))
assert list(other.ip_connections.list()) == []
# Its calls are a trunk's: no webhook to send them to.
refused("10032", lambda: client.ip_connections.create(connection_name="hooked",
                                                     webhook_event_url="https://example.com/hook"))

refused("10015", lambda: client.ips.create(ip_address="not-an-address", connection_id=conn.id))
ip = client.ips.create(ip_address=PBX_IP, port=int(PBX_PORT), connection_id=conn.id).data
assert ip.record_type == "ip" and ip.ip_address == PBX_IP and ip.port == int(PBX_PORT), ip
assert ip.connection_id == conn.id, ip
assert [i.id for i in client.ips.list(filter={"connection_id": conn.id})] == [ip.id]
assert client.ips.retrieve(ip.id).data.port == int(PBX_PORT)
# The address is this connection's: another account cannot claim it, nor see it.
theirs = other.ip_connections.create(connection_name="theirs").data
refused("10015", lambda: other.ips.create(ip_address=PBX_IP, connection_id=theirs.id))
refused("10015", lambda: other.ips.create(ip_address="192.0.2.1", connection_id=conn.id))
assert list(other.ips.list()) == []
refused("10005", lambda: other.ips.retrieve(ip.id))

number = [n for n in client.phone_numbers.list() if n.phone_number == NUMBER][0]
patched = client.phone_numbers.update(number.id, connection_id=conn.id).data
assert patched.connection_id == conn.id and patched.connection_name == "office", patched
phase("CONNECTED " + conn.id)

# Its calls out held to an outbound voice profile (the US only) and one channel, and showing
# the connection's caller ID but on emergency calls; its numbers take one call at a time.
profile = client.outbound_voice_profiles.create(name="office", whitelisted_destinations=["US"]).data
limited = client.ip_connections.update(
    conn.id, outbound={"outbound_voice_profile_id": profile.id, "channel_limit": 1,
                       "ani_override": "+15550009999", "ani_override_type": "normal"},
    inbound={"channel_limit": 1}).data
assert limited.inbound.channel_limit == 1, limited.inbound
assert limited.outbound.outbound_voice_profile_id == profile.id and limited.outbound.channel_limit == 1
assert limited.outbound.ani_override == "+15550009999", limited.outbound
assert limited.outbound.ani_override_type == "normal", limited.outbound
# What Switchboard does not do is refused, naming the field, and the rest left as it was.
refused("10032", lambda: client.ip_connections.update(conn.id, outbound={"localization": "US"}))
refused("10032", lambda: client.ip_connections.update(conn.id, dtmf_type="SIP INFO"))
kept = client.ip_connections.retrieve(conn.id).data
assert kept.outbound.channel_limit == 1 and kept.dtmf_type == "RFC 2833", kept
phase("LIMITED")

assert client.ip_connections.update(conn.id, active=False).data.active is False
phase("INACTIVE")

assert client.ip_connections.update(conn.id, active=True).data.active is True
assert client.ips.delete(ip.id).data.id == ip.id
assert list(client.ips.list()) == []
phase("NO_ADDRESS")

client.ip_connections.delete(conn.id)
refused("10005", lambda: client.ip_connections.retrieve(conn.id))

branch = client.fqdn_connections.create(connection_name="branch", transport_protocol="UDP").data
assert branch.record_type == "fqdn_connection" and branch.connection_name == "branch", branch
assert [c.id for c in client.fqdn_connections.list()] == [branch.id]
assert list(client.ip_connections.list()) == []
# SRV records are not looked up here; an address is no FQDN.
refused("10015", lambda: client.fqdns.create(connection_id=branch.id, fqdn="localhost",
                                             dns_record_type="srv"))
refused("10015", lambda: client.fqdns.create(connection_id=branch.id, fqdn="127.0.0.1",
                                             dns_record_type="a"))
fqdn = client.fqdns.create(connection_id=branch.id, fqdn="localhost", dns_record_type="a",
                           port=int(FQDN_PORT)).data
assert fqdn.record_type == "fqdn" and fqdn.fqdn == "localhost" and fqdn.port == int(FQDN_PORT), fqdn
assert fqdn.connection_id == branch.id and fqdn.dns_record_type == "a", fqdn
assert [f.id for f in client.fqdns.list(filter={"connection_id": branch.id})] == [fqdn.id]
refused("10005", lambda: other.fqdns.retrieve(fqdn.id))
assert client.phone_numbers.update(number.id, connection_id=branch.id).data.connection_id == branch.id
phase("FQDN " + branch.id)

client.fqdn_connections.delete(branch.id)
assert list(client.fqdns.list()) == []
print("ok", flush=True)
