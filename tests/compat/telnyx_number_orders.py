"""Telnyx's official Python SDK searching and ordering numbers on Switchboard.

    python telnyx_number_orders.py BASE_URL API_KEY CONNECTION_ID

The account's grants (the test's configuration): +1666555* and +18005550100-+18005550109.
`available_phone_numbers.list` searches what is granted and not held; `number_orders.create`
claims numbers (all or none) on the connection; `phone_numbers.list` shows them.
"""

import sys

import telnyx
from telnyx_app import code_of

BASE, KEY, CONNECTION = sys.argv[1:4]
client = telnyx.Telnyx(api_key=KEY, base_url=BASE + "/v2", max_retries=0)


def numbers(**f):
    return [n.phone_number for n in client.available_phone_numbers.list(filter=f).data]


def refused(code, action):
    try:
        action()
    except telnyx.APIStatusError as e:
        assert code_of(e) == code, (code, code_of(e))
        return
    raise AssertionError("expected " + code)


found = client.available_phone_numbers.list(
    filter={"country_code": "US", "national_destination_code": "666", "limit": 3})
assert [n.phone_number for n in found.data] == ["+16665550000", "+16665550001", "+16665550002"], found
n = found.data[0]
assert n.record_type == "available_phone_number" and n.region_information[0].region_name == "US", n
assert [f.name for f in n.features] == ["voice"], n.features
assert numbers(country_code="US", phone_number_type="toll_free", limit=2) == ["+18005550100", "+18005550101"]
assert numbers(country_code="US", national_destination_code="666",
               phone_number={"starts_with": "55501"}, limit=2) == ["+16665550100", "+16665550101"]
assert numbers(country_code="US", phone_number={"ends_with": "4242"}, limit=5) == ["+16665554242"]
assert numbers(country_code="US", features=["sms"]) == []
assert numbers(country_code="DE") == []
refused("10032", lambda: client.available_phone_numbers.list(filter={"country_code": "US", "locality": "Chicago"}))

order = client.number_orders.create(
    phone_numbers=[{"phone_number": "+16665550000"}, {"phone_number": "+18005550100"}],
    connection_id=CONNECTION, customer_reference="desk").data
assert order.status == "success" and order.phone_numbers_count == 2, order
assert [p.phone_number for p in order.phone_numbers] == ["+16665550000", "+18005550100"], order
assert all(p.status == "success" for p in order.phone_numbers) and order.customer_reference == "desk"
held = {p.phone_number: p for p in client.phone_numbers.list().data}
assert set(held) == {"+16665550000", "+18005550100"}, held
assert held["+16665550000"].connection_id == CONNECTION
assert held["+18005550100"].phone_number_type == "toll_free", held["+18005550100"]
assert numbers(country_code="US", national_destination_code="666", limit=1) == ["+16665550001"]
# Taken, outside the grants, or half good: nothing is claimed.
refused("10015", lambda: client.number_orders.create(phone_numbers=[{"phone_number": "+16665550000"}]))
refused("10015", lambda: client.number_orders.create(phone_numbers=[{"phone_number": "+17775550000"}]))
refused("10015", lambda: client.number_orders.create(
    phone_numbers=[{"phone_number": "+16665550009"}, {"phone_number": "+17775550000"}]))
assert "+16665550009" in numbers(country_code="US", phone_number={"ends_with": "0009"}, limit=5)
refused("10015", lambda: client.number_orders.create(
    phone_numbers=[{"phone_number": "+16665550001"}], connection_id="999"))
assert len(client.phone_numbers.list().data) == 2
# The order reads back as it was answered; the orders list (by customer reference).
again = client.number_orders.retrieve(order.id).data
assert again.id == order.id and [p.phone_number for p in again.phone_numbers] == ["+16665550000", "+18005550100"]
assert [o.id for o in client.number_orders.list(filter={"customer_reference": "desk"})] == [order.id]
assert list(client.number_orders.list(filter={"customer_reference": "other"})) == []
refused("10005", lambda: client.number_orders.retrieve("00000000-0000-0000-0000-000000000000"))
# A number released is free to order again.
released = client.phone_numbers.delete(held["+18005550100"].id).data
assert released.phone_number == "+18005550100"
assert [p.phone_number for p in client.phone_numbers.list().data] == ["+16665550000"]
assert numbers(country_code="US", phone_number_type="toll_free", limit=1) == ["+18005550100"]
print("ok")
