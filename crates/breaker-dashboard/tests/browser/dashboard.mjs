// The dashboard in a real browser (the system's Chromium, driven by playwright-core).
//
//   node dashboard.mjs <dashboard-url> <token> <breaker-binary> <store-url> <failing-url> <screenshot> <read-only-url>
//
// <read-only-url> is a second dashboard of the same store, started without a token.
// Started by the `breaker` command's tests, which start Redis, a failing backend and the
// dashboard first, and answer two requests on this script's stdout: `kill-redis` and
// `restart-redis` (each acknowledged with a line on stdin). Exits 0 when every check passed.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const [url, token, breakerBin, storeUrl, failingUrl, screenshot, readOnlyUrl] = process.argv.slice(2);
if (!readOnlyUrl) {
  console.error('usage: node dashboard.mjs <dashboard-url> <token> <breaker-binary> <store-url> <failing-url> <screenshot> <read-only-url>');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const HOSTILE = '<img src=x onerror=alert(1)>';
const LIVE = 'checkout-api';
// The same policy as the breaker was registered with (so no conflict is reported for it).
const POLICY = ['--minimum-failures', '3', '--failure-rate', '50', '--open-for', '10m'];

// No check may hang: the whole script has a deadline.
const overall = setTimeout(() => {
  console.error('FAIL: the browser test did not finish within 120 s');
  process.exit(1);
}, 120_000);

const lines = createInterface({ input: process.stdin });
const acks = [];
lines.on('line', (line) => acks.shift()?.(line));
function ask(request) {
  return new Promise((resolve) => {
    acks.push(resolve);
    console.log(request);
  });
}

function step(message) {
  console.error('browser test: ' + message);
}

/** Runs `breaker run` against the failing backend until it ends. */
function failingRun(seconds) {
  return new Promise((resolve, reject) => {
    const child = spawn(breakerBin, ['run', '--url', failingUrl, '--store', storeUrl, '--name', LIVE,
      '--rate', '20', '--duration', seconds + 's', ...POLICY], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error('breaker run exited with ' + code))));
  });
}

/** The card of breaker `name`, found by its text (names are never markup). */
function card(page, name) {
  return page.locator('article.breaker').filter({
    has: page.locator('h3.name').getByText(name, { exact: true }),
  });
}

async function waitForCard(page, name, field, value, what) {
  await page.waitForFunction(
    ([name, field, value]) => [...document.querySelectorAll('article.breaker')].some(
      (c) => c.querySelector('h3.name').textContent === name && c.dataset[field] === value),
    [name, field, value], { timeout: 20_000 },
  ).catch((err) => {
    throw new Error(what + ': ' + err.message);
  });
}

async function apiState(page, name) {
  return page.evaluate(async (name) => {
    const breakers = await (await fetch('/api/breakers')).json();
    const found = breakers.find((b) => b.name === name);
    return found && found.state;
  }, name);
}

const profile = mkdtempSync(join(tmpdir(), 'breaker-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const dialogs = [];
const problems = [];
let failed = false;
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  page.on('pageerror', (err) => problems.push('page error: ' + err.message));
  page.on('console', (message) => {
    // The outage below makes the page's requests fail on purpose; anything else is a fault
    // (a Content-Security-Policy violation would show here).
    if (message.type() === 'error' && !/status of 503|Failed to load resource/.test(message.text())) {
      problems.push('console error: ' + message.text());
    }
  });

  step('a dashboard without a token offers no actions');
  await page.goto(readOnlyUrl);
  await waitForCard(page, LIVE, 'state', 'closed', LIVE + ' shows on the read-only page');
  const offered = await page.locator('article.breaker button').evaluateAll(
    (buttons) => buttons.filter((b) => b.offsetParent !== null).length);
  if (offered !== 0) throw new Error(offered + ' action buttons on a read-only dashboard');
  if (await page.locator('#auth').isVisible()) throw new Error('a read-only dashboard asks for a token');

  step('a malformed fragment leaves the page working');
  await page.goto(url + '#token=%zz');
  await waitForCard(page, LIVE, 'state', 'closed', LIVE + ' shows after a malformed fragment');
  if (problems.length > 0) throw new Error(problems.join('\n'));

  step('load the page with the token in the fragment');
  await page.goto(url + '#token=' + encodeURIComponent(token));
  await waitForCard(page, LIVE, 'state', 'closed', LIVE + ' shows as closed');
  await page.evaluate(() => { window.loadedOnce = true; });
  if (page.url().includes(token)) throw new Error('the token stayed in the address bar: ' + page.url());
  if (await page.locator('#auth').isHidden()) throw new Error('a dashboard with a token offers no token field');

  step('the hostile name is text');
  await card(page, HOSTILE).waitFor({ timeout: 10_000 });
  const markup = await page.evaluate(() => ({
    images: document.querySelectorAll('img').length,
    handlers: document.querySelectorAll('[onerror]').length,
  }));
  if (markup.images !== 0 || markup.handlers !== 0) throw new Error('a name became markup: ' + JSON.stringify(markup));

  step('a breaker trips live while `breaker run` fails against a backend');
  const run = failingRun(3);
  await waitForCard(page, LIVE, 'state', 'open', LIVE + ' turns open without a reload');
  await run;
  if (!(await page.evaluate(() => window.loadedOnce === true))) throw new Error('the page reloaded');
  await card(page, LIVE).locator('.transitions').getByText(/tripped \(threshold/).waitFor({ timeout: 10_000 });
  const bars = await card(page, LIVE).locator('svg.chart rect.failures').count();
  if (bars === 0) throw new Error('the chart shows no failures');

  step('a wrong token is refused and changes nothing');
  await page.fill('#token', 'not-the-token');
  await card(page, LIVE).getByRole('button', { name: 'Reset', exact: true }).click();
  await card(page, LIVE).locator('.result').getByText(/^refused/).waitFor({ timeout: 10_000 });
  if ((await apiState(page, LIVE)) !== 'open') throw new Error('a refused reset changed the breaker');

  step('reset with the token');
  await page.fill('#token', token);
  await card(page, LIVE).getByRole('button', { name: 'Reset', exact: true }).click();
  await waitForCard(page, LIVE, 'state', 'closed', LIVE + ' closes after Reset');

  step('force open for 10 minutes');
  await card(page, 'payments').locator('.actions input').fill('10m');
  await card(page, 'payments').getByRole('button', { name: 'Force open', exact: true }).click();
  await waitForCard(page, 'payments', 'override', 'forced-open', 'payments shows its override');

  step('trip again for the screenshot');
  await failingRun(2);
  await waitForCard(page, LIVE, 'state', 'open', LIVE + ' open again');
  // One more refresh, so that the chart has every bucket of the run.
  const updated = await page.locator('#updated').textContent();
  await page.waitForFunction((before) => document.getElementById('updated').textContent !== before,
    updated, { timeout: 10_000 });
  step('the page says what the fleet costs Redis');
  await page.waitForFunction(() => /^Redis: [0-9.]+ % of a core · [0-9]+ script calls\/s · [0-9]+ commands\/s$/
    .test(document.getElementById('cost').textContent), null, { timeout: 10_000 });
  await page.screenshot({ path: screenshot, fullPage: true });
  step('screenshot saved to ' + screenshot);

  step('an outage shows, and the page recovers by itself');
  await ask('kill-redis');
  await page.locator('#outage').waitFor({ state: 'visible', timeout: 20_000 });
  await ask('restart-redis');
  await page.locator('#outage').waitFor({ state: 'hidden', timeout: 20_000 });
  if (!(await page.evaluate(() => window.loadedOnce === true))) throw new Error('the page reloaded');

  if (dialogs.length > 0) throw new Error('dialogs opened: ' + JSON.stringify(dialogs));
  if (problems.length > 0) throw new Error(problems.join('\n'));
  step('every check passed');
} catch (err) {
  failed = true;
  console.error('FAIL: ' + (err && err.stack ? err.stack : err));
  if (problems.length > 0) console.error(problems.join('\n'));
  const page = context.pages()[0];
  if (page) await page.screenshot({ path: screenshot.replace(/\.png$/, '') + '-failed.png', fullPage: true }).catch(() => {});
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(overall);
  lines.close();
}
process.exit(failed ? 1 : 0);
