// The dashboard in a real Chromium against a real `tasuki run`.
//
//   TASUKI_BIN=target/debug/tasuki node --test browser/dashboard.test.mjs
//
// Needs `npm ci` here (playwright-core only: it never downloads a browser)
// and Debian's Chromium at /usr/bin/chromium (CHROMIUM overrides the path).
// Screenshots go to DASHBOARD_SCREENS (default target/dashboard-screens).
// Every wait is on a condition with a deadline; nothing sleeps for a time.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const TOKEN = 'dashboard-test-token';
const DEADLINE = 30_000;
const SCREENS = resolve(process.env.DASHBOARD_SCREENS ?? 'target/dashboard-screens');
const BIN = process.env.TASUKI_BIN;

let base; let browser; let signedIn; let dir;
const servers = [];
const log = [];

/** Starts `tasuki run` on port 0; resolves with its address from the "listening" log line. */
function startServer({ token = TOKEN, name = 'tasuki' } = {}) {
  dir ??= mkdtempSync(join(tmpdir(), 'tasuki-dashboard-'));
  const schedules = join(dir, 'schedules.toml');
  writeFileSync(schedules, '[schedules.heartbeat-probe]\ncron = "*/5 * * * * *"\njob_type = "probe"\n');
  const env = {
    PATH: process.env.PATH,
    DATABASE_URL: `sqlite://${join(dir, `${name}.db`)}`,
    PORT: '0',
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'info',
    SCHEDULES_FILE: schedules,
  };
  if (token) env.ADMIN_TOKEN = token;
  const server = spawn(BIN, ['run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  servers.push(server);
  server.stderr.on('data', (chunk) => log.push(String(chunk)));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line within ${DEADLINE} ms:\n${log.join('\n')}`)), DEADLINE);
    server.on('exit', (code) => reject(new Error(`tasuki run exited with ${code}:\n${log.join('\n')}`)));
    createInterface({ input: server.stdout }).on('line', (line) => {
      log.push(line);
      if (log.length > 400) log.splice(0, 100);
      let entry;
      try { entry = JSON.parse(line); } catch { return; }
      const message = entry.message ?? entry.fields?.message;
      const addr = entry.addr ?? entry.fields?.addr;
      if (message === 'listening' && addr) {
        clearTimeout(timer);
        resolvePromise({ server, url: `http://${addr}` });
      }
    });
  });
}

/** Polls `check` until it returns a truthy value, failing after the deadline. */
async function waitUntil(what, check, deadline = DEADLINE) {
  const until = Date.now() + deadline;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > until) assert.fail(`${what}: not within ${deadline} ms`);
    await new Promise((r) => { setTimeout(r, 100); });
  }
}

async function call(method, path, body, token = TOKEN) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function shot(page, name) {
  // No value leaks into the page unformatted (JSON shown as JSON aside).
  const text = await page.evaluate(() => {
    const copy = document.body.cloneNode(true);
    for (const pre of copy.querySelectorAll('pre')) pre.remove();
    return copy.textContent;
  });
  assert.doesNotMatch(text, /\bnull\b|\bundefined\b|\[object |NaN/, `${name}: ${text}`);
  await page.screenshot({ path: join(SCREENS, `${name}.png`), fullPage: true });
}

/** The page has rendered its screen at least once since `since`. */
async function loaded(page, since = 0) {
  await page.waitForFunction((t) => Number(document.body.dataset.loaded ?? 0) > t, since, { timeout: DEADLINE });
}

/** Signs the page's context in through the form, unless it is already. */
async function signIn(page) {
  await loaded(page);
  if (await page.evaluate(() => document.body.dataset.signedIn === 'true')) return;
  await page.getByRole('button', { name: 'Sign in' }).first().click();
  await page.getByLabel('Admin token').fill(TOKEN);
  await page.locator('#sign-in-submit').click();
  await page.getByTestId('sign-out').waitFor({ state: 'visible', timeout: DEADLINE });
}

before(async () => {
  assert.ok(BIN, 'TASUKI_BIN names the tasuki binary');
  mkdirSync(SCREENS, { recursive: true });
  base = (await startServer()).url;
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' });
  signedIn = await browser.newContext({ viewport: { width: 1280, height: 900 } });
});

/** Stops a server with SIGTERM; it must exit 0 within the deadline. */
async function stop(server) {
  if (server.exitCode !== null) return;
  const exited = new Promise((r) => { server.on('exit', (code, signal) => r({ code, signal })); });
  server.kill('SIGTERM');
  let timer;
  const result = await Promise.race([exited, new Promise((r) => { timer = setTimeout(() => r(null), DEADLINE); })]);
  clearTimeout(timer);
  if (!result) server.kill('SIGKILL');
  assert.deepEqual(result, { code: 0, signal: null }, `tasuki run stops on SIGTERM:\n${log.slice(-40).join('\n')}`);
}

after(async () => {
  try {
    // Stopped while the pages' event streams are still open: the streams
    // must not hold the shutdown up.
    for (const server of servers) await stop(server);
  } finally {
    await browser?.close();
    for (const server of servers) if (server.exitCode === null) server.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

test('signups through the API change the overview\'s counts without a reload', async () => {
  const page = await signedIn.newPage();
  await page.goto(`${base}/dashboard`);
  await loaded(page);
  await page.waitForFunction(() => document.getElementById('live').dataset.mode === 'on', null, { timeout: DEADLINE });
  const before = Number(await page.getByTestId('count-completed').textContent());
  await page.evaluate(() => { window.notReloaded = true; });
  for (let i = 0; i < 3; i += 1) {
    const created = await call('POST', '/users', { email: `dash${i}-${Date.now()}@example.com`, age: 30 + i, name: `Dash ${i}` }, null);
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }
  // Each signup completes its user_created job and the send_email job it enqueues.
  await page.waitForFunction((min) => Number(document.querySelector('[data-testid=count-completed]').textContent) >= min,
    before + 6, { timeout: DEADLINE });
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');
  await shot(page, 'overview');

  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const small = await phone.newPage();
  await small.goto(`${base}/dashboard`);
  await loaded(small);
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the overview fits 390 px (overflows by ${overflow} px)`);
  await shot(small, 'overview-phone');
  await phone.close();
  await page.close();
});

test('a failing job is opened, its error shown, retried, and completes', async () => {
  const created = await call('POST', '/jobs', { job_type: 'probe', payload: { fail_attempts: 1 }, max_retries: 0 });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { id } = created.body;
  const page = await signedIn.newPage();
  await page.goto(`${base}/dashboard#/jobs?status=failed`);
  const link = page.getByTestId(`job-link-${id}`);
  await link.waitFor({ timeout: DEADLINE }); // appears live, once the attempt fails
  await shot(page, 'jobs');
  await link.click();
  const failed = (await call('GET', `/jobs/${id}`)).body;
  assert.equal(failed.status, 'failed');
  const shown = await page.getByTestId('job-error').textContent({ timeout: DEADLINE });
  assert.ok(shown.includes(failed.error_message), `"${shown}" shows "${failed.error_message}"`);
  const attempt = await page.locator('[data-testid=attempts] tr[data-attempt="1"]').textContent();
  assert.ok(attempt.includes(failed.errors[0].error), attempt);

  await signIn(page);
  await page.getByTestId('retry').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=job-status]')?.textContent === 'completed', null, { timeout: DEADLINE });
  assert.equal((await call('GET', `/jobs/${id}`)).body.status, 'completed');
  await page.locator('[data-testid=attempts] tr[data-attempt="2"]').waitFor();
  await shot(page, 'job');
  await page.close();
});

test('a paused queue\'s jobs do not start until it is resumed', async () => {
  // A queue with settings is listed before it has jobs.
  const set = await call('PATCH', '/queues/reports', { concurrency: 4 });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  const page = await signedIn.newPage();
  await page.goto(`${base}/dashboard#/queues`);
  await signIn(page);
  await page.getByRole('button', { name: 'Pause queue reports' }).click();
  await page.getByRole('button', { name: 'Resume queue reports' }).waitFor({ timeout: DEADLINE });
  assert.equal((await call('GET', '/queues')).body.find((q) => q.name === 'reports').paused, true);

  const ids = [];
  for (let i = 0; i < 3; i += 1) {
    const job = await call('POST', '/jobs', { job_type: 'probe', payload: {}, queue: 'reports' });
    assert.equal(job.status, 201, JSON.stringify(job.body));
    ids.push(job.body.id);
  }
  // A job enqueued after them in another queue completes: the worker
  // claimed what it could, and left the paused queue's jobs alone.
  const other = (await call('POST', '/jobs', { job_type: 'probe', payload: {} })).body.id;
  await waitUntil('the default queue\'s job completes', async () => (await call('GET', `/jobs/${other}`)).body.status === 'completed');
  for (const id of ids) assert.equal((await call('GET', `/jobs/${id}`)).body.status, 'pending');
  await page.waitForFunction(() => document.querySelector('[data-testid=queue-waiting-reports]')?.textContent === '3', null, { timeout: DEADLINE });
  await shot(page, 'queues');

  await page.getByRole('button', { name: 'Resume queue reports' }).click();
  await waitUntil('the reports jobs complete', async () => {
    const statuses = await Promise.all(ids.map(async (id) => (await call('GET', `/jobs/${id}`)).body.status));
    return statuses.every((s) => s === 'completed');
  });
  await page.waitForFunction(() => document.querySelector('[data-testid=queue-waiting-reports]')?.textContent === '0', null, { timeout: DEADLINE });
  await page.close();
});

test('an action without the token is refused', async () => {
  const anonymous = await browser.newContext();
  const page = await anonymous.newPage();
  await page.goto(`${base}/dashboard#/queues`);
  await page.getByRole('button', { name: 'Pause queue reports' }).click();
  const flash = page.getByTestId('flash');
  await page.waitForFunction(() => document.querySelector('[data-testid=flash]')?.dataset.kind === 'error', null, { timeout: DEADLINE });
  assert.match(await flash.textContent(), /needs the admin token\. Sign in/);
  assert.equal((await call('GET', '/queues')).body.find((q) => q.name === 'reports').paused, false);
  await anonymous.close();

  // With neither token nor cookie; with the cookie but no CSRF header; with
  // both but from another origin: refused. With both: allowed.
  assert.equal((await call('POST', '/queues/reports/pause', undefined, null)).status, 401);
  const request = signedIn.request;
  assert.equal((await (await request.get(`${base}/dashboard/session`)).json()).signed_in, true);
  const url = `${base}/queues/reports/pause`;
  assert.equal((await request.post(url)).status(), 401);
  assert.equal((await request.post(url, { headers: { 'X-Tasuki-Csrf': '1', Origin: 'https://elsewhere.example' } })).status(), 401);
  assert.equal((await request.post(url, { headers: { 'X-Tasuki-Csrf': '1' } })).status(), 200);
  assert.equal((await request.post(`${base}/queues/reports/resume`, { headers: { 'X-Tasuki-Csrf': '1' } })).status(), 200);
  // A wrong token does not sign in.
  const wrong = await request.post(`${base}/dashboard/session`, { headers: { 'X-Tasuki-Csrf': '1' }, data: { token: 'guess' } });
  assert.equal(wrong.status(), 401);
});

test('a bulk retry of every failed job of a queue shows its progress to the end', async () => {
  const ids = [];
  for (let i = 0; i < 3; i += 1) {
    const job = await call('POST', '/jobs', { job_type: 'probe', payload: { fail_attempts: 1 }, max_retries: 0, queue: 'bulk' });
    assert.equal(job.status, 201, JSON.stringify(job.body));
    ids.push(job.body.id);
  }
  const statuses = async () => Promise.all(ids.map(async (id) => (await call('GET', `/jobs/${id}`)).body.status));
  await waitUntil('the jobs fail', async () => (await statuses()).every((st) => st === 'failed'));
  const page = await signedIn.newPage();
  await page.goto(`${base}/dashboard#/jobs?status=failed&queue=bulk`);
  await signIn(page);
  await page.getByLabel('Action').selectOption('retry');
  await page.getByTestId('bulk-start').click();
  await page.getByTestId('bulk-confirm').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=bulk-status]')?.dataset.finished === 'true', null, { timeout: DEADLINE });
  assert.match(await page.getByTestId('bulk-status').textContent(), /looked at 3 jobs, retried 3/);
  await waitUntil('the retried jobs complete', async () => (await statuses()).every((st) => st === 'completed'));
  await page.close();
});

test('without the event stream the page polls, and still updates', async () => {
  const page = await signedIn.newPage();
  await page.route('**/dashboard/events', (route) => route.abort());
  await page.goto(`${base}/dashboard`);
  await page.waitForFunction(() => document.getElementById('live').dataset.mode === 'poll', null, { timeout: DEADLINE });
  const before = Number(await page.getByTestId('count-completed').textContent());
  const created = await call('POST', '/jobs', { job_type: 'probe', payload: {} });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await page.waitForFunction((min) => Number(document.querySelector('[data-testid=count-completed]').textContent) >= min,
    before + 1, { timeout: DEADLINE });
  // A page left open over the end of the run (see `after`).
});

test('without ADMIN_TOKEN the page says that actions are open', async () => {
  const { url } = await startServer({ token: null, name: 'open' });
  const page = await browser.newPage();
  await page.goto(`${url}/dashboard`);
  await page.getByTestId('actions-open').waitFor({ state: 'visible', timeout: DEADLINE });
  assert.match(await page.getByTestId('actions-open').textContent(), /Actions are open: ADMIN_TOKEN is not set/);
  assert.equal(await page.getByTestId('sign-in').isHidden(), true);
  await page.close();
});

test('the schedules and workers screens', async () => {
  const page = await signedIn.newPage();
  await page.goto(`${base}/dashboard#/schedules`);
  // The schedule fires every five seconds: wait for the job of a slot.
  await page.locator('[data-schedule="heartbeat-probe"] a[href^="#/jobs/"]').first().waitFor({ timeout: DEADLINE });
  await shot(page, 'schedules');
  await page.goto(`${base}/dashboard#/workers`);
  await page.locator('[data-testid=workers-table] tr[data-worker]').first().waitFor({ timeout: DEADLINE });
  await shot(page, 'workers');
  // The overview once every scenario ran, for the README.
  await page.goto(`${base}/dashboard`);
  await page.locator('[data-testid=chart-throughput]').waitFor({ timeout: DEADLINE });
  await shot(page, 'overview-later');
  // Keyboard: the nav's links are reachable and go where they say.
  await page.getByRole('link', { name: 'Jobs', exact: true }).focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.body.dataset.screen === 'jobs', null, { timeout: DEADLINE });
  // Left open, on its event stream, over the end of the run (see `after`).
  await page.waitForFunction(() => document.getElementById('live').dataset.mode === 'on', null, { timeout: DEADLINE });
});
