// A Telnyx browser app on Switchboard: the official `@telnyx/webrtc` 2.27 (unmodified,
// bundled by esbuild as an application's build would) in a page of Debian's headless
// Chromium, and the official Node SDK (telnyx 7.24) for the REST side. Each step is one JSON
// line on stdout.
//
//   node telnyx_browser.js BASE_URL API_KEY PAGE_HOST WAV NUMBER TONE_WAV APP_CONNECTION_ID [vanish]
//
// With `vanish`, the flow stops after the first call's listening: the browser is killed (its
// media and its socket gone without a word) and the server is to end the call when the
// browser's consent lapses.
//
// REST: creates a credential connection, a telephony credential on it, and the credential's
// token. Page: a made-up token is refused with the SDK's own error; the real one signs in
// (`telnyx.ready`); the page calls NUMBER (a trunk's: the test's phone answers and listens
// for the page's microphone, a 600 Hz WAV, and talks 1 kHz), listens with Web Audio, hangs
// up. Then the app (its Call Control application APP_CONNECTION_ID) dials the credential's SIP URI (`sip:gencred…@sip.telnyx.com`) through
// `calls.dial`; the page answers; once answered the app plays TONE_WAV (1 kHz, served by this
// script) into the call with `playback_start`, the page listens, and the app hangs up.
// Between them, with a webhook URL on the connection, a page's call is a Call Control call:
// the app answers it and plays the tone; the page holds and resumes it (`call.hold()`). Last,
// the app dials the bare user name and plays the tone; the page's socket drops mid-call, the
// SDK logs in again on its own, the server attaches the call anew (a new peer connection) and
// the page still hears the tone; then the page reloads, and the new page's SDK takes the call
// back the same way; the app hangs up. Then the credential is deleted mid-call: the page is
// punted and the call ends.
'use strict';
const browserPage = require('./browser_page');
const esbuild = require('esbuild');
const http = require('http');
const fs = require('fs');
const { Telnyx } = require('telnyx');

const [BASE, KEY, HOST, WAV, NUMBER, TONE, APP, MODE] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
const client = new Telnyx({ apiKey: KEY, baseURL: BASE + '/v2', maxRetries: 0 });
const bundle = esbuild.buildSync({
  stdin: { contents: 'window.TelnyxRTC = require("@telnyx/webrtc").TelnyxRTC;', resolveDir: __dirname },
  nodePaths: (process.env.NODE_PATH || '').split(':'),
  bundle: true,
  format: 'iife',
  platform: 'browser',
  write: false,
}).outputFiles[0].text;

// The page (over http from a loopback address: a secure context, as WebRTC needs), the SDK,
// and the tone the app plays.
const hooks = [];
const pages = http.createServer((req, res) => {
  if (req.url === '/hooks' && req.method === 'POST') {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      try {
        hooks.push(JSON.parse(body).data);
      } catch (e) {
        say({ event: 'bad_webhook', body });
      }
      res.writeHead(200);
      res.end();
    });
    return;
  }
  if (req.url === '/telnyx.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    return res.end(bundle);
  }
  if (req.url === '/tone.wav') {
    res.writeHead(200, { 'content-type': 'audio/wav' });
    return res.end(fs.readFileSync(TONE));
  }
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>browser phone</title><script src="/telnyx.js"></script>');
});

async function waitFor(check, what, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${what} in ${seconds} s`);
}

// Plays the tone into a call once its answer has reached the app's leg.
async function playTone(callControlId, url) {
  for (let i = 0; i < 50; i++) {
    try {
      return await client.calls.actions.startPlayback(callControlId, { audio_url: url });
    } catch (e) {
      if (i === 49) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

// The page's phone (run in the page): signs in with `token`; unless `reloaded`, first tries a
// made-up token, then calls `number` once ready. Each call's events go to the script.
function setUp(host, token, number, reloaded) {
  // What the far end says, as the page hears it.
  window.listen = async (call, event) => {
    const heard = await window.hear(call.remoteStream, call.peer.instance);
    // Awaited: the script goes on (and may close the browser) only once it has the report.
    await window.say({ event, ...heard });
  };
  // After a reload the page only signs in again (its SDK finds its session in
  // sessionStorage) and takes back the call it had.
  if (reloaded) return start();
  // A made-up token: the SDK's own error.
  // (Left on the page, its unload would clear the reconnection token from sessionStorage
  // unless it too keeps calls over a reload.)
  const bad = new TelnyxRTC({
    host,
    login_token: 'eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJ4In0.c2ln',
    hangupOnBeforeUnload: false,
  });
  bad.on('telnyx.error', (e) => {
    window.say({ event: 'bad_token', code: e.error && e.error.code, name: e.error && e.error.name });
    bad.disconnect();
    start();
  });
  bad.on('telnyx.ready', () => window.say({ event: 'bad_token_accepted' }));
  bad.connect();

  function start() {
    // hangupOnBeforeUnload: false — the SDK's option for a page whose calls outlive a reload
    // (it keeps recovery markers in sessionStorage instead of hanging up).
    const phone = new TelnyxRTC({ host, login_token: token, iceServers: [], hangupOnBeforeUnload: false });
    // The microphone as it is, without the browser's processing: Chromium's noise suppression
    // and gain control take a steady tone for noise and fade it to a quarter within seconds,
    // and the recording's check would then measure Chromium, not Switchboard. (The SDK hands
    // `audio` to getUserMedia as the constraints.)
    const microphone = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
    let placed = false;
    phone.on('telnyx.error', (e) => window.say({ event: 'error', code: e.error && e.error.code, message: e.error && e.error.message }));
    phone.on('telnyx.ready', () => {
      window.say({ event: 'ready' });
      if (placed || reloaded) return;
      placed = true;
      const call = phone.newCall({ destinationNumber: number, audio: microphone, video: false });
      window.say({ event: 'calling', id: call.id });
    });
    phone.on('telnyx.notification', (n) => {
      if (n.type !== 'callUpdate') return;
      const call = n.call;
      window.say({ event: 'call_state', direction: call.direction, state: call.state, cause: call.cause });
      // The server's telnyx_rtc.attach after a reconnection: the SDK answers it with a new
      // call object (the same id) on a new peer connection.
      const recovered = !!call.options.recoveredCallId;
      if (call.state === 'active' && !call.listening && recovered) {
        call.listening = true;
        window.incoming = call;
        window.say({ event: 'recovered', id: call.id });
        return;
      }
      if (call.direction === 'outbound' && call.state === 'active' && !call.listening) {
        call.listening = true;
        window.say({ event: 'outbound_active', ids: call.telnyxIDs, second: !!call.second });
        if (call.second) {
          // The app answered and plays its tone: listen; hold (nothing comes to the page
          // while it holds) and listen; resume and listen; the app hangs up.
          setTimeout(async () => {
            await window.listen(call, 'heard_app');
            await call.hold();
            window.say({ event: 'held', state: call.state });
            await new Promise((r) => setTimeout(r, 300));
            await window.listen(call, 'heard_held');
            await call.unhold();
            window.say({ event: 'resumed', state: call.state });
            await new Promise((r) => setTimeout(r, 300));
            await window.listen(call, 'heard_resumed');
            // Keys pressed on the page's keypad reach the app.
            call.dtmf('1');
            call.dtmf('#');
            // An ICE restart (what the SDK does when the network changes): new
            // credentials both ways, the same DTLS association, the tone again.
            const ufrag = (d) => (d && d.sdp.match(/a=ice-ufrag:(\S+)/) || [])[1];
            const pc = call.peer.instance;
            const [localBefore, remoteBefore] = [ufrag(pc.localDescription), ufrag(pc.remoteDescription)];
            const restart = call.peer.restartIce();
            for (let i = 0; i < 200 && ufrag(pc.remoteDescription) === remoteBefore; i++) {
              await new Promise((r) => setTimeout(r, 50));
            }
            for (let i = 0; i < 200 && pc.iceConnectionState !== 'connected' && pc.iceConnectionState !== 'completed'; i++) {
              await new Promise((r) => setTimeout(r, 50));
            }
            window.say({ event: 'ice_restarted', started: restart.started,
                         local_changed: ufrag(pc.localDescription) !== localBefore,
                         remote_changed: ufrag(pc.remoteDescription) !== remoteBefore,
                         ice: pc.iceConnectionState });
            await new Promise((r) => setTimeout(r, 500));
            await window.listen(call, 'heard_restarted');
            window.say({ event: 'hold_done' });
          }, 1500);
        } else if (window.mode === 'vanish') {
          window.listen(call, 'heard').then(() => window.say({ event: 'listened' }));
        } else {
          window.listen(call, 'heard').then(() => setTimeout(() => call.hangup(), 1500));
        }
      }
      if (call.direction === 'inbound' && call.state === 'ringing') {
        window.say({ event: 'incoming', from: call.options.remoteCallerNumber });
        call.answer();
      }
      if (call.direction === 'inbound' && call.state === 'active' && !call.listening) {
        call.listening = true;
        window.incoming = call;
        window.say({ event: 'incoming_answered', id: call.id });
        // The app plays its tone once it knows the call is up; listen a little later.
        setTimeout(() => window.listen(call, 'heard_incoming'), 1500);
      }
      if (call.state === 'destroy' || call.state === 'hangup') {
        window.say({ event: 'ended', id: call.id, direction: call.direction, cause: call.cause, sipCode: call.sipCode });
      }
    });
    phone.connect();
    // A network blip: the signalling socket closes under the SDK.
    window.dropSocket = () => phone.connection._wsClient.close();
    // The second call: after its connection got a webhook URL, a Call Control call.
    window.placeSecond = (to) => {
      const call = phone.newCall({ destinationNumber: to, audio: microphone, video: false });
      call.second = true;
    };
  }
}

async function main() {
  const connection = (
    await client.credentialConnections.create({
      connection_name: 'browser phones',
      user_name: 'browserphones1',
      password: 'browser-secret-1',
    })
  ).data;
  say({ event: 'connection', id: connection.id, record_type: connection.record_type, user_name: connection.user_name });
  const credential = (
    await client.telephonyCredentials.create({ connection_id: connection.id, name: 'alice browser' })
  ).data;
  say({ event: 'credential', sip_username: credential.sip_username, expired: credential.expired });
  const token = await client.telephonyCredentials.createToken(credential.id);
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  say({ event: 'token', lifetime: claims.exp - claims.iat, sub: claims.sub === credential.id });

  await new Promise((r) => pages.listen(0, HOST, r));
  const page_url = `http://${HOST}:${pages.address().port}`;
  const { browser, page, finish } = await browserPage.open(WAV, pages, 90);
  let pageActive = null;
  let secondEnded = null;
  const secondDone = new Promise((r) => (secondEnded = r));
  let heldAndResumed = null;
  const holdDone = new Promise((r) => (heldAndResumed = r));
  let answered = null;
  const answeredOnce = new Promise((r) => (answered = r));
  let outboundEnded = null;
  const outboundDone = new Promise((r) => (outboundEnded = r));
  const pageEvents = [];
  await page.exposeFunction('say', (o) => {
    say(o);
    pageEvents.push(o);
    if (o.event === 'outbound_active' && o.second) pageActive = o;
    if (o.event === 'hold_done') heldAndResumed();
    if (o.event === 'ended' && o.direction === 'outbound' && pageActive) secondEnded(o);
    if (o.event === 'incoming_answered') answered();
    if (o.event === 'ended' && o.direction === 'outbound') outboundEnded(o);
  });
  await page.goto(page_url);
  await browserPage.install(page);
  const host = BASE.replace(/^http/, 'ws');
  await page.evaluate((mode) => { window.mode = mode; }, MODE || 'full');
  await page.evaluate(setUp, host, token, NUMBER, false);
  // Once the first call is over (the page hangs it up), the connection gets a webhook URL:
  // the page's calls are Call Control calls from now on.
  if (MODE === 'vanish') {
    await waitFor(() => pageEvents.find((e) => e.event === 'listened'), 'the page\'s listening', 30);
    browser.process().kill('SIGKILL');
    say({ event: 'killed' });
    pages.close();
    process.exit(0);
  }
  await outboundDone;
  const updated = (
    await client.credentialConnections.update(connection.id, { webhook_event_url: `${page_url}/hooks` })
  ).data;
  say({ event: 'webhook_set', url: updated.webhook_event_url });
  await page.evaluate((to) => window.placeSecond(to), '+15557770000');
  const initiated = await waitFor(() => hooks.find((h) => h.event_type === 'call.initiated'), 'call.initiated');
  const p = initiated.payload;
  say({ event: 'call_initiated', direction: p.direction, from: p.from, to: p.to,
        connection: p.connection_id === connection.id, calling_party_type: p.calling_party_type });
  await client.calls.actions.answer(p.call_control_id, {});
  // Both parties recorded, one a channel: the page's microphone and the app's tone.
  await client.calls.actions.startRecording(p.call_control_id, { format: 'wav', channels: 'dual' });
  await playTone(p.call_control_id, `${page_url}/tone.wav`);
  const active = await waitFor(() => pageActive, 'the page\'s active call');
  say({ event: 'ids_echoed', same: active.ids.telnyxCallControlId === p.call_control_id,
        page: active.ids.telnyxCallControlId, app: p.call_control_id });
  await holdDone;
  const digits = await waitFor(() => {
    const d = hooks.filter((h) => h.event_type === 'call.dtmf.received').map((h) => h.payload.digit);
    return d.length >= 2 && d;
  }, 'call.dtmf.received');
  say({ event: 'dtmf', digits: digits.join('') });
  await client.calls.actions.hangup(p.call_control_id, {});
  await secondDone;
  const answeredHook = await waitFor(() => hooks.find((h) => h.event_type === 'call.answered'), 'call.answered');
  const hangupHook = await waitFor(() => hooks.find((h) => h.event_type === 'call.hangup'), 'call.hangup');
  const saved = await waitFor(() => hooks.find((h) => h.event_type === 'call.recording.saved'), 'call.recording.saved');
  say({ event: 'call_control_done', answered: !!answeredHook, hangup_cause: hangupHook.payload.hangup_cause,
        recording_channels: saved.payload.channels });

  const dial = (
    await client.calls.dial({
      connection_id: APP,
      to: `sip:${credential.sip_username}@sip.telnyx.com`,
      from: '+15550001',
    })
  ).data;
  say({ event: 'dialed', call_control_id: dial.call_control_id });
  await answeredOnce;
  await playTone(dial.call_control_id, `${page_url}/tone.wav`);
  say({ event: 'playing' });
  // The app hangs up once the page has listened to the call (however slow a busy machine
  // makes its listening), not after a fixed time.
  await waitFor(() => pageEvents.find((e) => e.event === 'heard_incoming'), 'the page listening to the dialed call', 40);
  await client.calls.actions.hangup(dial.call_control_id, {});
  say({ event: 'hung_up' });
  await waitFor(() => pageEvents.filter((e) => e.event === 'ended' && e.direction === 'inbound').length, 'the page\'s end of the call');

  // Dialed by the credential's bare user name this time. Mid-call the page's socket drops:
  // the SDK logs in again with its session, the server offers the call anew
  // (telnyx_rtc.attach) and the SDK answers it on a new peer connection: the call goes on.
  const again = (
    await client.calls.dial({
      connection_id: APP,
      to: credential.sip_username,
      from: '+15550001',
    })
  ).data;
  const second = await waitFor(() => pageEvents.filter((e) => e.event === 'incoming_answered')[1], 'the second answer');
  await playTone(again.call_control_id, `${page_url}/tone.wav`);
  const count = (what) => pageEvents.filter((e) => e.event === what).length;
  let [readyBefore, recoveredBefore] = [count('ready'), count('recovered')];
  await page.evaluate(() => window.dropSocket());
  say({ event: 'socket_dropped' });
  await waitFor(() => count('ready') > readyBefore, 'the SDK back', 30);
  await waitFor(() => count('recovered') > recoveredBefore, 'the call attached anew', 30);
  const state = await page.evaluate(() => ({ id: window.incoming.id, state: window.incoming.state }));
  let alive = (await client.calls.retrieveStatus(again.call_control_id)).data.is_alive;
  say({ event: 'reattached', same: state.id === second.id, state: state.state, alive });
  await page.evaluate(() => window.listen(window.incoming, 'heard_reattached'));

  // The page reloads mid-call: the new page's SDK signs in with the session it kept in
  // sessionStorage, the server attaches the call again, and the new page hears it.
  [readyBefore, recoveredBefore] = [count('ready'), count('recovered')];
  await page.reload();
  await browserPage.install(page);
  await page.evaluate(setUp, host, token, NUMBER, true);
  await waitFor(() => count('ready') > readyBefore, 'the reloaded page signed in', 30);
  await waitFor(() => count('recovered') > recoveredBefore, 'the call attached to the reloaded page', 30);
  const reloaded = await page.evaluate(() => ({ id: window.incoming.id, state: window.incoming.state }));
  alive = (await client.calls.retrieveStatus(again.call_control_id)).data.is_alive;
  say({ event: 'reloaded', same: reloaded.id === second.id, state: reloaded.state, alive });
  await page.evaluate(() => window.listen(window.incoming, 'heard_reloaded'));
  await client.calls.actions.hangup(again.call_control_id, {});
  await waitFor(
    () => pageEvents.find((e) => e.event === 'ended' && e.id === second.id),
    'the page\'s end of the reattached call',
  );
  say({ event: 'reattached_ended' });

  // Last, the credential is deleted while the page is on a call: the page is punted
  // (telnyx_rtc.punt: the SDK purges its calls without a BYE and drops its socket), and the
  // call ends.
  const last = (
    await client.calls.dial({ connection_id: APP, to: credential.sip_username, from: '+15550001' })
  ).data;
  await waitFor(() => count('incoming_answered') >= 3, 'the last answer', 20);
  await client.telephonyCredentials.delete(credential.id);
  await waitFor(() => pageEvents.find((e) => e.event === 'call_state' && e.state === 'purge'), 'the punt', 20);
  await waitFor(
    async () => !(await client.calls.retrieveStatus(last.call_control_id)).data.is_alive,
    'the punted call\'s end',
    20,
  );
  say({ event: 'punted' });
  finish(0);
}

main().catch((e) => {
  say({ event: 'failed', message: String(e && e.stack || e) });
  process.exit(1);
});
