// What the browser tests share: `open(wav, pagesServer, seconds)` starts Debian's headless
// Chromium (puppeteer-core) with a fake microphone playing `wav`, and gives a page whose
// errors and console lines are reported, and `finish(code)`, which closes it all (also after
// `seconds`, reporting a timeout); `install(page)` gives the page `window.hear(stream, pc)`,
// which listens to a call's remote stream with Web Audio (the loudest frequency every 150 ms,
// 20 times) and reads its peer connection's transport and RTP figures (for a failure's
// message). The tests compare the peaks with the tones the far end sends.
'use strict';
const puppeteer = require('puppeteer-core');

const say = (o) => console.log(JSON.stringify(o));

exports.open = async (wav, pages, seconds) => {
  const browser = await puppeteer.launch({
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
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 150));
        analyser.getFloatFrequencyData(bins);
        let best = 1;
        for (let k = 1; k < bins.length; k++) if (bins[k] > bins[best]) best = k;
        peaks.push({ hz: (best * context.sampleRate) / analyser.fftSize, db: bins[best] });
      }
      const stats = [];
      (pc ? await pc.getStats() : new Map()).forEach((r) => {
        if (r.type === 'transport') stats.push({ type: r.type, dtlsState: r.dtlsState, iceState: r.iceState });
        if (r.type === 'candidate-pair' && r.nominated)
          stats.push({ type: r.type, state: r.state, sent: r.bytesSent, received: r.bytesReceived });
        if (r.type === 'inbound-rtp' || r.type === 'outbound-rtp')
          stats.push({ type: r.type, packets: r.packetsReceived ?? r.packetsSent });
      });
      return { peaks, stats };
    };
  });
