// A Twilio browser app on Switchboard: the official `@twilio/voice-sdk` 2.18 (unmodified,
// bundled by esbuild as an application's build would) in a page of Debian's headless
// Chromium, pointed at Switchboard with its `chunderw` option (it opens wss://HOST/signal),
// and the official Node SDK (twilio 6.2) for the REST side and the access tokens. Each step is
// one JSON line on stdout.
//
//   node twilio_browser.js BASE_URL ACCOUNT AUTH_TOKEN KEY_SID KEY_SECRET CHUNDERW PAGE_HOST WAV NUMBER TONE_WAV TONE_ULAW
//
// REST: an Application (TwiML App) whose voice URL is this script's: it answers a device's
// call with <Dial> to the page's `To` and records what it was asked. A token signed with a
// wrong secret is refused with the SDK's own error (31204); the real token (identity alice,
// incoming allowed, the App, a token parameter) registers the device; `device.connect()` with
// `To=NUMBER` and a parameter reaches the App, which dials the trunk (the test's phone hears
// the page's 600 Hz and talks 1 kHz; the page listens; its signalling socket drops and the SDK
// takes the call back on a new one, both still hear each other; then the page hangs up). Then `Calls.create`
// with `To=client:alice` rings the device; the page accepts and hears the call's <Play> of
// TONE_WAV (1 kHz); the app hangs the call up through the REST API. Then a second device of
// alice and bob sign in: bob's call to client:alice rings both of alice's devices through
// <Dial><Client>, and so does the REST API's next call to client:alice. Last, alice calls
// `bot`: the App connects the call to a voice bot, a media stream (`<Connect><Stream>`) served
// here with the `ws` package: the bot keeps what the browser says (μ-law, reported at the
// stream's stop for the test to tone-detect) and talks back TONE_ULAW (1 kHz) in 20 ms media
// messages, which the page hears. Then alice's call `messages` holds while the app and the page
// exchange user-defined messages: a UserDefinedMessageSubscription gets what the page sends
// (`call.sendMessage`), and UserDefinedMessages reach the page (`messageReceived`).
'use strict';
const browserPage = require('./browser_page');
const esbuild = require('esbuild');
const http = require('http');
const fs = require('fs');
const twilio = require('twilio');

const [BASE, ACCOUNT, AUTH, KEY_SID, KEY_SECRET, CHUNDERW, HOST, WAV, NUMBER, TONE, TONE_ULAW] =
  process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
const client = twilio(ACCOUNT, AUTH);
client.api.baseUrl = BASE;
const bundle = esbuild.buildSync({
  stdin: { contents: 'window.Twilio = require("@twilio/voice-sdk");', resolveDir: __dirname },
  nodePaths: (process.env.NODE_PATH || '').split(':'),
  bundle: true,
  format: 'iife',
  platform: 'browser',
  write: false,
  logLevel: 'error',
}).outputFiles[0].text;

// The page, the SDK, the App's TwiML and the tone it plays.
const asked = [];
// What the user-defined message subscription was sent, each with its signature's verdict.
const messages = [];
const pages = http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    if (req.url === '/twilio.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      return res.end(bundle);
    }
    if (req.url === '/tone.wav') {
      res.writeHead(200, { 'content-type': 'audio/wav' });
      return res.end(fs.readFileSync(TONE));
    }
    if (req.url === '/messages') {
      const params = Object.fromEntries(new URLSearchParams(body));
      const valid = twilio.validateRequest(AUTH, req.headers['x-twilio-signature'] || '', `${pageUrl}/messages`, params);
      messages.push({ params, valid });
      res.writeHead(204);
      return res.end();
    }
    if (req.url === '/app') {
      const params = Object.fromEntries(new URLSearchParams(body));
      asked.push(params);
      res.writeHead(200, { 'content-type': 'text/xml' });
      if (params.To === 'room') {
        return res.end('<Response><Dial><Conference beep="false">room1</Conference></Dial></Response>');
      }
      // Answered by its <Play> (a first <Pause> would wait before answering, as on Twilio).
      if (params.To === 'messages') {
        return res.end(`<Response><Play>${pageUrl}/tone.wav</Play><Pause length="30"/></Response>`);
      }
      if (params.To === 'bot') {
        return res.end(`<Response><Connect><Stream url="ws://${HOST}:${pages.address().port}/media">` +
          '<Parameter name="who" value="browser"/></Stream></Connect></Response>');
      }
      // A number is dialed once the page has pressed a key (RFC 4733 from its
      // RTCDTMFSender, gathered here).
      if (!(params.To || '').startsWith('client:') && !params.Digits) {
        return res.end(`<Response><Gather input="dtmf" numDigits="1" timeout="10" action="${pageUrl}/app"/></Response>`);
      }
      // A client is dialed as <Client> (with a parameter its devices see), a number as is.
      const to = params.To || '';
      const noun = to.startsWith('client:')
        ? `<Client><Identity>${to.slice(7)}</Identity><Parameter name="ticket" value="42"/></Client>`
        : to;
      return res.end(`<Response><Dial>${noun}</Dial></Response>`);
    }
    if (req.url === '/play') {
      res.writeHead(200, { 'content-type': 'text/xml' });
      return res.end(`<Response><Play>${pageUrl}/tone.wav</Play><Pause length="30"/></Response>`);
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>browser phone</title><script src="/twilio.js"></script>');
  });
});
let pageUrl = '';

// The voice bot: a bidirectional media stream. It keeps the caller's audio and talks 1 kHz
// back, paced at 20 ms a message as a bot streaming its speech would.
const bot = { done: null };
new (require('ws').WebSocketServer)({ server: pages, path: '/media' }).on('connection', (ws) => {
  const tone = fs.readFileSync(TONE_ULAW);
  let start = null;
  let talking = null;
  const heard = [];
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (m.event === 'start') {
      start = m.start;
      let at = 0;
      talking = setInterval(() => {
        if (at + 160 > tone.length) return clearInterval(talking);
        const payload = tone.subarray(at, at + 160).toString('base64');
        at += 160;
        ws.send(JSON.stringify({ event: 'media', streamSid: m.streamSid, media: { payload } }));
      }, 20);
    } else if (m.event === 'media') {
      heard.push(Buffer.from(m.media.payload, 'base64'));
    } else if (m.event === 'stop') {
      clearInterval(talking);
      const audio = Buffer.concat(heard);
      // The last ten seconds at most (the call lasts a few): the test looks for a whole
      // second of the page's tone in it, wherever the hang-up cut it.
      bot.done = { event: 'bot_done', start, bytes: audio.length,
                   heard: audio.subarray(Math.max(0, audio.length - 80000)).toString('base64') };
    }
  });
  ws.on('close', () => clearInterval(talking));
});

function token(secret, identity, app) {
  return tokenWith(KEY_SID, secret, identity, app);
}

function tokenWith(keySid, secret, identity, app, ttl = 3600) {
  const AccessToken = twilio.jwt.AccessToken;
  const t = new AccessToken(ACCOUNT, keySid, secret, { identity, ttl });
  t.addGrant(new AccessToken.VoiceGrant({
    incomingAllow: true,
    outgoingApplicationSid: app,
    outgoingApplicationParams: { fromToken: 'yes' },
  }));
  return t.toJwt();
}

async function waitFor(check, what, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${what} in ${seconds} s`);
}

async function main() {
  await new Promise((r) => pages.listen(0, HOST, r));
  pageUrl = `http://${HOST}:${pages.address().port}`;
  const app = await client.applications.create({
    friendlyName: 'browser phones',
    voiceUrl: `${pageUrl}/app`,
    voiceMethod: 'POST',
  });
  say({ event: 'application', sid: app.sid, voice_url: app.voiceUrl === `${pageUrl}/app` });
  // An API key made through the REST API (Keys) signs bob's token.
  const key = await client.newKeys.create({ friendlyName: 'browser tokens' });
  const listedKeys = (await client.keys.list()).map((k) => k.sid);
  say({ event: 'api_key', sid: key.sid, has_secret: !!key.secret, listed: listedKeys.includes(key.sid) });

  const { browser, page, finish } = await browserPage.open(WAV, pages, 90);
  const pageEvents = [];
  await page.exposeFunction('say', (o) => {
    say(o);
    pageEvents.push(o);
  });
  await page.goto(pageUrl);
  await browserPage.install(page);
  const seen = (event, n = 1) => () => pageEvents.filter((e) => e.event === event).length >= n;
  await page.evaluate(
    (chunderw, badToken, expiredToken, goodToken, number) => {
      window.listen = (call, event) =>
        window.listenTo(call, event).catch((e) => window.say({ event: 'listen_error', message: String(e && e.stack || e) }));
      window.listenTo = async (call, event) => {
        // The remote stream comes with the peer connection's track, a moment after accept.
        let stream = call.getRemoteStream();
        for (let i = 0; !stream && i < 100; i++) {
          await new Promise((r) => setTimeout(r, 50));
          stream = call.getRemoteStream();
        }
        const pc = call._mediaHandler && call._mediaHandler.version && call._mediaHandler.version.pc;
        const heard = await window.hear(stream, pc);
        // Awaited: the script goes on (and may close the browser) only once it has the report.
        await window.say({ event, ...heard });
      };
      // Calls wait up to 30 s for a device whose socket dropped (the SDK's `reconnectTimeout`).
      // The microphone as it is, without the browser's processing: Chromium's noise
      // suppression and gain control take a steady tone for noise and fade it within seconds,
      // and the checks would measure Chromium, not Switchboard.
      const rtcConstraints = { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } };
      const options = { chunderw, publishEvents: false, logLevel: 'warn', maxCallSignalingTimeoutMs: 30000, rtcConstraints };
      // A token signed with a wrong secret: the SDK's own error.
      const bad = new Twilio.Device(badToken, options);
      bad.on('error', (e) => {
        window.say({ event: 'bad_token', code: e.code, name: e.name });
        bad.destroy();
      });
      bad.on('registered', () => window.say({ event: 'bad_token_registered' }));
      bad.register().catch(() => {});
      // A token that expired a minute ago: the SDK's own error too.
      const expired = new Twilio.Device(expiredToken, options);
      expired.on('error', (e) => {
        window.say({ event: 'expired_token', code: e.code, name: e.name });
        expired.destroy();
      });
      expired.on('registered', () => window.say({ event: 'expired_token_registered' }));
      expired.register().catch(() => {});

      const device = new Twilio.Device(goodToken, options);
      window.device = device;
      device.on('error', (e) => window.say({ event: 'device_error', code: e.code, message: e.message }));
      device.on('registered', () => window.say({ event: 'registered', identity: device.identity }));
      // A device answers its calls, or (`ringOnly`) lets them ring until cancelled.
      window.answering = (device, name, ringOnly) => device.on('incoming', (call) => {
        window.say({ event: 'incoming', device: name, from: call.parameters.From,
                     to: call.parameters.To, sid: call.parameters.CallSid, params: call.parameters.Params });
        // The SDK shows a call only after its ringtone plays or 2 s pass (a page without a
        // sound card waits the 2 s); a cancel that came in that wait has already closed it.
        const cancelled = () => window.say({ event: 'incoming_cancelled', device: name });
        if (call.status() === 'closed') cancelled();
        else call.on('cancel', cancelled);
        if (ringOnly) return;
        call.on('accept', () => {
          window.say({ event: 'incoming_accepted', device: name });
          if (window.phase === 'bob' && window.aliceAnswersBob) window.aliceAnswersBob();
          setTimeout(() => window.listen(call, `heard_incoming_${window.phase}`), 1500);
        });
        call.on('disconnect', () => window.say({ event: 'incoming_disconnected', device: name }));
        call.accept();
      });
      window.phase = 'rest';
      window.answering(device, 'alice', false);
      // Later: a second device of alice that only rings, and bob, who calls client:alice.
      window.moreDevices = async (aliceToken, bobToken) => {
        const alice2 = new Twilio.Device(aliceToken, options);
        window.answering(alice2, 'alice2', true);
        const bob = new Twilio.Device(bobToken, options);
        window.bobDevice = bob;
        await alice2.register();
        await bob.register();
        window.say({ event: 'more_registered' });
        window.phase = 'bob';
        // bob listens once the App has answered him and alice has answered the <Dial>:
        // until she does, he hears its ringback.
        const answered = new Set();
        const bobHears = (who) => {
          answered.add(who);
          if (answered.size === 2) setTimeout(() => window.listen(call, 'heard_by_bob'), 1500);
        };
        window.aliceAnswersBob = () => bobHears('alice');
        const call = await bob.connect({ params: { To: 'client:alice' } });
        call.on('accept', () => {
          window.say({ event: 'bob_accepted' });
          bobHears('bob');
        });
        call.on('disconnect', () => window.say({ event: 'bob_disconnected' }));
        window.bobCall = call;
      };
      // alice and bob both call `room`, a conference: each listens to what the mix brings
      // (the other's microphone, never its own), then hangs up.
      window.meet = async () => {
        for (const [who, d] of [['alice', device], ['bob', window.bobDevice]]) {
          const call = await d.connect({ params: { To: 'room' } });
          call.on('accept', () => {
            window.say({ event: 'room_joined', who });
            setTimeout(() => window.listen(call, `heard_room_${who}`).then(() => call.disconnect()), 2500);
          });
          call.on('disconnect', () => window.say({ event: 'room_left', who }));
        }
      };
      // A call to the App's voice bot: listen to what it says, then hang up.
      window.placeBotCall = async () => {
        const call = await device.connect({ params: { To: 'bot' } });
        call.on('accept', () => {
          window.say({ event: 'bot_accepted', sid: call.parameters.CallSid });
          setTimeout(() => window.listen(call, 'heard_bot').then(() => call.disconnect()), 2000);
        });
        call.on('disconnect', () => window.say({ event: 'bot_disconnected' }));
      };
      // A call that holds while the page and the app exchange user-defined messages.
      window.placeMessageCall = async () => {
        const call = await device.connect({ params: { To: 'messages' } });
        window.messageCall = call;
        call.on('accept', () => window.say({ event: 'messages_accepted', sid: call.parameters.CallSid }));
        call.on('messageSent', (m) => window.say({ event: 'message_sent', voiceEventSid: m.voiceEventSid }));
        call.on('messageReceived', (m) => window.say({ event: 'message_received', content: m.content,
          contentType: m.contentType, messageType: m.messageType, voiceEventSid: m.voiceEventSid }));
        call.on('disconnect', () => window.say({ event: 'messages_disconnected' }));
      };
      window.placeCall = async () => {
        const call = await device.connect({ params: { To: number, flavor: 'vanilla' } });
        call.on('ringing', () => window.say({ event: 'ringing' }));
        call.on('accept', () => {
          window.say({ event: 'accepted', sid: call.parameters.CallSid });
          // The App gathers a key first; then the trunk is dialed and talks.
          setTimeout(() => call.sendDigits('7'), 500);
          // Then the signalling socket drops, as in a network blip: the SDK reconnects and
          // takes its call back with its token; the media goes on.
          setTimeout(() => window.listen(call, 'heard').then(() => device._stream.transport._socket.close()), 2500);
        });
        call.on('reconnecting', (e) => window.say({ event: 'reconnecting', code: e && e.code }));
        call.on('reconnected', () => {
          window.say({ event: 'reconnected', sid: call.parameters.CallSid });
          setTimeout(() => window.listen(call, 'heard_after_reconnect').then(() => setTimeout(() => call.disconnect(), 1500)), 1000);
        });
        call.on('disconnect', () => window.say({ event: 'disconnected', sid: call.parameters.CallSid }));
        call.on('error', (e) => window.say({ event: 'call_error', code: e.code, message: e.message }));
      };
      device.register().catch((e) => window.say({ event: 'register_failed', message: String(e) }));
    },
    CHUNDERW,
    token('not-the-secret', 'mallory', app.sid),
    tokenWith(KEY_SID, KEY_SECRET, 'alice', app.sid, -60),
    token(KEY_SECRET, 'alice', app.sid),
    NUMBER,
  );
  await waitFor(seen('bad_token'), 'the bad token\'s error');
  await waitFor(seen('expired_token'), 'the expired token\'s error');
  await waitFor(seen('registered'), 'the registration');
  await page.evaluate(() => window.placeCall());
  await waitFor(() => asked.length, 'the App\'s request');
  const gathered = await waitFor(() => asked.find((p) => p.Digits), 'the gathered key');
  say({ event: 'gathered', digits: gathered.Digits, call_sid: gathered.CallSid });
  const a = asked[0];
  say({ event: 'app_asked', from: a.From, caller: a.Caller, to: a.To, called: a.Called,
        direction: a.Direction, application: a.ApplicationSid === app.sid, flavor: a.flavor,
        from_token: a.fromToken, account: a.AccountSid === ACCOUNT, call_sid: a.CallSid });
  await waitFor(seen('disconnected'), 'the end of the device\'s call', 30);

  // The device is called.
  const call = await client.calls.create({ to: 'client:alice', from: '+15550001', url: `${pageUrl}/play` });
  say({ event: 'calling_client', sid: call.sid });
  await waitFor(seen('heard_incoming_rest'), 'the page\'s listening', 30);
  await client.calls(call.sid).update({ status: 'completed' });
  await waitFor(seen('incoming_disconnected'), 'the end of the call to the device');
  const fetched = await client.calls(call.sid).fetch();
  say({ event: 'client_call', status: fetched.status, to: fetched.to });

  // Browser to browser: bob calls client:alice, whose two devices ring; the first answers,
  // the other is cancelled; alice hears bob's microphone.
  const bobToken = tokenWith(key.sid, key.secret, 'bob', app.sid);
  await page.evaluate((a, b) => window.moreDevices(a, b), token(KEY_SECRET, 'alice', app.sid), bobToken);
  await waitFor(seen('heard_incoming_bob'), 'alice listening to bob', 30);
  const aliceEnded = pageEvents.filter((e) => e.event === 'incoming_disconnected').length;
  await page.evaluate(() => window.bobCall.disconnect());
  await waitFor(seen('bob_disconnected'), 'the end of bob\'s call');
  // And alice's end of it: a device still in a call takes no other (the SDK's default), so
  // the next call must not ring her before her hang-up has come (later on a busy machine).
  await waitFor(seen('incoming_disconnected', aliceEnded + 1), 'alice\'s end of bob\'s call');
  // The REST API calls client:alice, who has two devices now: both ring with the call's one
  // SID, the first answers and hears the call, the other is cancelled.
  await page.evaluate(() => (window.phase = 'fork'));
  const before = pageEvents.filter((e) => e.event === 'incoming_disconnected').length;
  const forked = await client.calls.create({ to: 'client:alice', from: '+15550001', url: `${pageUrl}/play` });
  say({ event: 'calling_devices', sid: forked.sid });
  await waitFor(seen('heard_incoming_fork'), 'alice listening to the REST call', 30);
  await client.calls(forked.sid).update({ status: 'completed' });
  await waitFor(seen('incoming_disconnected', before + 1), 'the end of the REST call to two devices');
  const forkedAfter = await client.calls(forked.sid).fetch();
  say({ event: 'fork_call', status: forkedAfter.status, to: forkedAfter.to });

  // alice calls the voice bot.
  await page.evaluate(() => window.placeBotCall());
  await waitFor(seen('bot_disconnected'), 'the end of the call to the bot', 30);
  say(await waitFor(() => bot.done, 'the stream\'s stop'));
  // User-defined messages on alice's next call: the app subscribes, the page sends, the app
  // answers (twice with one IdempotencyKey: once received), unsubscribes, and the page's
  // next message goes nowhere.
  await page.evaluate(() => window.placeMessageCall());
  const held = await waitFor(() => pageEvents.find((e) => e.event === 'messages_accepted'), 'the message call', 30);
  const sub = await client.calls(held.sid).userDefinedMessageSubscriptions.create({ callback: `${pageUrl}/messages`, method: 'POST' });
  const sentBy = await page.evaluate(() => window.messageCall.sendMessage({ content: { order: 42 }, messageType: 'user-defined-message' }));
  await waitFor(seen('message_sent'), 'the ack of the page\'s message');
  const got = await waitFor(() => messages[0], 'the page\'s message at the subscription');
  const reply = { content: JSON.stringify({ reply: 'ok' }), idempotencyKey: 'once' };
  const sent = await client.calls(held.sid).userDefinedMessages.create(reply);
  const again = await client.calls(held.sid).userDefinedMessages.create(reply);
  await waitFor(seen('message_received'), 'the app\'s message in the page');
  await client.calls(held.sid).userDefinedMessageSubscriptions(sub.sid).remove();
  await page.evaluate(() => window.messageCall.sendMessage({ content: { order: 43 }, messageType: 'user-defined-message' }));
  await waitFor(seen('message_sent', 2), 'the ack of the page\'s second message');
  await new Promise((r) => setTimeout(r, 1000));
  say({ event: 'user_messages', call: held.sid, subscription: sub.sid, subscription_call: sub.callSid,
        page_sid: sentBy, callback: got.params, valid: got.valid, message_sid: sent.sid, message_call: sent.callSid,
        same_again: again.sid === sent.sid, received: pageEvents.filter((e) => e.event === 'message_received'),
        after_unsubscribe: messages.length });
  await page.evaluate(() => window.messageCall.disconnect());
  await waitFor(seen('messages_disconnected'), 'the end of the message call');
  // alice and bob meet in a conference.
  await page.evaluate(() => window.meet());
  await waitFor(seen('room_left', 2), 'the end of the conference calls', 30);
  // The key authenticates REST requests too, until it is deleted.
  const withKey = twilio(key.sid, key.secret, { accountSid: ACCOUNT });
  withKey.api.baseUrl = BASE;
  const seenByKey = (await withKey.applications(app.sid).fetch()).sid === app.sid;
  await client.keys(key.sid).remove();
  let refusedAfter = null;
  try {
    await withKey.applications(app.sid).fetch();
  } catch (e) {
    refusedAfter = e.status;
  }
  say({ event: 'key_deleted', worked_before: seenByKey, status_after: refusedAfter });
  finish(0);
}

main().catch((e) => {
  say({ event: 'failed', message: String((e && e.stack) || e) });
  process.exit(1);
});
