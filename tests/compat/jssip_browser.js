// A browser softphone: JsSIP 3.13 (unmodified, bundled by esbuild as an application's build
// would) in a page of Debian's headless Chromium, driven by puppeteer-core. The page registers
// with Switchboard over the wss: URL it is given, answers the call that reaches it, then calls
// `target` itself with the browser's own RTCPeerConnection (a WebRTC offer: ICE, DTLS-SRTP).
// Its microphone is Chromium's fake capture device playing `wav`. Once each call is up, the
// page listens to what arrives (Web Audio's analyser: the loudest frequency every 150 ms for
// 3 s), reports it, and hangs up. Each step is one JSON line on stdout.
//
//   node jssip_browser.js wss://127.0.0.1:5081 alice secret switchboard 127.0.0.9 sip:+1555@sb tone.wav
//
// Chromium runs with --ignore-certificate-errors: the test's CA is not in its store (JsSIP
// under Node, jssip_phone.js, is the test that checks Switchboard's certificate).
const browserPage = require('./browser_page');
const esbuild = require('esbuild');
const http = require('http');

const [url, user, password, domain, host, target, wav] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
const bundle = esbuild.buildSync({
  stdin: { contents: 'window.JsSIP = require("jssip");', resolveDir: __dirname },
  nodePaths: (process.env.NODE_PATH || '').split(':'),
  bundle: true,
  format: 'iife',
  platform: 'browser',
  write: false,
}).outputFiles[0].text;

// The page is served over http from a loopback address: a secure context, as WebRTC needs.
const pages = http.createServer((req, res) => {
  if (req.url === '/jssip.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    return res.end(bundle);
  }
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>softphone</title><script src="/jssip.js"></script>');
});

pages.listen(0, host, async () => {
  const { browser, page, finish } = await browserPage.open(wav, pages, 40);
  await page.exposeFunction('say', (o) => {
    say(o);
    if (o.event === 'call_failed' || o.event === 'call_ended') finish(0);
    if (o.event === 'registrationFailed') finish(1);
  });
  await page.goto(`http://${host}:${pages.address().port}/`);
  await browserPage.install(page);
  await page.evaluate(
    (url, user, password, domain, target) => {
      const ua = new JsSIP.UA({
        sockets: [new JsSIP.WebSocketInterface(url)],
        uri: `sip:${user}@${domain}`,
        password,
        register: true,
        session_timers: false,
      });
      ua.on('registered', (e) => window.say({ event: 'registered', status: e.response.status_code }));
      ua.on('registrationFailed', (e) =>
        window.say({ event: 'registrationFailed', cause: e.cause, status: e.response && e.response.status_code }),
      );
      ua.on('newRTCSession', ({ session, request, originator }) => {
        if (originator !== 'remote') return;
        window.say({
          event: 'incoming',
          from: request.from.uri.user,
          ruri: request.ruri.toString(),
          via: request.getHeader('Via'),
          webrtc: /UDP\/TLS\/RTP\/SAVPF/.test(request.body || ''),
        });
        session.on('confirmed', () => {
          window.say({ event: 'answered' });
          listen(session, 'heard_incoming');
        });
        session.on('failed', (e) => window.say({ event: 'incoming_failed', cause: e.cause }));
        session.on('ended', (e) => {
          window.say({ event: 'incoming_ended', cause: e.cause, originator: e.originator });
          // Then the browser calls: a real RTCPeerConnection's offer.
          let sent = false;
          const call = ua.call(target, {
            mediaConstraints: { audio: true, video: false },
            eventHandlers: {
              // Once: the INVITE is sent again with credentials after the challenge.
              sending: (e) => {
                if (sent) return;
                sent = true;
                const sdp = e.request.body || '';
                const webrtc = /UDP\/TLS\/RTP\/SAVPF/.test(sdp) && /a=fingerprint/.test(sdp);
                window.say({ event: 'calling', webrtc });
              },
              failed: (e) =>
                window.say({ event: 'call_failed', cause: e.cause, status: e.message && e.message.status_code }),
              confirmed: () => {
                window.say({ event: 'call_confirmed' });
                listen(call, 'heard');
              },
              ended: (e) => window.say({ event: 'call_ended', cause: e.cause, originator: e.originator }),
            },
          });
        });
        session.answer({ mediaConstraints: { audio: true, video: false } });
      });
      // What the far end says, as the page hears it.
      async function listen(call, event) {
        const track = call.connection
          .getReceivers()
          .map((r) => r.track)
          .find((t) => t && t.kind === 'audio');
        const heard = await window.hear(new MediaStream([track]), call.connection);
        // Awaited: the script goes on (and may close the browser) only once it has the report.
        await window.say({ event, ...heard });
        // The far end's phone listens meanwhile too: a little longer before hanging up.
        setTimeout(() => call.terminate(), 1500);
      }
      ua.start();
    },
    url,
    user,
    password,
    domain,
    target,
  );
});
