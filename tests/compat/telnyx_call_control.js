// The seed voice-AI app on Switchboard, with Telnyx's official Node SDK (telnyx 7.24.0) and
// the `ws` package for its media socket: tests/compat/telnyx_call_control.py's flow, in Node.
//
//     node telnyx_call_control.js BASE_URL API_KEY PUBLIC_KEY CONNECTION_ID WEBHOOK_HOST:PORT
//
// It dials +15551234 (the test's SIPp callee answers; the test is the callee's RTP) with a
// bidirectional stream (`stream_bidirectional_mode: 'rtp'`, PCMU 8000, both tracks, an auth
// token), `client_state`, `command_id`, a `from_display_name` and a custom header (the
// callee checks its INVITE for them); repeats the dial with the same `command_id`; verifies
// every webhook with the SDK's `webhooks.unwrap` (and that a tampered one fails it); talks into
// the call over the socket (a 600 Hz tone the test listens for at the callee) and listens for
// the callee (1 kHz, then noise); records the callee while it sends 1 kHz (`startRecording`,
// wav, inbound track), and once `call.recording.saved` comes finds the recording with
// `recordings.list` and downloads its wav; turns on `startNoiseSuppression({direction:
// 'both'})` and measures the callee's noise again; updates its client_state; hangs up (twice,
// with one command_id); and checks the errors the SDK throws for a dead call, a missing
// parameter and a wrong key. Prints one JSON summary.

'use strict';
const http = require('http');
const { Telnyx } = require('telnyx');
const { WebSocketServer } = require('ws');

const [BASE, KEY, PUBLIC_KEY, CONNECTION, HOOKS] = process.argv.slice(2);
const client = new Telnyx({ apiKey: KEY, baseURL: BASE + '/v2', publicKey: PUBLIC_KEY, maxRetries: 0 });

// Webhooks: each kept with the SDK's verdict on its signature, and the first's raw form for
// the tampering check.
const hooks = [];
let firstRaw = null;

function events(kind) {
  return hooks.map((h) => h.body.data).filter((d) => kind === undefined || d.event_type === kind);
}

async function wait(check, what, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const value = check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; webhooks: ${JSON.stringify(events())}`);
}

// μ-law, as G.711 defines it.
function ulawDecode(b) {
  b = ~b & 0xff;
  let t = ((b & 0x0f) << 3) + 0x84;
  t <<= (b & 0x70) >> 4;
  return b & 0x80 ? 0x84 - t : t - 0x84;
}

function ulawEncode(s) {
  s = Math.max(-32635, Math.min(32635, s));
  const sign = s < 0 ? 0x80 : 0;
  s = Math.abs(s) + 0x84;
  let exponent = 7;
  let mask = 0x4000;
  while (exponent > 0 && !(s & mask)) {
    exponent -= 1;
    mask >>= 1;
  }
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

// Power at `freq` relative to the signal's power (1.0 for a pure tone).
function goertzel(samples, freq, rate = 8000) {
  const k = 2 * Math.cos((2 * Math.PI * freq) / rate);
  let s1 = 0;
  let s2 = 0;
  let energy = 0;
  for (const x of samples) {
    const s = x + k * s1 - s2;
    s2 = s1;
    s1 = s;
    energy += x * x;
  }
  const power = s1 * s1 + s2 * s2 - k * s1 * s2;
  return (2 * power) / (samples.length * (energy || 1));
}

const rmsOf = (pcm) => Math.sqrt(pcm.reduce((a, x) => a + x * x, 0) / Math.max(pcm.length, 1));
const tonal = (pcm, freq) =>
  pcm.length >= 160 && Math.max(...pcm.map(Math.abs)) > 2000 && goertzel(pcm, freq) > 0.7;

const hookServer = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const body = Buffer.concat(chunks).toString();
    let verified = false;
    try {
      const event = await client.webhooks.unwrap(body, { headers: req.headers });
      verified = event.data.event_type !== undefined;
    } catch (e) {
      console.error('webhook not verified:', e.message);
    }
    if (firstRaw === null) firstRaw = { body, headers: req.headers };
    hooks.push({ body: JSON.parse(body), verified });
    res.writeHead(200);
    res.end();
  });
});

const stream = { tokenHeader: null, messages: [], tracks: new Set(), toneFrames: 0 };
// The RMS of the callee's noise frames, before and after startNoiseSuppression.
const noise = { before: [], after: [], settling: [] };
let phase = 'before';

// A 600 Hz tone for 4 s, in 100 ms messages at real-time pace, then a mark.
async function speak(socket) {
  let n = 0;
  for (let i = 0; i < 40; i++) {
    const chunk = Buffer.alloc(800);
    for (let j = 0; j < 800; j++) {
      chunk[j] = ulawEncode(Math.round(8000 * Math.sin((2 * Math.PI * 600 * (n + j)) / 8000)));
    }
    n += 800;
    socket.send(JSON.stringify({ event: 'media', media: { payload: chunk.toString('base64') } }));
    await new Promise((r) => setTimeout(r, 100));
  }
  socket.send(JSON.stringify({ event: 'mark', mark: { name: 'spoken' } }));
}

const media = new WebSocketServer({ host: '127.0.0.1', port: 0 });
media.on('connection', (socket, request) => {
  stream.tokenHeader = request.headers['x-telnyx-streaming-auth-token'] || null;
  let talking = false;
  socket.on('message', (text) => {
    const m = JSON.parse(text.toString());
    const { media: _, ...rest } = m;
    stream.messages.push(rest);
    if (m.event === 'start' && !talking) {
      talking = true;
      speak(socket).catch((e) => console.error('speaking:', e));
    }
    if (m.event === 'media') {
      stream.tracks.add(m.media.track);
      if (m.media.track === 'inbound') {
        const pcm = [...Buffer.from(m.media.payload, 'base64')].map(ulawDecode);
        const rms = rmsOf(pcm);
        if (tonal(pcm, 1000)) {
          stream.toneFrames += 1;
        } else if (pcm.length >= 160 && (phase === 'after' || rms > 300)) {
          // Before: the callee's noise frames; after: every frame (suppressed noise and
          // silence look alike; the test finds the noise by its timing).
          noise[phase].push(rms);
        }
      }
    }
  });
});

// How many 20 ms frames of a 16-bit PCM WAV are mostly `freq`.
function wavToneFrames(wav, freq) {
  let at = 12;
  while (at + 8 <= wav.length && wav.toString('ascii', at, at + 4) !== 'data') {
    at += 8 + wav.readUInt32LE(at + 4);
  }
  const pcm = [];
  for (let i = at + 8; i + 1 < wav.length; i += 2) pcm.push(wav.readInt16LE(i));
  let frames = 0;
  for (let i = 0; i + 160 <= pcm.length; i += 160) {
    if (tonal(pcm.slice(i, i + 160), freq)) frames += 1;
  }
  return frames;
}

// The code of an error the SDK threw: its body is Telnyx's `{errors: [...]}`.
function firstError(e) {
  const body = e.error;
  return Array.isArray(body) ? body[0] : body && body.errors ? body.errors[0] : body;
}

async function main() {
  await new Promise((r) => media.on('listening', r));
  const [hookHost, hookPort] = [HOOKS.slice(0, HOOKS.lastIndexOf(':')), HOOKS.slice(HOOKS.lastIndexOf(':') + 1)];
  await new Promise((r) => hookServer.listen(Number(hookPort), hookHost, r));
  const wsHost = `127.0.0.1:${media.address().port}`;

  const state = Buffer.from('seed-app').toString('base64');
  const dial = {
    connection_id: CONNECTION,
    from: '+15550002222',
    to: '+15551234',
    stream_url: `ws://${wsHost}/media`,
    stream_track: 'both_tracks',
    stream_bidirectional_mode: 'rtp',
    stream_bidirectional_codec: 'PCMU',
    stream_bidirectional_sampling_rate: 8000,
    stream_auth_token: 's3cret-token',
    client_state: state,
    command_id: 'dial-1',
    from_display_name: 'Seed Bot',
    custom_headers: [{ name: 'X-Seed-Id', value: '42' }],
  };
  const first = (await client.calls.dial(dial)).data;
  const again = (await client.calls.dial(dial)).data;
  if (again.call_control_id !== first.call_control_id) throw new Error(`two calls: ${JSON.stringify([first, again])}`);
  const ccid = first.call_control_id;
  if (!ccid.startsWith('v3:') || first.is_alive !== false || first.client_state !== state) {
    throw new Error(`dial answered ${JSON.stringify(first)}`);
  }

  await wait(() => events('call.answered').length, 'call.answered');
  await wait(() => events('streaming.started').length, 'streaming.started');
  const recording = (
    await client.calls.actions.startRecording(ccid, { format: 'wav', channels: 'single', recording_track: 'inbound' })
  ).data;
  // The test hears the 600 Hz and answers with 1 kHz, then noise, on the inbound track.
  console.log('TALKING');
  await wait(() => stream.toneFrames >= 50, "the callee's 1 kHz on the inbound track", 30);
  // Nearly all of the callee's 2 s (100 frames) of noise first: none of it is still on its
  // way once suppression is on (a tap may drop a frame or two under load, so not all 100).
  await wait(() => noise.before.length >= 90, "the callee's noise", 30);
  await client.calls.actions.stopRecording(ccid, {});
  const suppressed = await client.calls.actions.startNoiseSuppression(ccid, { direction: 'both' });
  if (suppressed.data.result !== 'ok') throw new Error(`suppression_start: ${JSON.stringify(suppressed)}`);
  phase = 'settling';
  await new Promise((r) => setTimeout(r, 500));
  phase = 'after';
  // The test sends the same noise again: what reaches the app now is suppressed.
  console.log('SUPPRESSED');

  // The recording of the callee's tone: listed by the SDK, its wav downloaded.
  const saved = (await wait(() => events('call.recording.saved')[0], 'call.recording.saved')).payload;
  const listed = [];
  for await (const r of client.recordings.list({ filter: { call_control_id: ccid } })) listed.push(r);
  const wavUrl = listed.length ? listed[0].download_urls.wav : null;
  const wav = wavUrl ? Buffer.from(await (await fetch(wavUrl)).arrayBuffer()) : Buffer.alloc(0);

  await wait(() => noise.after.length >= 200, "4 s of the callee's audio, suppressed", 30);
  let status = (await client.calls.retrieveStatus(ccid)).data;
  if (status.is_alive !== true || status.client_state !== state) throw new Error(`status ${JSON.stringify(status)}`);
  const after = Buffer.from('after').toString('base64');
  await client.calls.actions.updateClientState(ccid, { client_state: after });
  if ((await client.calls.actions.hangup(ccid, { command_id: 'bye' })).data.result !== 'ok') throw new Error('hangup');
  await wait(() => events('call.hangup').length, 'call.hangup');
  // The same command_id again: ignored, the same answer.
  if ((await client.calls.actions.hangup(ccid, { command_id: 'bye' })).data.result !== 'ok') throw new Error('hangup again');
  await wait(() => events('streaming.stopped').length, 'streaming.stopped');

  // A webhook whose body was changed after signing fails the SDK's check.
  let tamperedVerified;
  try {
    await client.webhooks.unwrap(firstRaw.body.replace('"call.initiated"', '"call.answered"'), { headers: firstRaw.headers });
    tamperedVerified = true;
  } catch (e) {
    tamperedVerified = e.name === 'TelnyxWebhookVerificationError' ? false : `threw ${e.name}`;
  }

  const errors = {};
  try {
    await client.calls.actions.speak(ccid, { payload: 'too late', voice: 'female' });
  } catch (e) {
    if (!(e instanceof Telnyx.UnprocessableEntityError)) throw e;
    errors.ended = firstError(e).code;
  }
  try {
    await client.calls.dial({ connection_id: CONNECTION, from: '+15550002222', to: '' });
  } catch (e) {
    if (!(e instanceof Telnyx.UnprocessableEntityError)) throw e;
    errors.missing = firstError(e);
  }
  try {
    await new Telnyx({ apiKey: 'KEY-not-a-key-of-anyone', baseURL: BASE + '/v2', maxRetries: 0 }).calls.retrieveStatus(ccid);
  } catch (e) {
    if (!(e instanceof Telnyx.AuthenticationError)) throw e;
    errors.auth = e.status;
  }
  status = (await client.calls.retrieveStatus(ccid)).data;

  const sorted = [...noise.before].sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      call_control_id: ccid,
      events: events().map((e) => [e.event_type, e.payload]),
      verified: hooks.map((h) => h.verified),
      tampered_verified: tamperedVerified,
      stream: {
        token_header: stream.tokenHeader,
        events: stream.messages.map((m) => m.event),
        start: stream.messages.find((m) => m.event === 'start') || null,
        tracks: [...stream.tracks].sort(),
        tone_frames: stream.toneFrames,
      },
      noise_rms: {
        before: sorted[Math.floor(sorted.length / 2)],
        after: noise.after.slice(0, 250).map(Math.round),
      },
      recording: {
        started: recording.result,
        saved_id: saved.recording_id,
        listed: listed.map((r) => ({ id: r.id, call_control_id: r.call_control_id, status: r.status })),
        wav_bytes: wav.length,
        wav_1khz_frames: wavToneFrames(wav, 1000),
      },
      final_status: { is_alive: status.is_alive, client_state: status.client_state },
      errors,
    }),
  );
  hookServer.close();
  media.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
