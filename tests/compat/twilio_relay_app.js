// A voice-AI app on Twilio's ConversationRelay, built the way public ConversationRelay apps
// are (a library's assistant that answers questions and hands the caller to a librarian), on
// the official SDKs: twilio-node (6.2.0) builds the TwiML (`VoiceResponse`,
// `connect().conversationRelay()` with `<Language>` and `<Parameter>`) and checks every
// request's X-Twilio-Signature (`validateRequest`, refusing a bad one with 403, the session's
// WebSocket upgrade included); `ws` is its socket; openai-node (6.30.1) streams the model's
// answer into `text` tokens as they arrive. The model is a stand-in reached through
// OPENAI_BASE_URL, as a developer points the SDK at a proxy: nothing here knows Switchboard.
//
//   node twilio_relay_app.js SWITCHBOARD_BASE AUTH_TOKEN LISTEN_HOST:PORT
//
// The conversation, as such apps keep it: the caller's prompts and digits are the user's
// turns; an `interrupt` stops the model's stream and rewrites the agent's last turn to what the
// caller heard (`utteranceUntilInterrupt`); the model's `transfer_to_librarian` function ends
// the session with `handoffData`, and the `<Connect action>` says goodbye and hangs up.
//
// Prints READY once listening, then a JSON line for each thing a test checks:
// {"relay": message} for each message from the relay, {"upgrade": {verified}} for the socket's
// handshake, {"request": path, "params": {…}, "verified": bool} for each webhook, and
// {"error": text} for anything that went wrong.

const http = require('http');
const twilio = require('twilio');
const { WebSocketServer } = require('ws');
const OpenAI = require('openai');

const [, , , AUTH_TOKEN, LISTEN] = process.argv;
const [HOST, PORT] = LISTEN.split(':');
const BASE = `http://${LISTEN}`;
const RELAY = `ws://${LISTEN}/relay`;
const GREETING = 'Hello, this is the county library. How can I help you today?';
const SYSTEM = 'You are the voice assistant of the county library. Answer in short spoken ' +
  'sentences, without lists or markdown. When the caller asks for a person, offer a ' +
  'librarian and transfer the call once they press one.';
const TOOLS = [{
  type: 'function',
  function: {
    name: 'transfer_to_librarian',
    description: 'Hands the call to a librarian.',
    parameters: {
      type: 'object',
      properties: { reason: { type: 'string', description: 'Why the caller needs a person.' } },
      required: ['reason'],
    },
  },
}];

const openai = new OpenAI({ apiKey: process.env.OPENAI_API_KEY || 'sk-test' });
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');

function voiceResponse() {
  const response = new twilio.twiml.VoiceResponse();
  const connect = response.connect({ action: `${BASE}/handoff` });
  const relay = connect.conversationRelay({
    url: RELAY,
    welcomeGreeting: GREETING,
    dtmfDetection: true,
    interruptible: 'any',
    ttsProvider: 'ElevenLabs',
    transcriptionProvider: 'Deepgram',
  });
  relay.language({ code: 'en-US' });
  relay.parameter({ name: 'card', value: '0042' });
  return response.toString();
}

function handoffResponse(params) {
  const response = new twilio.twiml.VoiceResponse();
  const handoff = JSON.parse(params.HandoffData || '{}');
  if (handoff.reasonCode === 'live-agent-handoff') {
    response.say('Connecting you to a librarian. Please hold the line.');
  }
  response.hangup();
  return response.toString();
}

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    const path = req.url.split('?')[0];
    const params = Object.fromEntries(new URLSearchParams(body));
    const verified = twilio.validateRequest(
      AUTH_TOKEN, req.headers['x-twilio-signature'] || '', `${BASE}${req.url}`, params);
    print({ request: path, params, verified });
    if (!verified) {
      res.writeHead(403).end();
      return;
    }
    const twiml = { '/voice': () => voiceResponse(), '/handoff': () => handoffResponse(params) }[path];
    if (!twiml) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/xml' }).end(twiml());
  });
});

const wss = new WebSocketServer({
  server,
  path: '/relay',
  verifyClient: ({ req }) => {
    const verified = twilio.validateRequest(
      AUTH_TOKEN, req.headers['x-twilio-signature'] || '', RELAY, {});
    print({ upgrade: { verified } });
    return verified;
  },
});

wss.on('connection', (ws) => {
  const session = { messages: [], current: null, callSid: null };
  const send = (message) => ws.send(JSON.stringify(message));

  // Streams the model's answer to the conversation so far into `text` tokens.
  async function respond() {
    if (session.current) {
      session.current.controller.abort();
    }
    const turn = { controller: new AbortController(), heard: null };
    session.current = turn;
    let said = '';
    const calls = [];
    try {
      const stream = await openai.chat.completions.create(
        { model: 'gpt-4o-mini', messages: session.messages, tools: TOOLS, stream: true },
        { signal: turn.controller.signal });
      for await (const chunk of stream) {
        const delta = chunk.choices[0]?.delta || {};
        if (delta.content) {
          said += delta.content;
          send({ type: 'text', token: delta.content, last: false });
        }
        for (const call of delta.tool_calls || []) {
          calls[call.index] = calls[call.index] || { id: call.id, name: '', arguments: '' };
          calls[call.index].name += call.function?.name || '';
          calls[call.index].arguments += call.function?.arguments || '';
        }
      }
    } catch (e) {
      if (!turn.controller.signal.aborted) {
        print({ error: `the model: ${e.message}` });
      }
    } finally {
      if (session.current === turn) {
        session.current = null;
      }
    }
    if (turn.controller.signal.aborted) {
      if (turn.heard !== null) {
        session.messages.push({ role: 'assistant', content: turn.heard });
      }
      return;
    }
    if (said) {
      send({ type: 'text', token: '', last: true });
      session.messages.push({ role: 'assistant', content: said });
    }
    for (const call of calls.filter(Boolean)) {
      if (call.name === 'transfer_to_librarian') {
        const { reason } = JSON.parse(call.arguments || '{}');
        send({
          type: 'end',
          handoffData: JSON.stringify({ reasonCode: 'live-agent-handoff', reason, callSid: session.callSid }),
        });
      }
    }
  }

  ws.on('message', (data) => {
    let message;
    try {
      message = JSON.parse(data);
    } catch (e) {
      print({ error: `not JSON: ${data}` });
      return;
    }
    print({ relay: message });
    switch (message.type) {
      case 'setup':
        session.callSid = message.callSid;
        session.messages.push({
          role: 'system',
          content: `${SYSTEM} The caller's library card is ${message.customParameters?.card}.`,
        });
        session.messages.push({ role: 'assistant', content: GREETING });
        break;
      case 'prompt':
        session.messages.push({ role: 'user', content: message.voicePrompt });
        respond();
        break;
      case 'dtmf':
        session.messages.push({ role: 'user', content: `The caller pressed ${message.digit}.` });
        respond();
        break;
      case 'interrupt': {
        // What the caller heard is the agent's turn, whether the model is still streaming it
        // or has finished and only the voice was still speaking.
        if (session.current) {
          session.current.heard = message.utteranceUntilInterrupt;
          session.current.controller.abort();
        } else {
          const last = session.messages.findLast((m) => m.role === 'assistant');
          if (last) {
            last.content = message.utteranceUntilInterrupt;
          }
        }
        break;
      }
      case 'error':
        print({ error: message.description });
        break;
      default:
        break;
    }
  });
});

server.listen(Number(PORT), HOST, () => process.stdout.write('READY\n'));
