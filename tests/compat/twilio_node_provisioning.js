// Twilio's official Node SDK (twilio 6.x) provisioning on Switchboard.
//
//     node twilio_node_provisioning.js BASE_URL ACCOUNT_SID AUTH_TOKEN
//
// The account (granted +1666555* by the test's configuration) makes a subaccount; the
// subaccount searches the numbers it may claim and buys one, which leaves the account's search
// too; it makes a SIP domain with a credential list mapped for registrations and calls, which
// its owner reads through it; it makes an Elastic SIP Trunk for its PBX and gives it the number;
// suspended, the subaccount's credentials fail.
const assert = require("node:assert/strict");
const twilio = require("twilio");

const [BASE, ACCOUNT, TOKEN] = process.argv.slice(2);
const client = twilio(ACCOUNT, TOKEN);
client.api.baseUrl = BASE;

async function expectError(status, code, action) {
  try {
    await action();
  } catch (e) {
    assert.equal(e.status, status, e.message);
    assert.equal(e.code, code, e.message);
    return;
  }
  throw new Error("expected error " + code);
}

async function main() {
  const sub = await client.api.v2010.accounts.create({ friendlyName: "Tenant N" });
  assert.equal(sub.ownerAccountSid, ACCOUNT);
  assert.equal(sub.status, "active");
  assert.equal(sub.friendlyName, "Tenant N");
  const listed = await client.api.v2010.accounts.list();
  assert.deepEqual(listed.map((a) => a.sid), [ACCOUNT, sub.sid]);

  const s = twilio(sub.sid, sub.authToken);
  s.api.baseUrl = BASE;
  const found = await s.availablePhoneNumbers("US").local.list({ areaCode: 666, limit: 2 });
  assert.deepEqual(found.map((n) => n.phoneNumber), ["+16665550000", "+16665550001"]);
  assert.equal(found[0].capabilities.voice, true);
  const bought = await s.incomingPhoneNumbers.create({ phoneNumber: found[0].phoneNumber });
  assert.equal(bought.accountSid, sub.sid);
  const left = await client.availablePhoneNumbers("US").local.list({ areaCode: 666, limit: 1 });
  assert.deepEqual(left.map((n) => n.phoneNumber), ["+16665550001"]);
  const countries = await client.availablePhoneNumbers.list();
  assert.deepEqual(countries.map((c) => c.countryCode), ["US"]);

  const phones = await s.sip.credentialLists.create({ friendlyName: "phones" });
  const alice = await s.sip.credentialLists(phones.sid).credentials.create({
    username: "alice",
    password: "Alice-Secret-1",
  });
  assert.equal(alice.credentialListSid, phones.sid);
  const domain = await s.sip.domains.create({
    domainName: "tenant-n.sip.twilio.com",
    voiceUrl: "https://app.example.com/voice",
    sipRegistration: true,
  });
  assert.equal(domain.accountSid, sub.sid);
  assert.equal(domain.sipRegistration, true);
  await s.sip.domains(domain.sid).auth.registrations.credentialListMappings.create({
    credentialListSid: phones.sid,
  });
  await s.sip.domains(domain.sid).auth.calls.credentialListMappings.create({
    credentialListSid: phones.sid,
  });
  const mine = await s.sip.domains(domain.sid).fetch();
  assert.equal(mine.authType, "CREDENTIAL_LIST");
  const owned = await client.api.v2010.accounts(sub.sid).sip.domains.list();
  assert.deepEqual(owned.map((d) => d.domainName), ["tenant-n.sip.twilio.com"]);
  assert.deepEqual(await client.sip.domains.list(), [], "the owner's own domains are none");
  await expectError(400, 21232, () => client.sip.domains.create({ domainName: "tenant-n.sip.twilio.com" }));

  // An Elastic SIP Trunk of the subaccount's, admitting its PBX's address and taking the
  // number it bought.
  client.trunking.baseUrl = BASE;
  s.trunking.baseUrl = BASE;
  const office = await s.sip.ipAccessControlLists.create({ friendlyName: "office" });
  await s.sip.ipAccessControlLists(office.sid).ipAddresses.create({
    friendlyName: "pbx",
    ipAddress: "192.0.2.10",
  });
  const trunk = await s.trunking.v1.trunks.create({
    friendlyName: "Tenant N PBX",
    domainName: "tenant-n.pstn.twilio.com",
  });
  assert.equal(trunk.accountSid, sub.sid);
  await s.trunking.v1.trunks(trunk.sid).ipAccessControlLists.create({ ipAccessControlListSid: office.sid });
  const url = await s.trunking.v1.trunks(trunk.sid).originationUrls.create({
    friendlyName: "pbx",
    sipUrl: "sip:192.0.2.10:5060",
    priority: 10,
    weight: 10,
    enabled: true,
  });
  assert.equal(url.trunkSid, trunk.sid);
  const given = await s.trunking.v1.trunks(trunk.sid).phoneNumbers.create({ phoneNumberSid: bought.sid });
  assert.equal(given.trunkSid, trunk.sid);
  assert.equal((await s.incomingPhoneNumbers(bought.sid).fetch()).trunkSid, trunk.sid);
  assert.equal((await s.trunking.v1.trunks(trunk.sid).fetch()).authType, "IP_ACL");
  assert.deepEqual(await client.trunking.v1.trunks.list(), [], "the owner's own trunks are none");
  await expectError(400, 21248, () => client.trunking.v1.trunks.create({ domainName: "tenant-n.pstn.twilio.com" }));

  const suspended = await client.api.v2010.accounts(sub.sid).update({ status: "suspended" });
  assert.equal(suspended.status, "suspended");
  await expectError(401, 20003, () => s.api.v2010.accounts(sub.sid).fetch());
  console.log("ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
