// What the browser tests share: `open(wav, pagesServer, seconds)` starts a headless browser
// with a fake microphone playing `wav`, and gives a page whose errors and console lines are
// reported, and `finish(code)`, which closes it all (also after `seconds`, reporting a
// timeout); `install(page)` gives the page `window.hear(stream, pc)`, which listens to a
// call's remote stream with Web Audio (the loudest frequency every 150 ms, 20 times, and the
// audio packets received by then) and reads its peer connection's transport and RTP figures
// (for a failure's message). The tests
// compare the peaks with the tones the far end sends.
//
// The browser is Debian's Chromium, or Firefox ESR when BROWSER=firefox (puppeteer-core over
// WebDriver BiDi). Firefox needs what the test gives it: a sound server (PULSE_SERVER; without
// an audio device its Web Audio never starts) and a network interface that is not loopback
// (it gathers no loopback ICE candidate), with the page itself on a loopback address (a
// secure context, as WebRTC needs).
'use strict';
const puppeteer = require('puppeteer-core');
const fs = require('fs');

const say = (o) => console.log(JSON.stringify(o));
const firefox = process.env.BROWSER === 'firefox';

// The frequency of the tone in a 16-bit PCM WAV file: rising zero crossings over the time
// from the first to the last (a whole-second count is off by one, which a one-second
// Goertzel window at the far end does not forgive).
function toneOf(wav) {
  const bytes = fs.readFileSync(wav);
  const rate = bytes.readUInt32LE(24);
  const data = bytes.indexOf('data') + 8;
  const samples = (bytes.length - data) >> 1;
  const at = (i) => bytes.readInt16LE(data + 2 * i);
  let first = null;
  let last = null;
  let rising = 0;
  for (let i = 1; i < samples; i++) {
    const [a, b] = [at(i - 1), at(i)];
    if (a < 0 && b >= 0) {
      const t = i - 1 + -a / (b - a);
      if (first === null) first = t;
      last = t;
      rising++;
    }
  }
  return ((rising - 1) * rate) / (last - first);
}

function launch(wav) {
  if (firefox)
    return puppeteer.launch({
      browser: 'firefox',
      executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
      headless: true,
      // The tests' CA is not in Firefox's store (wss: and https: to the server).
      acceptInsecureCerts: true,
      extraPrefsFirefox: {
        'media.navigator.permission.disabled': true,
        'media.navigator.streams.fake': true,
        // Web Audio listens to the call without a user's gesture.
        'media.autoplay.default': 0,
        'media.autoplay.block-webaudio': false,
      },
    });
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      // The tests' CA is not in Chromium's store (wss: and https: to the server).
      '--ignore-certificate-errors',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      // Web Audio listens to the call without a user's gesture.
      '--autoplay-policy=no-user-gesture-required',
      // The test's network has only a loopback interface: without this Chromium gathers no
      // ICE candidate.
      '--allow-loopback-in-peer-connection',
    ],
  });
}

exports.open = async (wav, pages, seconds) => {
  const browser = await launch(wav);
  const finish = async (code) => {
    await browser.close().catch(() => {});
    pages.close();
    process.exit(code);
  };
  setTimeout(() => {
    say({ event: 'timeout' });
    finish(2);
  }, seconds * 1000);
  const page = await browser.newPage();
  page.on('pageerror', (e) => say({ event: 'pageerror', message: String(e) }));
  page.on('console', (m) => console.error(`page: ${m.text()}`));
  if (firefox) {
    // Firefox's fake microphone is a fixed 1 kHz tone and takes no file: the page's
    // microphone is the WAV's tone from an oscillator instead, a real MediaStreamTrack that
    // the browser encodes and sends like a microphone's.
    await page.evaluateOnNewDocument((hz) => {
      const devices = navigator.mediaDevices;
      const real = devices.getUserMedia.bind(devices);
      devices.getUserMedia = async (constraints) => {
        if (!constraints || !constraints.audio) return real(constraints);
        const context = new AudioContext();
        await context.resume();
        const tone = context.createOscillator();
        tone.frequency.value = hz;
        const level = context.createGain();
        level.gain.value = 0.5;
        const out = context.createMediaStreamDestination();
        tone.connect(level).connect(out);
        tone.start();
        // Held for the page's life: a graph nothing refers to may be collected, and fall silent.
        (window.microphones = window.microphones || []).push({ context, tone, out });
        // For a failure's report: a quarter second in which the microphone's clock moved less
        // than half as far as the wall clock (an audio graph starved or never started) is a
        // console line; a microphone that keeps time says nothing.
        let [wall, audio] = [performance.now(), context.currentTime * 1000];
        setInterval(() => {
          const [w, a] = [performance.now(), context.currentTime * 1000];
          if (a - audio < (w - wall) / 2)
            console.log(`microphone behind: wall +${Math.round(w - wall)} ms, audio +${Math.round(a - audio)} ms, ${context.state}`);
          [wall, audio] = [w, a];
        }, 250);
        return out.stream;
      };
    }, toneOf(wav));
  }
  return { browser, page, finish };
};

exports.install = (page) =>
  page.evaluate(() => {
    window.hear = async (stream, pc) => {
      // Chromium feeds a remote WebRTC track to Web Audio only while an element plays it.
      const element = new Audio();
      element.srcObject = stream;
      element.muted = true;
      await element.play().catch(() => {});
      const context = new AudioContext();
      await context.resume();
      const analyser = context.createAnalyser();
      analyser.fftSize = 4096;
      context.createMediaStreamSource(stream).connect(analyser);
      const bins = new Float32Array(analyser.frequencyBinCount);
      const peaks = [];
      // The audio RTP packets received so far, at each look: whether the far end sends.
      const received = async () => {
        let n = null;
        (pc ? await pc.getStats() : new Map()).forEach((r) => {
          if (r.type === 'inbound-rtp' && (r.kind ?? r.mediaType) === 'audio') n = r.packetsReceived;
        });
        return n;
      };
      const packets = [];
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 150));
        analyser.getFloatFrequencyData(bins);
        let best = 1;
        for (let k = 1; k < bins.length; k++) if (bins[k] > bins[best]) best = k;
        peaks.push({ hz: (best * context.sampleRate) / analyser.fftSize, db: bins[best] });
        packets.push(await received());
      }
      const stats = [];
      (pc ? await pc.getStats() : new Map()).forEach((r) => {
        if (r.type === 'transport') stats.push({ type: r.type, dtlsState: r.dtlsState, iceState: r.iceState });
        if (r.type === 'candidate-pair' && r.nominated)
          stats.push({ type: r.type, state: r.state, sent: r.bytesSent, received: r.bytesReceived });
        if (r.type === 'inbound-rtp' || r.type === 'outbound-rtp')
          stats.push({ type: r.type, packets: r.packetsReceived ?? r.packetsSent });
      });
      return { peaks, packets, stats };
    };
  });
