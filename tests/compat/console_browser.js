// Drives the web console in Debian's headless Chromium as an operator would, printing one
// JSON line per step for tests/e2e/console.rs: the server's address leads to the console,
// wrong credentials are refused, the account signs in, a call placed meanwhile appears live
// and ends, its page shows its events and SIP ladder and plays its recording (whose samples are handed back
// to the test to check the audio), and the numbers page lists the account's numbers.
// Screenshots of each view go to SHOTS.
//
// Then the operator signs in with the admin token and follows a call routed between two
// trunks, which no account owns, down to its SIP ladder across both legs.
//
// Usage: node console_browser.js BASE ACCOUNT TOKEN SHOTS ADMIN_TOKEN
'use strict';
const { open } = require('./browser_page');

const [base, account, token, shots, adminToken] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));

(async () => {
  const { page, finish } = await open('/dev/null', { close() {} }, 90);
  const shoot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const text = (selector) => page.$eval(selector, (e) => e.textContent);
  try {
    // A person opening the server's address finds the console.
    await page.goto(`${base}/`, { waitUntil: 'networkidle0' });
    say({ event: 'opened', url: page.url() });
    await page.waitForSelector('form.sign-in');
    await shoot('01-sign-in');

    await page.type('input[name=account]', account);
    await page.type('input[name=secret]', 'not-the-token');
    await page.click('button[type=submit]');
    await page.waitForSelector('#sign-in-error');
    say({ event: 'refused', text: await text('#sign-in-error') });

    await page.$eval('input[name=account]', (e) => { e.value = ''; });
    await page.type('input[name=account]', account);
    await page.type('input[name=secret]', token);
    await page.click('button[type=submit]');
    await page.waitForSelector('#live-calls');
    await page.waitForSelector('#socket.open');
    await shoot('02-calls');
    say({ event: 'signed_in', who: await text('#who') });

    // The test places a call now: it shows up live, answered, its length ticking.
    const row = await page.waitForSelector('#live-calls tr[data-call] .status.in-progress', { timeout: 20000 });
    const call = await row.evaluate((e) => e.closest('tr').dataset.call);
    await page.waitForFunction(
      (sid) => {
        const cell = document.querySelector(`#live-calls tr[data-call="${sid}"] .duration`);
        return cell && /^0:0[2-9]$/.test(cell.textContent);
      },
      { timeout: 10000 },
      call,
    );
    await shoot('03-live-call');
    say({ event: 'live', call, length: await text(`tr[data-call="${call}"] .duration`) });

    await page.waitForSelector(`#recent-calls tr[data-call="${call}"] .status.completed`, { timeout: 20000 });
    say({ event: 'ended', call, length: await text(`tr[data-call="${call}"] .duration`) });

    // Its page: the events, then the recording once saved, played.
    await page.click(`tr[data-call="${call}"] a`);
    await page.waitForSelector('#timeline li[data-event="hangup"]');
    const play = await page.waitForSelector('[data-recording] button.play', { timeout: 20000 });
    const events = await page.$$eval('#timeline li', (items) => items.map((i) => i.dataset.event));
    const details = await page.$$eval('#timeline .detail', (ds) => ds.map((d) => d.textContent));
    const facts = await page.$$eval('#call-facts dd', (dds) => Object.fromEntries(dds.map((d) => [d.dataset.fact, d.textContent])));
    // The play button shows only once the recording is saved (its media can be fetched).
    const recordingStatus = await page.$eval('[data-recording]', (e) => e.dataset.status);
    say({ event: 'call_page', events, details, facts, recordingStatus });
    await play.click();
    const recording = await page.$eval('[data-recording]', (e) => e.dataset.recording);
    await page.waitForFunction((id) => {
      const audio = document.getElementById(`audio-${id}`);
      return audio && audio.currentTime > 0.3;
    }, { timeout: 10000 }, recording);
    // Its SIP ladder: an arrow per message; a click shows the message.
    await page.waitForFunction(() => document.querySelectorAll('#ladder g.message').length >= 5, { timeout: 10000 });
    const ladder = await page.$$eval('#ladder g.message', (gs) => gs.map((g) => ({ label: g.dataset.label, direction: g.dataset.direction })));
    await page.click('#ladder g.message');
    const first = await text('#sip-message');
    await page.waitForSelector('#pcap');
    say({ event: 'ladder', ladder, first });
    await shoot('04-call');
    // What was played, decoded by the browser at 8 kHz, for the test to hear.
    const decoded = await page.evaluate(async (id) => {
      const audio = document.getElementById(`audio-${id}`);
      const bytes = await (await fetch(audio.src)).arrayBuffer();
      const context = new AudioContext({ sampleRate: 8000 });
      const buffer = await context.decodeAudioData(bytes);
      const samples = Array.from(buffer.getChannelData(0), (s) => Math.round(s * 32767));
      return { duration: audio.duration, rate: buffer.sampleRate, samples };
    }, recording);
    say({ event: 'played', recording, ...decoded });

    await page.click('a[href="#/numbers"]');
    await page.waitForSelector('#incoming_phone_numbers');
    const numbers = await page.$$eval('#incoming_phone_numbers tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
    await shoot('05-numbers');
    say({ event: 'numbers', numbers });

    // The operator: every call, a routed one included.
    await page.click('#sign-out');
    await page.waitForSelector('form.sign-in');
    await page.type('input[name=secret]', adminToken);
    await page.click('button[type=submit]');
    await page.waitForSelector('#live-calls');
    await page.waitForSelector('#socket.open');
    const numbersShown = await page.$eval('a[href="#/numbers"]', (a) => !a.hidden);
    say({ event: 'operator', who: await text('#who'), numbersShown, calls: await page.$$eval('tr[data-call]', (rows) => rows.length) });
    const routed = await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#recent-calls tr[data-call]')];
      const row = rows.find((r) => r.textContent.includes('carrier-a → carrier-b') && r.querySelector('.status.completed'));
      return row && row.dataset.call;
    }, { timeout: 30000 });
    const routedCall = await routed.jsonValue();
    await page.click(`tr[data-call="${routedCall}"] a`);
    await page.waitForFunction(() => document.querySelectorAll('#ladder g.message').length >= 8, { timeout: 10000 });
    const routedLadder = await page.$$eval('#ladder g.message', (gs) => gs.map((g) => `${g.dataset.direction} ${g.dataset.label}`));
    const parties = await page.$$eval('#ladder text.party', (ts) => ts.map((t) => t.textContent));
    const trunks = await text('dd[data-fact="trunks"]');
    await shoot('06-operator-routed-call');
    say({ event: 'routed', call: routedCall, ladder: routedLadder, parties, trunks });
    await finish(0);
  } catch (e) {
    say({ event: 'failed', message: String(e && e.stack ? e.stack : e) });
    await shoot('failed').catch(() => {});
    await finish(1);
  }
})();
