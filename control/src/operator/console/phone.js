// The console's softphone: the page is a browser leg of Switchboard, as a Telnyx WebRTC app's
// page is. It signs in with a SIP login (a credential connection's or a telephony
// credential's user name and password) over the Verto JSON-RPC socket the Telnyx SDK speaks
// (`/`), places calls with its own RTCPeerConnection (ICE-lite and DTLS-SRTP on the server's
// side, so no STUN server and no trickling), rings for calls to its login, answers them, sends
// keys (RFC 4733 from the peer connection) and hangs up. Its calls are calls like any other:
// routed, recorded, shown live in the console.
//
// Loaded before console.js, whose helpers (`el`, `$`, `show`) it uses when its view is drawn.
'use strict';

const phone = {
  socket: null,
  state: 'signed-out', // signed-out | signing-in | ready
  user: '',
  problem: '',
  call: null, // { id, direction, state, peer, number, offer? }
  next: 0,
  waiting: new Map(), // request id → resolve
};

/// Tells the phone's view (when shown) that something changed.
function phoneChanged() {
  const view = document.getElementById('phone');
  if (view) view.replaceWith(phonePanel());
}

function vertoRequest(method, params) {
  phone.next += 1;
  const id = `console-${phone.next}`;
  phone.socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
  return new Promise((resolve) => phone.waiting.set(id, resolve));
}

function vertoAck(id, method) {
  phone.socket.send(JSON.stringify({ jsonrpc: '2.0', id, result: { method } }));
}

function phoneSignIn(user, password) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(`${scheme}//${location.host}/`);
  Object.assign(phone, { socket, state: 'signing-in', user, problem: '' });
  socket.onopen = async () => {
    const reply = await vertoRequest('login', { login: user, passwd: password });
    if (reply.error) {
      phone.problem = 'That login was refused.';
      socket.close();
    }
  };
  socket.onmessage = (m) => vertoMessage(JSON.parse(m.data));
  socket.onclose = () => {
    if (phone.socket !== socket) return;
    endCall();
    Object.assign(phone, { socket: null, state: 'signed-out' });
    phoneChanged();
  };
  phoneChanged();
}

function phoneSignOut() {
  if (phone.call) hangUp();
  const socket = phone.socket;
  Object.assign(phone, { socket: null, state: 'signed-out', problem: '' });
  if (socket) socket.close();
  phoneChanged();
}

async function vertoMessage(msg) {
  if (!msg.method) {
    const resolve = phone.waiting.get(msg.id);
    phone.waiting.delete(msg.id);
    if (resolve) resolve(msg);
    return;
  }
  const p = msg.params || {};
  const ours = phone.call && p.callID === phone.call.id;
  switch (msg.method) {
    case 'telnyx_rtc.clientReady':
      phone.state = 'ready';
      break;
    case 'telnyx_rtc.ringing':
      if (ours) phone.call.state = 'ringing';
      break;
    case 'telnyx_rtc.media':
    case 'telnyx_rtc.answer':
      if (ours && p.sdp && phone.call.peer.signalingState === 'have-local-offer') {
        await phone.call.peer.setRemoteDescription({ type: 'answer', sdp: p.sdp });
      }
      if (ours && msg.method === 'telnyx_rtc.answer') phone.call.state = 'active';
      break;
    case 'telnyx_rtc.invite':
      if (phone.call) {
        // One call at a time: a second one is declined as busy.
        vertoRequest('telnyx_rtc.bye', { cause: 'USER_BUSY', causeCode: 17, dialogParams: { callID: p.callID } });
      } else {
        phone.call = { id: p.callID, direction: 'inbound', state: 'ringing', number: p.caller_id_number, offer: p.sdp };
      }
      break;
    case 'telnyx_rtc.bye':
      if (ours) endCall();
      break;
    case 'telnyx_rtc.punt':
      phone.problem = 'The server ended this login.';
      phone.socket.close();
      break;
    default:
      break;
  }
  vertoAck(msg.id, msg.method);
  phoneChanged();
}

/// A peer connection with the microphone, its far end played by the page's audio element
/// (outside the views, so that a call goes on being heard while the console shows others).
async function newPeer() {
  const microphone = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  const peer = new RTCPeerConnection({ iceServers: [] });
  for (const track of microphone.getTracks()) peer.addTrack(track, microphone);
  peer.ontrack = (e) => {
    const audio = document.getElementById('phone-audio');
    audio.srcObject = e.streams[0];
    audio.play().catch(() => {});
  };
  peer.microphone = microphone;
  return peer;
}

/// The local description once its candidates are gathered (at most 2 s: the server is
/// ICE-lite and learns the page's addresses from its checks anyway).
async function described(peer, description) {
  await peer.setLocalDescription(description);
  if (peer.iceGatheringState !== 'complete') {
    await new Promise((resolve) => {
      const done = () => peer.iceGatheringState === 'complete' && resolve();
      peer.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, 2000);
    });
  }
  return peer.localDescription.sdp;
}

async function dial(number) {
  const peer = await newPeer();
  const id = `${Date.now().toString(16)}-${Math.random().toString(16).slice(2)}`;
  phone.call = { id, direction: 'outbound', state: 'calling', number, peer };
  phoneChanged();
  const sdp = await described(peer, await peer.createOffer());
  const reply = await vertoRequest('telnyx_rtc.invite', {
    sdp,
    dialogParams: { callID: id, destination_number: number },
  });
  if (reply.error && phone.call && phone.call.id === id) {
    phone.problem = reply.error.message;
    endCall();
  }
}

async function answer() {
  const call = phone.call;
  call.peer = await newPeer();
  await call.peer.setRemoteDescription({ type: 'offer', sdp: call.offer });
  const sdp = await described(call.peer, await call.peer.createAnswer());
  await vertoRequest('telnyx_rtc.answer', { sdp, dialogParams: { callID: call.id } });
  call.state = 'active';
  phoneChanged();
}

function hangUp() {
  const call = phone.call;
  if (!call) return;
  const declined = call.direction === 'inbound' && call.state === 'ringing';
  vertoRequest('telnyx_rtc.bye', {
    cause: declined ? 'USER_BUSY' : 'NORMAL_CLEARING',
    causeCode: declined ? 17 : 16,
    dialogParams: { callID: call.id },
  });
  endCall();
}

function endCall() {
  const call = phone.call;
  phone.call = null;
  if (call && call.peer) {
    call.peer.microphone.getTracks().forEach((t) => t.stop());
    call.peer.close();
  }
  phoneChanged();
}

function sendKey(key) {
  const sender = phone.call && phone.call.peer && phone.call.peer.getSenders()[0];
  if (sender && sender.dtmf) sender.dtmf.insertDTMF(key, 100, 70);
}

/// The phone's panel: its sign-in, or its dialer and the call in progress.
function phonePanel() {
  if (phone.state !== 'ready') {
    const form = el('form', { class: 'sign-in phone-sign-in' },
      el('label', {}, 'SIP user name ', el('input', { name: 'user', autocomplete: 'username', required: true })),
      el('label', {}, 'Password ', el('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
      el('button', { type: 'submit' }, phone.state === 'signing-in' ? 'Signing in…' : 'Sign in'),
      phone.problem ? el('p', { class: 'error', id: 'phone-problem' }, phone.problem) : null);
    form.onsubmit = (e) => {
      e.preventDefault();
      phoneSignIn(form.user.value, form.password.value);
    };
    return el('section', { id: 'phone' }, el('p', {}, 'Sign in with a credential connection\'s or a telephony credential\'s SIP login.'), form);
  }
  const call = phone.call;
  const panel = el('section', { id: 'phone', class: 'phone' },
    el('p', {}, 'Signed in as ', el('strong', { id: 'phone-user' }, phone.user), ' ',
      el('button', { type: 'button', onclick: phoneSignOut }, 'Sign out')));
  if (!call) {
    const form = el('form', { class: 'dialer' },
      el('input', { name: 'number', placeholder: '+15551230000', required: true }),
      el('button', { type: 'submit', id: 'phone-call' }, 'Call'));
    form.onsubmit = (e) => {
      e.preventDefault();
      dial(form.number.value.trim());
    };
    panel.append(form);
    if (phone.problem) panel.append(el('p', { class: 'error' }, phone.problem));
    return panel;
  }
  panel.append(el('p', { id: 'phone-call-state', 'data-state': call.state, 'data-direction': call.direction },
    call.direction === 'inbound' ? `Call from ${call.number}: ` : `Call to ${call.number}: `, call.state));
  if (call.direction === 'inbound' && call.state === 'ringing') {
    panel.append(el('button', { type: 'button', id: 'phone-answer', onclick: answer }, 'Answer'));
  }
  panel.append(el('button', { type: 'button', id: 'phone-hang-up', onclick: hangUp }, 'Hang up'));
  if (call.state === 'active') {
    panel.append(el('div', { class: 'keypad' },
      [...'123456789*0#'].map((k) => el('button', { type: 'button', onclick: () => sendKey(k) }, k))));
  }
  return panel;
}

function phoneView() {
  return [el('h2', {}, 'Phone'), phonePanel()];
}
