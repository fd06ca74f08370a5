// A browser softphone's SIP stack, JsSIP 3.13 (unmodified), run under Node with the `ws`
// package as its WebSocket: it registers with Switchboard over the ws:/wss: URL it is given,
// reports the call that reaches it and turns it down with 486 Busy Here (answering would need
// a browser's RTCPeerConnection). Each step is one JSON line on stdout.
//
//   node jssip_phone.js wss://127.0.0.1:5081 alice secret switchboard
global.WebSocket = require('ws');
// JsSIP takes calls only where a browser's RTCPeerConnection exists; it constructs one only to
// answer, which this phone never does, so a class that is never instantiated stands in.
global.window = {
  RTCPeerConnection: class {
    constructor() {
      throw new Error('no media in this phone');
    }
  },
};
const JsSIP = require('jssip');

const [url, user, password, domain] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
const ua = new JsSIP.UA({
  sockets: [new JsSIP.WebSocketInterface(url)],
  uri: `sip:${user}@${domain}`,
  password,
  register: true,
  register_expires: 300,
  session_timers: false,
});
ua.on('registered', (e) => say({ event: 'registered', status: e.response.status_code }));
ua.on('registrationFailed', (e) => {
  say({ event: 'registrationFailed', cause: e.cause, status: e.response && e.response.status_code, reason: e.response && e.response.reason_phrase });
  process.exit(1);
});
ua.on('newRTCSession', ({ session, request, originator }) => {
  if (originator !== 'remote') return;
  say({
    event: 'incoming',
    from: request.from.uri.user,
    ruri: request.ruri.toString(),
    via: request.getHeader('Via'),
  });
  session.on('failed', (e) => {
    say({ event: 'rejected', cause: e.cause });
    ua.stop();
    setTimeout(() => process.exit(0), 500);
  });
  setTimeout(() => session.terminate({ status_code: 486, reason_phrase: 'Busy Here' }), 200);
});
ua.start();
setTimeout(() => {
  say({ event: 'timeout' });
  process.exit(2);
}, 30000);
