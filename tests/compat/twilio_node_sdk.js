// Twilio's official Node SDK (twilio 6.x) against Switchboard.
//
//     node twilio_node_sdk.js BASE_URL ACCOUNT_SID AUTH_TOKEN
//
// With only `client.api.baseUrl` changed, it places a call to +15551234 (a SIPp callee
// answers), fetches, lists, records, redirects and hangs it up, deletes it, and manages a
// phone number and a queue; errors arrive as RestException with Twilio's codes.
const assert = require("node:assert/strict");
const twilio = require("twilio");

const [BASE, ACCOUNT, TOKEN] = process.argv.slice(2);
const client = twilio(ACCOUNT, TOKEN);
client.api.baseUrl = BASE;

async function waitFor(check, what, ms = 15000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("timed out waiting for " + what);
}

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
  const call = await client.calls.create({
    to: "+15551234",
    from: "+15550001",
    twiml: '<Response><Pause length="30"/></Response>',
  });
  assert.match(call.sid, /^CA[0-9a-f]{32}$/);
  assert.equal(call.status, "queued");
  assert.equal(call.accountSid, ACCOUNT);
  await waitFor(async () => (await client.calls(call.sid).fetch()).status === "in-progress", "in-progress");

  const listed = await client.calls.list({ to: "+15551234", status: "in-progress" });
  assert.deepEqual(listed.map((c) => c.sid), [call.sid]);
  const page = await client.calls.page({ pageSize: 1 });
  assert.equal(page.instances.length, 1);

  // Record the live call, stop it; the recording is listed completed.
  const rec = await client.calls(call.sid).recordings.create({ recordingChannels: "dual" });
  assert.match(rec.sid, /^RE/);
  await new Promise((r) => setTimeout(r, 1200));
  await client.calls(call.sid).recordings(rec.sid).update({ status: "stopped" });
  const done = await waitFor(
    async () => (await client.recordings.list({ callSid: call.sid })).find((r) => r.status === "completed"),
    "the recording",
  );
  assert.equal(done.sid, rec.sid);
  assert.ok(typeof done.duration === "string" && Number(done.duration) >= 1, done.duration);

  // Redirect with inline TwiML that hangs up: the call completes.
  await client.calls(call.sid).update({ twiml: "<Response><Hangup/></Response>" });
  await waitFor(async () => (await client.calls(call.sid).fetch()).status === "completed", "completed");
  const ended = await client.calls(call.sid).fetch();
  assert.ok(ended.endTime instanceof Date && Number(ended.duration) >= 1);
  await expectError(400, 21220, () => client.calls(call.sid).update({ url: "http://127.0.0.1:9/x" }));
  assert.equal(await client.recordings(rec.sid).remove(), true);
  assert.equal(await client.calls(call.sid).remove(), true);
  await expectError(404, 20404, () => client.calls(call.sid).fetch());
  await expectError(400, 21201, () => client.calls.create({ to: "", from: "+15550001", url: "http://127.0.0.1:9/x" }));

  // A phone number and a queue.
  const number = await client.incomingPhoneNumbers.create({
    phoneNumber: "+16665550142",
    voiceUrl: "http://127.0.0.1:9/voice",
  });
  assert.match(number.sid, /^PN/);
  assert.equal((await client.incomingPhoneNumbers(number.sid).update({ voiceMethod: "GET" })).voiceMethod, "GET");
  assert.deepEqual((await client.incomingPhoneNumbers.list()).map((n) => n.phoneNumber), ["+16665550142"]);
  assert.equal(await client.incomingPhoneNumbers(number.sid).remove(), true);
  const queue = await client.queues.create({ friendlyName: "node", maxSize: 3 });
  assert.equal(queue.maxSize, 3);
  assert.equal((await client.queues(queue.sid).fetch()).currentSize, 0);
  assert.equal(await client.queues(queue.sid).remove(), true);

  // Wrong credentials.
  const bad = twilio(ACCOUNT, "wrong");
  bad.api.baseUrl = BASE;
  await expectError(401, 20003, () => bad.calls(call.sid).fetch());
  console.log("ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
