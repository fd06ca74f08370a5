// Telnyx's official Node SDK (telnyx 7.x) provisioning on Switchboard.
//
//     node telnyx_node_provisioning.js BASE_URL API_KEY
//
// The account (granted +1666555* by the test's configuration) searches its available numbers
// and orders one onto a Call Control application it makes; makes an outbound voice profile
// whitelisting Canada only and names it in the application's `outbound`: a dial to a US
// number through it is refused, as is one once the profile is disabled; the profile cannot go
// while the application uses it. Then a PBX's IP connection with its address takes the second
// number by an order, and its address goes with it when it is deleted.
'use strict';
const assert = require('node:assert/strict');
const { Telnyx } = require('telnyx');

const [BASE, KEY] = process.argv.slice(2);
const client = new Telnyx({ apiKey: KEY, baseURL: BASE + '/v2', maxRetries: 0 });

async function refused(code, action, says) {
  try {
    await action();
  } catch (e) {
    const error = e.error && e.error.errors ? e.error.errors[0] : null;
    assert.ok(error, String(e));
    assert.equal(error.code, code, JSON.stringify(e.error));
    if (says) assert.ok(error.detail.includes(says), error.detail);
    return;
  }
  throw new Error('expected ' + code);
}

async function main() {
  const found = await client.availablePhoneNumbers.list({
    filter: { country_code: 'US', national_destination_code: '666', limit: 2 },
  });
  assert.deepEqual(found.data.map((n) => n.phone_number), ['+16665550000', '+16665550001']);

  const app = (await client.callControlApplications.create({
    application_name: 'dialer',
    webhook_event_url: 'http://127.0.0.1:9/telnyx',
  })).data;
  const order = (await client.numberOrders.create({
    phone_numbers: [{ phone_number: '+16665550000' }],
    connection_id: app.id,
  })).data;
  assert.equal(order.status, 'success');
  const held = [];
  for await (const n of client.phoneNumbers.list()) held.push(n.phone_number);
  assert.deepEqual(held, ['+16665550000']);

  const profile = (await client.outboundVoiceProfiles.create({
    name: 'canada only',
    whitelisted_destinations: ['CA'],
    concurrent_call_limit: 2,
  })).data;
  assert.equal(profile.record_type, 'outbound_voice_profile');
  assert.deepEqual(profile.whitelisted_destinations, ['CA']);
  const listed = [];
  for await (const p of client.outboundVoiceProfiles.list()) listed.push(p.id);
  assert.deepEqual(listed, [profile.id]);
  await client.callControlApplications.update(app.id, {
    application_name: 'dialer',
    webhook_event_url: 'http://127.0.0.1:9/telnyx',
    outbound: { outbound_voice_profile_id: profile.id },
  });
  assert.equal((await client.outboundVoiceProfiles.retrieve(profile.id)).data.connections_count, 1);
  const dial = () => client.calls.dial({ connection_id: app.id, to: '+15551234', from: '+16665550000' });
  await refused('10016', dial, '(US)');
  await client.outboundVoiceProfiles.update(profile.id, { name: 'canada only', enabled: false });
  await refused('10010', dial, 'disabled');
  await refused('90000', () => client.outboundVoiceProfiles.delete(profile.id), 'used by');

  // A PBX's IP connection with its address, given the second number by an order.
  const pbx = (await client.ipConnections.create({ connection_name: 'pbx', transport_protocol: 'TCP' })).data;
  assert.equal(pbx.record_type, 'ip_connection');
  assert.equal(pbx.transport_protocol, 'TCP');
  const ip = (await client.ips.create({ ip_address: '192.0.2.20', port: 5070, connection_id: pbx.id })).data;
  assert.equal(ip.record_type, 'ip');
  assert.equal(ip.connection_id, pbx.id);
  assert.equal(ip.port, 5070);
  await refused('10015', () => client.ips.create({ ip_address: '192.0.2.20', connection_id: pbx.id }));
  const ordered = (await client.numberOrders.create({
    phone_numbers: [{ phone_number: '+16665550001' }],
    connection_id: pbx.id,
  })).data;
  assert.equal(ordered.status, 'success');
  const onPbx = [];
  for await (const n of client.phoneNumbers.list({ filter: { connection_id: pbx.id } })) onPbx.push(n.phone_number);
  assert.deepEqual(onPbx, ['+16665550001']);
  const ips = [];
  for await (const i of client.ips.list({ filter: { connection_id: pbx.id } })) ips.push(i.ip_address);
  assert.deepEqual(ips, ['192.0.2.20']);
  await client.ipConnections.delete(pbx.id);
  const left = [];
  for await (const i of client.ips.list()) left.push(i.id);
  assert.deepEqual(left, [], "a connection's addresses go with it");
  console.log('ok');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
