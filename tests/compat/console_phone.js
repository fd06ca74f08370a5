// The console's softphone in Debian's headless Chromium, as an operator uses it: a credential
// connection is made through the Telnyx REST API (its SIP login), the account signs in to the
// console, opens Phone and signs the softphone in with that login; the page calls TARGET (a
// number routed to a trunk), listens (Web Audio: the loudest frequency every 150 ms) and hangs
// up; then the account's Call Control application (APP) dials the login: the page rings and
// answers, the application plays TONE (served here) into the call, the page listens and hangs
// up. The microphone is Chromium's fake device playing WAV. One JSON line per step for
// tests/e2e/console.rs; a screenshot of each phone view goes to SHOTS.
//
// With MODE `call:SECONDS[,answer:SECONDS]` the page only calls TARGET, stays on the call
// SECONDS and hangs up (then, with `answer`, answers the next call to it and hangs up after
// its SECONDS); its microphone is then the WAV from its start at each call, without the browser's
// own processing.
//
// Usage: node console_phone.js BASE ACCOUNT TOKEN KEY USER PASSWORD WAV TARGET APP TONE SHOTS [MODE]
'use strict';
const browserPage = require('./browser_page');
const fs = require('fs');
const http = require('http');

const [base, account, token, key, user, password, wav, target, app, tone, shots, mode] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
const telnyx = (path, body) =>
  fetch(`${base}/v2${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
// The application's tone, served to Switchboard's player.
const files = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'audio/wav' });
  res.end(fs.readFileSync(tone));
});

(async () => {
  const made = await telnyx('/credential_connections', { connection_name: 'console phone', user_name: user, password });
  say({ event: 'connection', status: made.status });
  await new Promise((r) => files.listen(0, '127.0.0.1', r));

  const { page, finish } = await browserPage.open(wav, files, 60);
  const shoot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const state = () => page.$eval('#phone-call-state', (e) => ({ ...e.dataset, text: e.textContent }));
  const listen = () => page.evaluate(() => window.hear(document.getElementById('phone-audio').srcObject, null));
  if (mode) {
    // The microphone is the WAV from its start at every call (a real MediaStreamTrack the
    // browser encodes like a microphone's), without the browser's noise suppression, gain
    // control or echo cancellation: what the test measures is then the server's doing, and
    // the answered call hears the greeting whole — Chromium's fake device keeps playing its
    // file from wherever it was, and a greeting cut short is a human's to the detector.
    // It starts once the call's peer connection is connected (ICE and DTLS done), not when
    // the microphone is asked for: on a loaded machine the handshakes took over a second, and
    // the greeting's first words went nowhere.
    const microphone = fs.readFileSync(wav).toString('base64');
    await page.evaluateOnNewDocument((base64) => {
      const Real = window.RTCPeerConnection;
      window.RTCPeerConnection = class extends Real {
        constructor(...args) {
          super(...args);
          this.addEventListener('connectionstatechange', () => {
            if (this.connectionState !== 'connected') return;
            window.dispatchEvent(new Event('media-connected'));
            // For a failure's report: over the first seconds, the microphone's clock and the
            // packets sent, beside the wall clock — a pause in either shows where audio stopped.
            const t0 = performance.now();
            const sample = async () => {
              const mic = (window.microphones || []).at(-1);
              let sent = 0;
              (await this.getStats()).forEach((r) => {
                if (r.type === 'outbound-rtp' && r.kind === 'audio') sent = r.packetsSent;
              });
              const audio = mic ? Math.round(mic.context.currentTime * 1000) : -1;
              console.log(`microphone: wall ${Math.round(performance.now() - t0)} ms audio ${audio} ms sent ${sent}`);
              if (performance.now() - t0 < 3000) setTimeout(sample, 200);
            };
            sample();
          });
        }
      };
      const devices = navigator.mediaDevices;
      const asked = devices.getUserMedia.bind(devices);
      devices.getUserMedia = async (c) => {
        if (!c || !c.audio) return asked(c);
        const context = new AudioContext();
        await context.resume();
        // The greeting starts on a clock that already runs: an output just opened may render
        // a first burst and then stall while it settles (on a loaded machine, for over a
        // second, which the detector rightly hears as a hello and then silence).
        const running = performance.now();
        while (context.currentTime < 0.3 && performance.now() - running < 10000) {
          await new Promise((r) => setTimeout(r, 20));
        }
        const data = Uint8Array.from(atob(base64), (ch) => ch.charCodeAt(0)).buffer;
        const source = context.createBufferSource();
        source.buffer = await context.decodeAudioData(data);
        source.loop = true;
        const out = context.createMediaStreamDestination();
        source.connect(out);
        window.addEventListener('media-connected', () => source.start(), { once: true });
        // Held for the page's life: a graph nothing refers to may be collected, and fall silent.
        (window.microphones = window.microphones || []).push({ context, source, out });
        return out.stream;
      };
    }, microphone);
  }
  try {
    await page.goto(`${base}/console/`, { waitUntil: 'networkidle0' });
    await browserPage.install(page);
    await page.type('input[name=account]', account);
    await page.type('input[name=secret]', token);
    await page.click('button[type=submit]');
    await page.waitForSelector('#live-calls');
    await page.click('a[href="#/phone"]');
    await page.waitForSelector('form.phone-sign-in');
    await page.type('input[name=user]', user);
    await page.type('input[name=password]', password);
    await page.click('form.phone-sign-in button[type=submit]');
    await page.waitForSelector('#phone-user');
    await shoot('phone-01-ready');
    say({ event: 'ready', user: await page.$eval('#phone-user', (e) => e.textContent) });
    if (mode && mode.startsWith('call:')) {
      const steps = Object.fromEntries(mode.split(',').map((s) => s.split(':')));
      await page.type('input[name=number]', target);
      await page.click('#phone-call');
      await page.waitForSelector('#phone-call-state[data-state=active]', { timeout: 20000 });
      say({ event: 'calling', ...(await state()) });
      await new Promise((r) => setTimeout(r, Number(steps.call) * 1000));
      await page.click('#phone-hang-up');
      await page.waitForSelector('form.dialer');
      say({ event: 'call_ended' });
      if (steps.answer) {
        await page.waitForSelector('#phone-call-state[data-direction=inbound][data-state=ringing]', { timeout: 20000 });
        await page.click('#phone-answer');
        await page.waitForSelector('#phone-call-state[data-state=active]');
        say({ event: 'answered', ...(await state()) });
        await new Promise((r) => setTimeout(r, Number(steps.answer) * 1000));
        await page.click('#phone-hang-up');
        await page.waitForSelector('form.dialer');
        say({ event: 'answered_ended' });
      }
      return finish(0);
    }

    // The page calls a number routed to a trunk.
    await page.type('input[name=number]', target);
    await page.click('#phone-call');
    await page.waitForSelector('#phone-call-state[data-direction=outbound][data-state=active]', { timeout: 20000 });
    await shoot('phone-02-calling');
    say({ event: 'calling', ...(await state()) });
    say({ event: 'heard', ...(await listen()) });
    await page.click('#phone-hang-up');
    await page.waitForSelector('form.dialer');
    say({ event: 'call_ended' });

    // The application dials the login: the page rings, answers and hears the application.
    const dial = await (await telnyx('/calls', { connection_id: app, to: user, from: '+15550001' })).json();
    const id = dial.data.call_control_id;
    await page.waitForSelector('#phone-call-state[data-direction=inbound][data-state=ringing]', { timeout: 20000 });
    await shoot('phone-03-ringing');
    say({ event: 'incoming', ...(await state()) });
    await page.click('#phone-answer');
    await page.waitForSelector('#phone-call-state[data-state=active]');
    for (let i = 0; ; i++) {
      const played = await telnyx(`/calls/${id}/actions/playback_start`, { audio_url: `http://127.0.0.1:${files.address().port}/tone.wav` });
      if (played.ok) break;
      if (i === 50) throw new Error(`playback_start: ${played.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 500));
    await shoot('phone-04-answered');
    say({ event: 'heard_incoming', ...(await listen()) });
    await page.click('#phone-hang-up');
    await page.waitForSelector('form.dialer');
    say({ event: 'incoming_ended' });
    await finish(0);
  } catch (e) {
    say({ event: 'failed', message: String((e && e.stack) || e) });
    await finish(1);
  }
})();
