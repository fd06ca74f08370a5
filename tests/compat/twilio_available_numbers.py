"""Twilio's official Python SDK searching and buying numbers on Switchboard.

    python twilio_available_numbers.py BASE_URL ACCOUNT_SID AUTH_TOKEN OTHER_ACCOUNT OTHER_TOKEN

The account's grants (the test's configuration): +1666555* (local), +18005550100-+18005550109
(toll-free) and +442071234500-+442071234509 (the United Kingdom); the other account's:
+1666555*. AvailablePhoneNumbers lists what is granted and not yet held by anyone; a number
bought through IncomingPhoneNumbers (by area code, or under …/TollFree) leaves every account's
search.
"""

import json
import sys

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

BASE, ACCOUNT, TOKEN, OTHER, OTHER_TOKEN = sys.argv[1:6]
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
        # A list's page the API refuses: the SDK raises with the response.
        response = e.args[1]
        assert (response.status_code, json.loads(response.text)["code"]) == (status, code), response.text
        return
    raise AssertionError("expected error %d" % code)


countries = {x.country_code: x for x in c.available_phone_numbers.list()}
assert set(countries) == {"US", "GB"}, countries
us = c.available_phone_numbers("US").fetch()
assert us.country == "United States" and us.subresource_uris["local"].endswith("/US/Local.json"), us
assert [x.country_code for x in other.available_phone_numbers.list()] == ["US"]
expect_error(404, 20404, lambda: c.available_phone_numbers("FR").fetch())

local = c.available_phone_numbers("US").local.list(area_code=666, limit=5)
assert [n.phone_number for n in local] == ["+1666555000%d" % i for i in range(5)], local
first = local[0]
assert first.iso_country == "US" and first.friendly_name == "(666) 555-0000", first.friendly_name
assert first.capabilities["voice"] is True and first.capabilities["SMS"] is False, first.capabilities
assert first.address_requirements == "none" and first.beta is False

found = c.available_phone_numbers("US").local.list(contains="555012*", limit=20)
assert [n.phone_number for n in found] == ["+1666555012%d" % i for i in range(10)], found
# Letters are the keypad's digits: MOON is 6666.
spelled = c.available_phone_numbers("US").local.list(contains="MOON", limit=3)
assert spelled and all("6666" in n.phone_number for n in spelled), [n.phone_number for n in spelled]
toll = c.available_phone_numbers("US").toll_free.list()
assert [n.phone_number for n in toll] == ["+1800555010%d" % i for i in range(10)], toll
assert c.available_phone_numbers("US").local.list(area_code=800) == []
gb = c.available_phone_numbers("GB").local.list(contains="2071234", limit=3)
assert [n.phone_number for n in gb] == ["+44207123450%d" % i for i in range(3)], gb
assert gb[0].iso_country == "GB"
# Numbers here carry voice alone; geography is not known: refused, not ignored.
assert c.available_phone_numbers("US").local.list(sms_enabled=True) == []
expect_error(400, 20001, lambda: c.available_phone_numbers("US").local.list(in_region="CA"))
expect_error(400, 20001, lambda: c.available_phone_numbers("GB").local.list(area_code=207))
expect_error(400, 20001, lambda: c.available_phone_numbers("US").local.list(contains="5-5"))

# Bought by area code: the first available number, gone from every account's search.
bought = c.incoming_phone_numbers.create(area_code="666", friendly_name="Main line")
assert bought.phone_number == "+16665550000" and bought.friendly_name == "Main line", bought.phone_number
local = c.incoming_phone_numbers.local.create(phone_number="+16665550005")
assert local.phone_number == "+16665550005" and local.uri.endswith(local.sid + ".json"), local.uri
left = [n.phone_number for n in other.available_phone_numbers("US").local.list(area_code=666, limit=2)]
assert left == ["+16665550001", "+16665550002"], left
expect_error(400, 21452, lambda: c.incoming_phone_numbers.create(area_code="777"))
free = c.incoming_phone_numbers.toll_free.create(phone_number=toll[0].phone_number)
assert free.phone_number == "+18005550100"
expect_error(400, 21421, lambda: c.incoming_phone_numbers.toll_free.create(phone_number="+16665550006"))
assert [n.phone_number for n in c.incoming_phone_numbers.local.list()] == ["+16665550000", "+16665550005"]
assert [n.phone_number for n in c.incoming_phone_numbers.toll_free.list()] == ["+18005550100"]
assert "+18005550100" not in [n.phone_number for n in c.available_phone_numbers("US").toll_free.list()]
print("ok")
