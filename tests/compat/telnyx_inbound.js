// Incoming calls to numbers on a connection, handled with Telnyx's official Node SDK (telnyx
// 7.24.0): tests/compat/telnyx_inbound.py's app, in Node, run by the same test.
//
//     node telnyx_inbound.js BASE_URL API_KEY PUBLIC_KEY WEBHOOK_HOST:PORT ANSWERED BUSY IGNORED \
//         TRANSFERRED CALLEE
//
// Every webhook is verified with the SDK's `webhooks.unwrap` (Ed25519) and acted on one at a
// time, as an app's worker would:
// - a call to ANSWERED: a recording and a fork refused before the answer (not answered yet),
//   `answer` (client_state, custom_headers, a command_id; sent twice), then
//   on `call.answered` two refused bridges (an unknown call, itself) and a two-digit
//   `gatherUsingAudio` of the 600 Hz WAV this server serves (two tries); on the valid
//   `call.gather.ended` a `gatherUsingSpeak` stopped at once with `stopGather`, and on that
//   (cancelled) `call.gather.ended` a hang-up with custom_headers for the BYE;
// - a call to BUSY: `reject` USER_BUSY (an `answer` after it is refused);
// - a call to IGNORED: nothing (the connection's first-command timeout ends it);
// - a call to TRANSFERRED: `transfer` to CALLEE with the WAV as `audio_url`; on HANGUP (stdin)
//   the callee's leg is hung up.
// Prints READY once listening, then one JSON summary when the five legs have hung up.

'use strict';
const http = require('http');
const readline = require('readline');
const { Telnyx } = require('telnyx');

const [BASE, KEY, PUBLIC_KEY, HOOKS, ANSWERED, BUSY, IGNORED, TRANSFERRED, CALLEE] = process.argv.slice(2);
const client = new Telnyx({ apiKey: KEY, baseURL: BASE + '/v2', publicKey: PUBLIC_KEY, maxRetries: 0 });
const STATE = Buffer.from('inbound-app').toString('base64');

// Two seconds of 600 Hz, 8 kHz 16-bit mono, as a WAV file.
function toneWav() {
  const n = 16000;
  const wav = Buffer.alloc(44 + n * 2);
  wav.write('RIFF', 0);
  wav.writeUInt32LE(36 + n * 2, 4);
  wav.write('WAVEfmt ', 8);
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20);
  wav.writeUInt16LE(1, 22);
  wav.writeUInt32LE(8000, 24);
  wav.writeUInt32LE(16000, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36);
  wav.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i += 1) {
    wav.writeInt16LE(Math.trunc(8000 * Math.sin((2 * Math.PI * 600 * i) / 8000)), 44 + i * 2);
  }
  return wav;
}
const TONE = toneWav();

const hooks = [];
const errors = {};
const legs = {};

function events(kind) {
  return hooks.map((h) => h.body.data).filter((d) => kind === undefined || d.event_type === kind);
}

// The code of an error the SDK threw: its body is Telnyx's `{errors: [...]}`.
function codeOf(e) {
  if (!(e instanceof Telnyx.UnprocessableEntityError)) throw e;
  const body = e.error;
  return (Array.isArray(body) ? body[0] : body.errors[0]).code;
}

async function act(data) {
  const p = data.payload;
  const ccid = p.call_control_id;
  const kind = data.event_type;
  const actions = client.calls.actions;
  if (kind === 'call.initiated' && p.direction === 'incoming') {
    if (p.to === ANSWERED) {
      // Before the answer there is no audio to record, fork or transcribe.
      for (const [name, start] of [
        ['record_unanswered', () => actions.startRecording(ccid, { format: 'wav', channels: 'single' })],
        ['fork_unanswered', () => actions.startForking(ccid, { rx: 'udp:127.0.0.1:9', tx: 'udp:127.0.0.1:9' })],
      ]) {
        try {
          await start();
        } catch (e) {
          errors[name] = codeOf(e);
        }
      }
      const answered = await actions.answer(ccid, {
        client_state: STATE,
        command_id: 'answer-1',
        custom_headers: [{ name: 'X-Answered-By', value: 'inbound-bot' }],
      });
      if (answered.data.result !== 'ok') throw new Error(`answer: ${JSON.stringify(answered)}`);
      // A retry of the same command: answered as the first, run once.
      const again = await actions.answer(ccid, { command_id: 'answer-1' });
      if (again.data.result !== 'ok') throw new Error(`answer again: ${JSON.stringify(again)}`);
    } else if (p.to === TRANSFERRED) {
      legs.transferred = ccid;
      await actions.transfer(ccid, {
        to: CALLEE,
        audio_url: `http://${HOOKS}/tone.wav`,
        timeout_secs: 20,
        target_leg_client_state: Buffer.from('b-leg').toString('base64'),
      });
    } else if (p.to === BUSY) {
      await actions.reject(ccid, { cause: 'USER_BUSY' });
      try {
        await actions.answer(ccid);
      } catch (e) {
        errors.answer_after_reject = codeOf(e);
      }
    }
  } else if (kind === 'call.initiated' && p.direction === 'outgoing') {
    legs.callee = ccid;
  } else if (kind === 'call.answered' && p.to === ANSWERED) {
    for (const [name, other] of [['bridge_unknown', 'v3:AAAAAAAAAAAAAAAAAAAAAA'], ['bridge_self', ccid]]) {
      try {
        await actions.bridge(ccid, { call_control_id_to_bridge_with: other });
      } catch (e) {
        errors[name] = codeOf(e);
      }
    }
    await actions.gatherUsingAudio(ccid, {
      audio_url: `http://${HOOKS}/tone.wav`,
      minimum_digits: 2,
      maximum_digits: 2,
      maximum_tries: 2,
      inter_digit_timeout_millis: 4000,
      valid_digits: '0123456789',
      gather_id: 'code',
    });
  } else if (kind === 'call.gather.ended' && p.to === ANSWERED) {
    if (p.status === 'valid') {
      await actions.gatherUsingSpeak(ccid, { payload: 'Thank you.', voice: 'female', maximum_digits: 1 });
      await actions.stopGather(ccid);
    } else {
      await actions.hangup(ccid, { custom_headers: [{ name: 'X-Reason', value: 'gathered' }] });
    }
  }
}

// One webhook acted on at a time, in arrival order.
let acting = Promise.resolve();
const hookServer = http.createServer((req, res) => {
  if (req.method === 'GET') {
    if (req.url !== '/tone.wav') {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'audio/wav', 'Content-Length': TONE.length });
    res.end(TONE);
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const raw = Buffer.concat(chunks).toString();
    let verified = false;
    try {
      const event = await client.webhooks.unwrap(raw, { headers: req.headers });
      verified = event.data.event_type !== undefined;
    } catch (e) {
      console.error('webhook not verified:', e.message);
    }
    const body = JSON.parse(raw);
    hooks.push({ body, raw, headers: req.headers, verified });
    res.writeHead(200);
    res.end();
    acting = acting.then(() =>
      act(body.data).catch((e) => {
        console.error('acting on', body.data.event_type, 'failed:', e);
        (errors.acting = errors.acting || []).push(String(e));
      }),
    );
  });
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'HANGUP') {
    acting = acting.then(() => client.calls.actions.hangup(legs.callee));
  }
});

async function main() {
  const at = HOOKS.lastIndexOf(':');
  await new Promise((r) => hookServer.listen(Number(HOOKS.slice(at + 1)), HOOKS.slice(0, at), r));
  console.log('READY');
  const deadline = Date.now() + 90_000;
  while (events('call.hangup').length < 5 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  // Whatever follows the hang-ups (nothing should) has a moment to arrive.
  await new Promise((r) => setTimeout(r, 500));
  await acting;

  // A webhook whose body was changed after signing is refused by the SDK.
  let tamperedVerified;
  try {
    await client.webhooks.unwrap(hooks[0].raw.replace('"call.initiated"', '"call.answered"'), {
      headers: hooks[0].headers,
    });
    tamperedVerified = true;
  } catch (e) {
    tamperedVerified = e.name === 'TelnyxWebhookVerificationError' ? false : `threw ${e.name}`;
  }
  console.log(
    JSON.stringify({
      events: events().map((e) => [e.event_type, e.payload]),
      verified: hooks.map((h) => h.verified),
      tampered_verified: tamperedVerified,
      errors,
    }),
  );
  hookServer.close();
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
