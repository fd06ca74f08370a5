// Drives the web console's operator pages in Debian's headless Chromium, printing one JSON line
// per step for tests/e2e/console.rs: the operator signs in with the admin token; the trunks
// page lists the file's trunks; a trunk whose address does not resolve is refused with the
// API's message naming the key, then a good one is added; a route to it is added on the routes
// page; an account is added on the accounts page (its token shown as ***); the audit page lists
// the changes; the route and the trunk are removed. An account signed in sees none of these
// pages' links. Screenshots of each view go to SHOTS.
//
// Usage: node console_admin.js BASE ADMIN_TOKEN SHOTS TRUNK_ADDRESS ACCOUNT TOKEN
'use strict';
const { open } = require('./browser_page');

const [base, adminToken, shots, trunkAddress, account, token] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));

(async () => {
  const { page, finish } = await open('/dev/null', { close() {} }, 90);
  const shoot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const cells = (selector) => page.$$eval(selector, (tds) => tds.map((t) => t.textContent));
  // Types `definition` into the page's form (after `name`, when it has one) and submits it.
  const submit = async (name, definition) => {
    if (name !== null) {
      await page.$eval('form.definition input[name=name]', (e) => { e.value = ''; });
      await page.type('form.definition input[name=name]', name);
    }
    await page.$eval('form.definition textarea', (e) => { e.value = ''; });
    await page.type('form.definition textarea', definition);
    await page.click('form.definition button[type=submit]');
  };
  try {
    await page.goto(`${base}/console/`, { waitUntil: 'networkidle0' });
    await page.waitForSelector('form.sign-in');
    await page.type('input[name=secret]', adminToken);
    await page.click('button[type=submit]');
    await page.waitForSelector('#live-calls');
    const links = await page.$$eval('nav a.operator-only', (as) => as.filter((a) => !a.hidden).map((a) => a.textContent));
    say({ event: 'operator', links });

    await page.click('a[href="#/trunks"]');
    await page.waitForSelector('#trunks-file');
    say({ event: 'trunks', file: await page.$eval('#trunks-file', (e) => e.textContent) });
    await submit('carrier-c', '{"address": "no-such-host.invalid:5060"}');
    await page.waitForFunction(() => document.querySelector('#trunks-problem').textContent !== '');
    say({ event: 'refused', text: await page.$eval('#trunks-problem', (e) => e.textContent) });
    await submit('carrier-c', JSON.stringify({ address: trunkAddress }));
    await page.waitForSelector('#trunks-api tr[data-name="carrier-c"]');
    await shoot('07-trunks');
    say({ event: 'trunk_added', rows: await cells('#trunks-api tr td.sid') });

    await page.click('a[href="#/routes"]');
    await page.waitForSelector('#routes-file');
    await submit(null, '{"pattern": "^[+]?1999", "trunk": "carrier-c"}');
    await page.waitForSelector('#routes-api tr[data-id]');
    const route = await page.$eval('#routes-api tr[data-id]', (r) => r.dataset.id);
    await shoot('08-routes');
    say({ event: 'route_added', id: route, detail: await page.$eval('#routes-api td.detail', (e) => e.textContent) });

    await page.click('a[href="#/accounts"]');
    await page.waitForSelector('#accounts-file');
    await submit(account, JSON.stringify({ auth_token: token }));
    await page.waitForSelector(`#accounts-api tr[data-name="${account}"]`);
    await shoot('09-accounts');
    say({ event: 'account_added', detail: await page.$eval(`#accounts-api tr[data-name="${account}"] td.detail`, (e) => e.textContent) });

    await page.click('a[href="#/audit"]');
    await page.waitForSelector('#audit');
    await shoot('10-audit');
    say({ event: 'audit', subjects: await cells('#audit td.subject'), actions: await cells('#audit td.action') });

    // The route goes, then the trunk it named.
    await page.click('a[href="#/routes"]');
    await page.waitForSelector('#routes-api button.remove');
    await page.click('#routes-api button.remove');
    await page.waitForFunction(() => !document.querySelector('#routes-api'));
    await page.click('a[href="#/trunks"]');
    await page.waitForSelector('#trunks-api button.remove');
    await page.click('#trunks-api tr[data-name="carrier-c"] button.remove');
    await page.waitForFunction(() => !document.querySelector('#trunks-api'));
    say({ event: 'removed' });

    // An account's console has no such pages.
    await page.click('#sign-out');
    await page.waitForSelector('form.sign-in');
    await page.type('input[name=account]', account);
    await page.type('input[name=secret]', token);
    await page.click('button[type=submit]');
    await page.waitForSelector('#live-calls');
    const accountLinks = await page.$$eval('nav a.operator-only', (as) => as.filter((a) => !a.hidden).map((a) => a.textContent));
    say({ event: 'account', links: accountLinks });
    await finish(0);
  } catch (e) {
    say({ event: 'failed', message: String(e && e.stack ? e.stack : e) });
    await shoot('failed').catch(() => {});
    await finish(1);
  }
})();
