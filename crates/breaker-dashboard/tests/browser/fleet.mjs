// The dashboard of a fleet in a real browser (the system's Chromium, driven by playwright-core).
//
//   node fleet.mjs <dashboard-url> <token> <breaker-binary> <store-url> <failing-url> <screenshot> <fleet-json>
//
// Started by the `breaker` command's tests, which fill Redis with 1,000 breakers first and
// say in <fleet-json> which are open, half-open, forced, in conflict and unreadable, and
// which one to trip live. Checks the summary, search, filter, order, the table drawing only
// what is in view, the detail view and its own URL, a live trip, and a refused foreign Host;
// saves a screenshot of the table view. Exits 0 when every check passed.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, token, breakerBin, storeUrl, failingUrl, screenshot, fleetJson] = process.argv.slice(2);
if (!fleetJson) {
  console.error('usage: node fleet.mjs <dashboard-url> <token> <breaker-binary> <store-url> <failing-url> <screenshot> <fleet-json>');
  process.exit(2);
}
const fleet = JSON.parse(fleetJson);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
// A name of the attacker's that resolves to the dashboard (DNS rebinding).
const FOREIGN = 'rebinding.example';
const port = new URL(url).port;

// No check may hang: the whole script has a deadline.
const overall = setTimeout(() => {
  console.error('FAIL: the fleet browser test did not finish within 150 s');
  process.exit(1);
}, 150_000);

function step(message) {
  console.error('fleet browser test: ' + message);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function same(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(a === e, what + ': expected ' + e + ', got ' + a);
}

/** Runs `breaker run` against the failing backend until it ends. */
function failingRun(name, seconds) {
  return new Promise((resolve, reject) => {
    const child = spawn(breakerBin, ['run', '--url', failingUrl, '--store', storeUrl, '--name', name,
      '--rate', '20', '--duration', seconds + 's', '--minimum-failures', '3', '--failure-rate', '50',
      '--open-for', '10m'], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error('breaker run exited with ' + code))));
  });
}

/** The rows drawn, in the order shown: name, state and override of each. */
async function rows(page) {
  return page.evaluate(() => [...document.querySelectorAll('#rows .row')]
    .filter((row) => !row.hidden)
    .sort((a, b) => Number(a.dataset.index) - Number(b.dataset.index))
    .map((row) => ({ name: row.dataset.name, state: row.dataset.state, index: Number(row.dataset.index) })));
}

async function names(page) {
  return (await rows(page)).map((row) => row.name);
}

/** Waits until the page's check `fn(arg)` holds, saying `what` if it never does. */
async function until(page, fn, arg, what) {
  await page.waitForFunction(fn, arg, { timeout: 20_000 }).catch((err) => {
    throw new Error(what + ': ' + err.message);
  });
}

async function search(page, text) {
  await page.fill('#search', text);
}

const profile = mkdtempSync(join(tmpdir(), 'breaker-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--host-resolver-rules=MAP ' + FOREIGN + ' 127.0.0.1'],
});
const problems = [];
let failed = false;
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.on('pageerror', (err) => problems.push('page error: ' + err.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource: the server responded with a status of 403/.test(message.text())) {
      problems.push('console error: ' + message.text());
    }
  });

  step('the summary counts the fleet');
  await page.goto(url + '#token=' + encodeURIComponent(token));
  await until(page, (total) => document.getElementById('count-all').textContent === String(total),
    fleet.total, 'the summary counts every breaker');
  await page.evaluate(() => { window.loadedOnce = true; });
  // Half-open breakers were open for a second: they read half-open once it has passed.
  await until(page, (n) => document.getElementById('count-half-open').textContent === String(n),
    fleet.half_open.length, 'half-open breakers are counted');
  const counts = await page.evaluate(() => Object.fromEntries(
    ['all', 'open', 'half-open', 'closed', 'forced', 'conflict', 'unreadable']
      .map((key) => [key, Number(document.getElementById('count-' + key).textContent)])));
  same(counts, {
    all: fleet.total,
    open: fleet.open.length,
    'half-open': fleet.half_open.length,
    closed: fleet.total - fleet.open.length - fleet.half_open.length - fleet.unreadable.length,
    forced: fleet.forced.length,
    conflict: fleet.conflict.length,
    unreadable: fleet.unreadable.length,
  }, 'the summary');
  check((await page.locator('#health').textContent()) === 'store: answering', 'the store shows as answering');

  step('many breakers: the table, drawing only the rows in view, open and half-open first');
  check(await page.locator('#table-view').isVisible(), 'the table is shown for 1,000 breakers');
  check(await page.locator('#breakers').isHidden(), 'cards are shown for 1,000 breakers');
  const drawn = await rows(page);
  check(drawn.length > 10 && drawn.length < 80, drawn.length + ' rows drawn for 1,000 breakers');
  same(drawn.slice(0, fleet.open.length + fleet.half_open.length + 3).map((row) => row.name),
    [...fleet.open, ...fleet.half_open, 'accounts-1.internal', 'accounts-2.internal', 'accounts-3.internal'],
    'the first rows');
  same(drawn.slice(0, fleet.open.length).map((row) => row.state), fleet.open.map(() => 'open'), 'the open rows');
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await until(page, (total) => [...document.querySelectorAll('#rows .row')]
    .some((row) => !row.hidden && row.dataset.index === String(total - 1)), fleet.total,
  'scrolled to the end, the last row is drawn');
  check((await rows(page)).length < 80, 'scrolling draws only the rows in view');
  await page.evaluate(() => window.scrollTo(0, 0));

  step('search by name, in natural order');
  await search(page, 'accounts-');
  await until(page, () => document.getElementById('shown').textContent.startsWith('125 of'), null,
    'the search narrows the list');
  const accounts = await names(page);
  same(accounts.slice(0, 12), ['accounts-12.internal', 'accounts-1.internal', 'accounts-2.internal',
    'accounts-3.internal', 'accounts-4.internal', 'accounts-5.internal', 'accounts-6.internal',
    'accounts-7.internal', 'accounts-8.internal', 'accounts-9.internal', 'accounts-10.internal',
    'accounts-11.internal'], 'accounts in natural order, the half-open one first');
  await search(page, 'SEARCH-4');
  await until(page, () => document.getElementById('shown').textContent.startsWith('11 of'), null,
    'a search ignores case');
  same(await names(page), ['search-42.internal', 'search-4.internal',
    ...[40, 41, 43, 44, 45, 46, 47, 48, 49].map((n) => 'search-' + n + '.internal')], 'search-4');
  await search(page, '');

  step('the state filter, and the summary as a filter');
  await page.selectOption('#filter', 'open');
  await until(page, (n) => document.getElementById('shown').textContent.startsWith(n + ' of'),
    fleet.open.length, 'the open filter');
  same(await names(page), fleet.open, 'open breakers');
  await page.locator('.summary [data-filter="unreadable"]').click();
  await until(page, () => document.getElementById('shown').textContent.startsWith('1 of'), null,
    'the unreadable filter');
  same(await names(page), fleet.unreadable, 'unreadable breakers');
  const error = await page.locator('#rows .row:not([hidden]) .error').textContent();
  check(/^cannot be read: ./.test(error), 'the unreadable row says why: ' + error);
  await page.locator('.summary [data-filter="forced"]').click();
  await until(page, (n) => document.getElementById('shown').textContent.startsWith(n + ' of'),
    fleet.forced.length, 'the forced filter');
  same([...(await names(page))].sort(), [...fleet.forced].sort(), 'forced breakers');
  await page.selectOption('#filter', 'all');

  step('cards on demand, at most a screenful');
  await page.locator('.views [data-view="cards"]').click();
  await until(page, () => document.querySelectorAll('article.breaker').length === 60, null, 'cards are drawn');
  check(await page.locator('#more').isVisible(), 'the page says that more cards are not drawn');
  await page.locator('.views [data-view="auto"]').click();
  await until(page, () => document.querySelectorAll('article.breaker').length === 0
    && !document.getElementById('table-view').hidden, null, 'back to the table');

  step('one breaker: its own view and URL');
  const target = fleet.open[1];
  await page.locator('#rows .row:not([hidden]) .name a').getByText(target, { exact: true }).click();
  await until(page, (name) => document.getElementById('detail-name').textContent === name, target,
    'the detail view opens');
  check(page.url().endsWith('#/breaker/' + encodeURIComponent(target)), 'the detail view has its URL: ' + page.url());
  await until(page, () => document.querySelectorAll('#detail-history tr').length > 0, null,
    'the detail view shows the history');
  const detail = await page.evaluate(() => ({
    state: document.getElementById('detail-state').textContent,
    history: document.getElementById('detail-history').textContent,
    policy: document.getElementById('detail-policies').textContent,
    actions: !document.getElementById('detail-actions').hidden,
    list: !document.getElementById('list-view').hidden,
  }));
  same([detail.state, detail.actions, detail.list], ['open', true, false], 'the detail view');
  check(detail.history.includes('tripped'), 'the history shows the trip: ' + detail.history);
  check(detail.policy.includes('open for') && detail.policy.includes('10m'), 'the policy is shown: ' + detail.policy);
  await page.screenshot({ path: screenshot.replace(/\.png$/, '') + '-detail.png' });
  step('the detail URL opens on its own, and shows a conflict');
  await page.goto(url + '#/breaker/' + encodeURIComponent(fleet.conflict[0]));
  await until(page, (name) => document.getElementById('detail-name').textContent === name
    && !document.getElementById('detail-conflict').hidden, fleet.conflict[0], 'the conflict detail view');
  check((await page.locator('#detail-policies .policy').count()) === 2, 'both policies are shown');
  await page.goBack();
  await page.goto(url + '#/');
  await until(page, (total) => document.getElementById('count-all').textContent === String(total),
    fleet.total, 'the list again');
  await page.evaluate(() => { window.loadedOnce = true; });

  step('a breaker trips live');
  await search(page, fleet.live);
  await until(page, (name) => [...document.querySelectorAll('#rows .row')]
    .some((row) => !row.hidden && row.dataset.name === name && row.dataset.state === 'closed'), fleet.live,
  fleet.live + ' shows as closed');
  const run = failingRun(fleet.live, 3);
  await until(page, (name) => [...document.querySelectorAll('#rows .row')]
    .some((row) => !row.hidden && row.dataset.name === name && row.dataset.state === 'open'), fleet.live,
  fleet.live + ' turns open without a reload');
  await run;
  await until(page, (n) => document.getElementById('count-open').textContent === String(n),
    fleet.open.length + 1, 'the summary counts the trip');
  check(await page.evaluate(() => window.loadedOnce === true), 'the page reloaded');
  await search(page, '');

  step('the table view, for the README');
  await page.evaluate(() => window.scrollTo(0, 0));
  const updated = await page.locator('#updated').textContent();
  await page.waitForFunction((before) => document.getElementById('updated').textContent !== before,
    updated, { timeout: 10_000 });
  // The pointer away from the rows: no row is drawn as hovered.
  await page.mouse.move(0, 0);
  await page.screenshot({ path: screenshot });
  step('screenshot saved to ' + screenshot);

  step('a foreign Host is refused');
  const foreign = `http://${FOREIGN}:${port}/`;
  const response = await page.goto(foreign);
  check(response.status() === 403, 'a foreign Host got ' + response.status());
  check((await page.content()).includes('does not answer to that host name'), 'the refusal says why');
  const api = await page.evaluate(async () => (await fetch('/api/breakers')).status);
  check(api === 403, 'the API answered a foreign Host with ' + api);

  if (problems.length > 0) throw new Error(problems.join('\n'));
  step('every check passed');
} catch (err) {
  failed = true;
  console.error('FAIL: ' + (err && err.stack ? err.stack : err));
  if (problems.length > 0) console.error(problems.join('\n'));
  const page = context.pages()[0];
  if (page) await page.screenshot({ path: screenshot.replace(/\.png$/, '') + '-failed.png' }).catch(() => {});
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(overall);
}
process.exit(failed ? 1 : 0);
