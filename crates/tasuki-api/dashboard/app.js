// tasuki dashboard: hash routes over the API's own operations, live over
// server-sent events (polling when they fail), charts drawn as inline SVG.
// Everything is built with DOM calls: no data ever goes through innerHTML.

const STATUSES = ['pending', 'retry_pending', 'processing', 'completed', 'failed', 'cancelled'];
const STATUS_LABEL = {
  pending: 'Pending', retry_pending: 'Retry pending', processing: 'Running',
  completed: 'Completed', failed: 'Failed', cancelled: 'Cancelled',
};
// The overview's cards: a count of /overview, its label, the state it lists.
const OVERVIEW_CARDS = [
  ['waiting', 'Waiting', 'pending'], ['scheduled', 'Scheduled', 'pending'], ['running', 'Running', 'processing'],
  ['completed', 'Completed (1 h)', 'completed'], ['failed', 'Failed', 'failed'], ['cancelled', 'Cancelled', 'cancelled'],
];
const PAGE_SIZE = 50;
// A filtered list looks at this many jobs per request at most, so that a
// filter that matches few of millions answers quickly (GET /jobs?scan=).
const SCAN = 100000;
const POLL_MS = 2000;

// ---------------------------------------------------------------- helpers

/** An element: attrs (class, text, on<event>, any attribute), then children. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
  return el;
}

/** Replaces an element's children, leaving out null, undefined and false. */
function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

const pad = (n) => String(n).padStart(2, '0');
function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function ago(iso) {
  if (!iso) return '—';
  const secs = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  const abs = Math.abs(secs);
  const text = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 86400 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return secs >= 0 ? `${text} ago` : `in ${text}`;
}
const time = (iso) => (iso ? h('time', { datetime: iso, title: iso, text: fmtTime(iso) }) : '—');
const badge = (status, label) => h('span', { class: `badge s-${status}`, 'data-status': status, text: label ?? STATUS_LABEL[status] ?? status });
const json = (value) => h('pre', { class: 'json', text: JSON.stringify(value, null, 2) ?? 'null' });
const fmtMs = (ms) => (ms === null || ms === undefined ? '—' : ms < 1000 ? `${+ms.toFixed(ms < 10 ? 1 : 0)} ms` : `${+(ms / 1000).toFixed(1)} s`);

function table(headers, rows, empty, testid) {
  if (rows.length === 0) return h('p', { class: 'empty', 'data-testid': testid && `${testid}-empty`, text: empty });
  return h('div', { class: 'table-wrap' },
    h('table', { 'data-testid': testid },
      h('thead', {}, h('tr', {}, headers.map((x) => (typeof x === 'string'
        ? h('th', { scope: 'col', text: x })
        : h('th', { scope: 'col', class: x.class, text: x.text }))))),
      h('tbody', {}, rows)));
}

// ---------------------------------------------------------------- the API

class HttpError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  // The CSRF defence: a cross-site form cannot send a custom header.
  if (method !== 'GET') headers['X-Tasuki-Csrf'] = '1';
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) throw new HttpError(response.status, data);
  return data;
}


// ---------------------------------------------------------------- messages

const flashEl = () => document.getElementById('flash');
let flashTimer = null;
function flash(message, kind = 'ok', action = null) {
  const el = flashEl();
  clearTimeout(flashTimer);
  fill(el, h('span', { text: message }), action ? ' ' : null, action);
  el.className = `flash ${kind}`;
  el.dataset.kind = kind;
  el.hidden = false;
  if (kind === 'ok') flashTimer = setTimeout(() => { el.hidden = true; }, 6000);
}

/** Runs an action; a refusal asks to sign in, other errors say what failed. */
async function act(what, fn) {
  try {
    const result = await fn();
    return result;
  } catch (e) {
    if (e instanceof HttpError && e.status === 401) {
      flash(`Not allowed: ${what} needs the admin token. Sign in and try again.`, 'error',
        h('button', { type: 'button', 'data-testid': 'flash-sign-in', onclick: openSignIn, text: 'Sign in' }));
      await loadSession();
    } else {
      flash(`Could not ${what}: ${e.message}`, 'error');
    }
    return undefined;
  }
}

// ---------------------------------------------------------------- session

let session = { signed_in: false, actions_open: false };

async function loadSession() {
  try { session = await api('/dashboard/session'); } catch { /* keep the last known */ }
  document.getElementById('open-banner').hidden = !session.actions_open;
  document.getElementById('sign-in').hidden = session.actions_open || session.signed_in;
  document.getElementById('sign-out').hidden = session.actions_open || !session.signed_in;
  document.body.dataset.signedIn = String(session.signed_in);
}

function openSignIn() {
  const dialog = document.getElementById('sign-in-dialog');
  document.getElementById('sign-in-error').hidden = true;
  document.getElementById('token').value = '';
  if (!dialog.open) dialog.showModal();
  document.getElementById('token').focus();
}

async function signIn(event) {
  event.preventDefault();
  const error = document.getElementById('sign-in-error');
  const token = document.getElementById('token').value;
  try {
    await api('/dashboard/session', { method: 'POST', body: { token } });
  } catch (e) {
    error.textContent = e instanceof HttpError && e.status === 401
      ? 'That is not the server\'s ADMIN_TOKEN.'
      : `Could not sign in: ${e.message}`;
    error.hidden = false;
    document.getElementById('token').select();
    return;
  }
  document.getElementById('sign-in-dialog').close();
  await loadSession();
  flash('Signed in: actions are allowed.');
  document.getElementById('sign-out').focus();
  refreshSoon();
}

async function signOut() {
  await act('sign out', () => api('/dashboard/session', { method: 'DELETE' }));
  await loadSession();
  flash('Signed out.');
  document.getElementById('sign-in').focus();
}

// ---------------------------------------------------------------- charts

/** Sixty one-minute slots ending with the current minute, keyed by ISO minute. */
function lastMinutes(count) {
  const now = Math.floor(Date.now() / 60000) * 60000;
  const slots = [];
  for (let i = count - 1; i >= 0; i -= 1) slots.push(now - i * 60000);
  return slots;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * A chart of per-minute values. `series`: [{ key, label, cls, values }],
 * values one per slot (null where nothing happened). Bars stack; lines gap.
 */
function chart({ id, title, kind, slots, series, format, summary }) {
  const W = 360; const H = 150; const L = 40; const R = 8; const T = 10; const B = 20;
  const w = W - L - R; const hgt = H - T - B; const n = slots.length; const step = w / n;
  const totals = slots.map((_, i) => (kind === 'bar'
    ? series.reduce((sum, x) => sum + (x.values[i] ?? 0), 0)
    : Math.max(0, ...series.map((x) => x.values[i] ?? 0))));
  const max = niceMax(Math.max(0, ...totals));
  const y = (v) => T + hgt - (v / max) * hgt;
  const titleId = `${id}-title`;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': titleId, 'data-testid': id },
    s('title', { id: titleId }, `${title}: ${summary}`));
  for (const v of [0, max / 2, max]) {
    svg.append(s('line', { class: 'axis', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      s('text', { class: 'tick', x: L - 4, y: y(v) + 3, 'text-anchor': 'end' }, format(v)));
  }
  [[0, `-${n}m`], [n / 2, `-${n / 2}m`], [n, 'now']].forEach(([i, label]) => {
    svg.append(s('text', { class: 'tick', x: L + i * step, y: H - 5, 'text-anchor': i === 0 ? 'start' : i === n ? 'end' : 'middle' }, label));
  });
  if (kind === 'bar') {
    slots.forEach((_, i) => {
      let base = 0;
      for (const x of series) {
        const v = x.values[i] ?? 0;
        if (v > 0) {
          svg.append(s('rect', { class: x.cls, x: L + i * step + 0.5, width: Math.max(1, step - 1), y: y(base + v), height: Math.max(0.5, y(base) - y(base + v)) }));
        }
        base += v;
      }
    });
  } else {
    for (const x of series) {
      let d = ''; let pen = false;
      x.values.forEach((v, i) => {
        if (v === null || v === undefined) { pen = false; return; }
        const px = L + (i + 0.5) * step;
        d += `${pen ? 'L' : 'M'}${px.toFixed(1)} ${y(v).toFixed(1)} `;
        pen = true;
        svg.append(s('circle', { class: x.cls.replace('line', 'dot'), cx: px.toFixed(1), cy: y(v).toFixed(1), r: 1.6 }));
      });
      if (d) svg.prepend(s('path', { class: x.cls, d }));
    }
  }
  return h('figure', { class: 'panel chart', style: null },
    h('h3', { text: title }), svg,
    h('ul', { class: 'legend' }, series.map((x) => h('li', {}, h('span', { class: `sw ${x.key}`, 'aria-hidden': 'true' }), x.label))));
}

function charts(minutes) {
  const slots = lastMinutes(60);
  const byMinute = new Map(minutes.map((m) => [Math.floor(new Date(m.minute).getTime() / 60000) * 60000, m]));
  const pick = (key) => slots.map((t) => byMinute.get(t)?.[key] ?? null);
  const completed = pick('completed'); const failed = pick('failed');
  const sum = (xs) => xs.reduce((a, b) => a + (b ?? 0), 0);
  const last = (xs) => [...xs].reverse().find((v) => v !== null) ?? null;
  const count = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
  return h('div', { class: 'charts' },
    chart({
      id: 'chart-throughput', title: 'Throughput (jobs a minute)', kind: 'bar', slots, format: count,
      summary: `${sum(completed)} completed and ${sum(failed)} failed in the last hour`,
      series: [
        { key: 'done', label: 'completed', cls: 'bar-done', values: completed },
        { key: 'fail', label: 'failed', cls: 'bar-fail', values: failed },
      ],
    }),
    chart({
      id: 'chart-wait', title: 'Wait time (due to started)', kind: 'line', slots, format: fmtMs,
      summary: `latest p50 ${fmtMs(last(pick('wait_p50_ms')))}, p95 ${fmtMs(last(pick('wait_p95_ms')))}`,
      series: [
        { key: 'p50', label: 'p50', cls: 'line-p50', values: pick('wait_p50_ms') },
        { key: 'p95', label: 'p95', cls: 'line-p95', values: pick('wait_p95_ms') },
      ],
    }),
    chart({
      id: 'chart-run', title: 'Run time', kind: 'line', slots, format: fmtMs,
      summary: `latest p50 ${fmtMs(last(pick('run_p50_ms')))}, p95 ${fmtMs(last(pick('run_p95_ms')))}`,
      series: [
        { key: 'p50', label: 'p50', cls: 'line-p50', values: pick('run_p50_ms') },
        { key: 'p95', label: 'p95', cls: 'line-p95', values: pick('run_p95_ms') },
      ],
    }));
}

/** A job's life in order: created, due, each attempt's failure, started, finished. */
function timeline(job) {
  const events = [{ at: job.created_at, cls: 't-created', text: 'Created' }];
  const created = new Date(job.created_at).getTime();
  if (new Date(job.scheduled_at).getTime() - created > 1000) {
    events.push({ at: job.scheduled_at, cls: 't-scheduled', text: 'Due (scheduled)' });
  }
  for (const e of job.errors ?? []) {
    events.push({ at: e.at, cls: 't-failed', text: `Attempt ${e.attempt} failed${e.worker ? ` on ${e.worker}` : ''}: ${e.error}` });
  }
  if (job.started_at) events.push({ at: job.started_at, cls: 't-started', text: `Attempt ${job.attempt} started` });
  if (job.completed_at) {
    const text = { completed: 'Completed', failed: 'Failed for good', cancelled: 'Cancelled' }[job.status] ?? `Finished (${job.status})`;
    events.push({ at: job.completed_at, cls: `t-${job.status === 'completed' ? 'completed' : 'failed'}`, text });
  }
  events.sort((a, b) => new Date(a.at) - new Date(b.at));
  return h('ol', { class: 'timeline', 'data-testid': 'timeline' },
    events.map((e) => h('li', { class: e.cls }, time(e.at), e.text)));
}

// ---------------------------------------------------------------- screens

const screens = {
  overview: {
    title: 'Overview',
    mount(main) {
      this.body = h('div');
      main.append(h('h1', { text: 'Overview' }), this.body);
    },
    async refresh() {
      // Counted from the live, failed and cancelled jobs' indexes and the
      // per-minute rollup: no read of the whole table, however big.
      const overview = await api('/overview?minutes=60');
      const sum = (k) => overview.queues.reduce((n, q) => n + q[k], 0);
      const cards = h('div', { class: 'cards', 'data-testid': 'counts' }, OVERVIEW_CARDS.map(([key, label, status]) => {
        const n = key === 'completed' ? overview.completed : sum(key);
        return h('a', { class: 'card', href: `#/jobs?status=${status}`, 'aria-label': `${label}: ${n} jobs` },
          h('span', { class: 'n', 'data-testid': `count-${key}`, text: String(n) }),
          h('span', { class: 'k', text: label }));
      }));
      const queueLink = (name) => h('a', { href: `#/jobs?queue=${encodeURIComponent(name)}`, text: name });
      const queueTable = table(['Queue', { text: 'Waiting', class: 'num' }, { text: 'Scheduled', class: 'num' }, { text: 'Running', class: 'num' }, { text: 'Failed', class: 'num' }, { text: 'Cancelled', class: 'num' }],
        overview.queues.map((q) => h('tr', { 'data-queue': q.queue }, h('td', {}, queueLink(q.queue)),
          ['waiting', 'scheduled', 'running', 'failed', 'cancelled'].map((k) => h('td', { class: 'num', 'data-testid': `queue-${q.queue}-${k}`, text: String(q[k]) })))),
        'No queue has jobs.', 'overview-queues');
      const oldest = overview.oldest_due_ms;
      fill(this.body,
        h('h2', { class: 'visually-hidden', text: 'Jobs by state' }), cards,
        h('p', { class: 'muted', 'data-testid': 'oldest-ready' }, oldest === null ? 'No job is waiting.' : `The oldest due job has waited ${fmtMs(oldest)}.`),
        h('h2', { text: 'Last hour' }),
        charts(overview.minutes),
        h('h2', { text: 'Jobs by queue' }), queueTable);
    },
  },

  jobs: {
    title: 'Jobs',
    mount(main, params) {
      this.params = params;
      const filter = (name) => params.get(name) ?? '';
      const status = h('select', { id: 'f-status', name: 'status' },
        h('option', { value: '', text: 'Any state' }),
        STATUSES.map((st) => h('option', { value: st, text: STATUS_LABEL[st], selected: st === filter('status') })));
      const field = (id, label, control) => h('div', {}, h('label', { for: id, text: label }), control);
      const form = h('form', { class: 'filters panel', role: 'search', 'aria-label': 'Filter jobs', onsubmit: (e) => this.apply(e) },
        field('f-status', 'State', status),
        field('f-type', 'Type', h('input', { id: 'f-type', name: 'job_type', value: filter('job_type'), autocomplete: 'off' })),
        field('f-queue', 'Queue', h('input', { id: 'f-queue', name: 'queue', value: filter('queue'), autocomplete: 'off' })),
        field('f-id', 'Job id', h('input', { id: 'f-id', name: 'id', inputmode: 'numeric', pattern: '[0-9]*', autocomplete: 'off' })),
        h('div', {}, h('button', { type: 'submit', class: 'primary', 'data-testid': 'apply-filter', text: 'Apply' })));
      this.list = h('div', { 'aria-live': 'polite' });
      this.pager = h('div', { class: 'pager' });
      main.append(h('h1', { text: 'Jobs' }), form, this.list, this.pager, this.bulkForm());
    },
    apply(event) {
      event.preventDefault();
      const data = new FormData(event.target);
      const id = String(data.get('id') ?? '').trim();
      if (id) { location.hash = `#/jobs/${encodeURIComponent(id)}`; return; }
      const qs = new URLSearchParams();
      for (const k of ['status', 'job_type', 'queue']) {
        const v = String(data.get(k) ?? '').trim();
        if (v) qs.set(k, v);
      }
      location.hash = `#/jobs${qs.size ? `?${qs}` : ''}`;
    },
    filters() {
      const f = {};
      for (const k of ['status', 'job_type', 'queue']) if (this.params.get(k)) f[k] = this.params.get(k);
      return f;
    },
    async refresh() {
      const filtered = Object.keys(this.filters()).length > 0;
      const qs = new URLSearchParams({ ...this.filters(), order: 'newest', limit: String(PAGE_SIZE) });
      if (filtered) qs.set('scan', String(SCAN));
      if (this.params.get('after')) qs.set('after', this.params.get('after'));
      const page = await api(`/jobs?${qs}`);
      const rows = page.items.map((j) => h('tr', { 'data-job': j.id },
        h('td', {}, h('a', { href: `#/jobs/${j.id}`, 'data-testid': `job-link-${j.id}`, text: `#${j.id}` })),
        h('td', { text: j.job_type }), h('td', { class: 'hide-narrow', text: j.queue }),
        h('td', {}, badge(j.status)), h('td', { class: 'num hide-narrow', text: String(j.attempt) }),
        h('td', { class: 'hide-narrow' }, time(j.created_at)),
        h('td', { class: 'err', text: j.error_message ?? '' })));
      fill(this.list, table(['Id', 'Type', { text: 'Queue', class: 'hide-narrow' }, 'State', { text: 'Attempt', class: 'num hide-narrow' }, { text: 'Created', class: 'hide-narrow' }, 'Error'],
        rows, 'No job matches.', 'jobs-table'));
      const base = new URLSearchParams(this.filters());
      const next = page.next_after === null ? null : new URLSearchParams({ ...this.filters(), after: String(page.next_after) });
      const partial = page.items.length < PAGE_SIZE && page.next_after !== null;
      fill(this.pager,
        this.params.get('after') ? h('a', { class: 'button', href: `#/jobs${base.size ? `?${base}` : ''}`, text: 'First page' }) : null,
        next ? h('a', { class: 'button', href: `#/jobs?${next}`, 'data-testid': 'next-page', text: partial ? 'Look further' : 'Next page' }) : null,
        h('span', { class: 'muted', text: partial
          ? `${page.items.length} shown, newest first; jobs older than #${page.next_after} not searched yet`
          : `${page.items.length} shown, newest first` }));
    },
    bulkForm() {
      const describe = () => {
        const f = this.filters();
        const parts = [f.status && `state ${STATUS_LABEL[f.status] ?? f.status}`, f.job_type && `type ${f.job_type}`, f.queue && `queue ${f.queue}`].filter(Boolean);
        return parts.length ? `every job with ${parts.join(', ')}` : 'every job, of every state, type and queue';
      };
      const action = h('select', { id: 'bulk-action', name: 'action' },
        h('option', { value: 'retry', text: 'Retry' }), h('option', { value: 'cancel', text: 'Cancel' }), h('option', { value: 'delete', text: 'Delete' }));
      const confirmBox = h('div', { class: 'buttons', hidden: true });
      const progress = h('div', { 'data-testid': 'bulk-status', role: 'status' });
      const start = h('button', { type: 'submit', 'data-testid': 'bulk-start', text: 'Review…' });
      const form = h('form', {
        class: 'panel bulk', 'aria-labelledby': 'bulk-title',
        onsubmit: (e) => {
          e.preventDefault();
          const verb = action.value;
          const yes = h('button', { type: 'button', class: verb === 'retry' ? 'primary' : 'danger', 'data-testid': 'bulk-confirm', text: `Yes, ${verb} them`, onclick: () => this.runBulk(verb, progress, confirmBox) });
          fill(confirmBox, h('p', { text: `${verb[0].toUpperCase()}${verb.slice(1)} ${describe()}?${verb === 'delete' ? ' Deleted jobs are gone for good.' : ''}` }),
            yes, h('button', { type: 'button', text: 'No, keep them', onclick: () => { confirmBox.hidden = true; start.focus(); } }));
          confirmBox.hidden = false;
          yes.focus();
        },
      },
      h('h2', { id: 'bulk-title', text: 'Act on every matching job' }),
      h('p', { class: 'muted', text: 'Runs on the server over every job the filter above matches, not only this page.' }),
      h('div', { class: 'filters' }, h('div', {}, h('label', { for: 'bulk-action', text: 'Action' }), action), h('div', {}, start)),
      confirmBox, progress);
      return form;
    },
    async runBulk(verb, progress, confirmBox) {
      confirmBox.hidden = true;
      const bar = h('progress', { 'aria-label': 'Bulk action progress' });
      const text = h('p', { text: 'Starting…' });
      fill(progress, bar, text);
      let job = await act(`${verb} jobs in bulk`, () => api('/jobs/bulk', { method: 'POST', body: { action: verb, ...this.filters() } }));
      if (!job) { fill(progress); return; }
      const deadline = Date.now() + 10 * 60 * 1000;
      while (!job.finished && Date.now() < deadline) {
        text.textContent = `Working: looked at ${job.done}, changed ${job.changed}…`;
        await new Promise((resolve) => { setTimeout(resolve, 400); });
        const id = job.id;
        job = await act('follow the bulk action', () => api(`/jobs/bulk/${encodeURIComponent(id)}`));
        if (!job) return;
      }
      bar.max = 1; bar.value = 1;
      text.textContent = job.error
        ? `Stopped: ${job.error} (looked at ${job.done}, changed ${job.changed}).`
        : `Done: looked at ${job.done} jobs, ${verb === 'delete' ? 'deleted' : verb === 'cancel' ? 'cancelled' : 'retried'} ${job.changed}.`;
      progress.dataset.finished = 'true';
      refreshSoon();
    },
  },

  job: {
    title: 'Job',
    mount(main, params, id) {
      this.id = id;
      this.body = h('div');
      main.append(this.body);
    },
    async refresh() {
      let job;
      try { job = await api(`/jobs/${encodeURIComponent(this.id)}`); } catch (e) {
        if (e instanceof HttpError && (e.status === 404 || e.status === 400)) {
          fill(this.body, h('h1', { text: `Job ${this.id}` }), h('p', { class: 'empty', text: 'There is no such job (it may have been deleted by retention).' }));
          return;
        }
        throw e;
      }
      document.title = `Job ${job.id} · tasuki`;
      const retry = h('button', {
        type: 'button', class: 'primary', 'data-testid': 'retry', disabled: !['failed', 'cancelled'].includes(job.status),
        text: 'Retry', onclick: () => this.action('retry'),
      });
      const cancel = h('button', {
        type: 'button', class: 'danger', 'data-testid': 'cancel', disabled: !['pending', 'retry_pending', 'processing'].includes(job.status),
        text: 'Cancel', onclick: () => this.action('cancel'),
      });
      const facts = [
        ['Type', job.job_type], ['Queue', h('a', { href: `#/jobs?queue=${encodeURIComponent(job.queue)}`, text: job.queue })],
        ['Priority', job.priority], ['Attempts', `${job.attempt} (retries ${job.retry_count} of ${job.max_retries})`],
        ['Created', time(job.created_at)], ['Due', time(job.scheduled_at)], ['Started', time(job.started_at)],
        ['Finished', time(job.completed_at)], ['Worker', job.lease_owner ?? '—'], ['Lease until', time(job.lease_expires_at)],
        ['Unique key', job.unique_key ?? '—'],
      ];
      const errors = new Map((job.errors ?? []).map((e) => [e.attempt, e]));
      const attempts = [];
      for (let n = 1; n <= job.attempt; n += 1) {
        const e = errors.get(n);
        const current = n === job.attempt && !e;
        attempts.push(h('tr', { 'data-attempt': n },
          h('td', { class: 'num', text: String(n) }),
          h('td', { text: e ? (e.worker ?? '—') : current ? (job.lease_owner ?? '—') : '—' }),
          h('td', {}, e ? time(e.at) : current ? time(job.started_at) : '—'),
          h('td', { class: e ? 'err' : '' }, e ? e.error : current ? badge(job.status) : '')));
      }
      fill(this.body,
        h('h1', {}, `Job #${job.id} `, badge(job.status), h('span', { class: 'visually-hidden', 'data-testid': 'job-status', text: job.status })),
        h('div', { class: 'buttons' }, retry, cancel, h('a', { class: 'button', href: '#/jobs', text: 'All jobs' })),
        job.error_message ? h('p', { class: 'error', 'data-testid': 'job-error', text: `Last error: ${job.error_message}` }) : null,
        h('div', { class: 'cols' },
          h('section', { class: 'panel', 'aria-labelledby': 'facts-title' }, h('h2', { id: 'facts-title', text: 'Details' }),
            h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v ?? '—')]))),
          h('section', { class: 'panel', 'aria-labelledby': 'timeline-title' }, h('h2', { id: 'timeline-title', text: 'Timeline' }), timeline(job))),
        h('div', { class: 'cols' },
          h('section', { 'aria-labelledby': 'payload-title' }, h('h2', { id: 'payload-title', text: 'Payload' }), json(job.payload)),
          h('section', { 'aria-labelledby': 'result-title' }, h('h2', { id: 'result-title', text: 'Result' }), json(job.result))),
        h('h2', { text: 'Attempts' }),
        table([{ text: 'Attempt', class: 'num' }, 'Worker', 'At', 'Error or outcome'], attempts, 'Not attempted yet.', 'attempts'));
    },
    async action(verb) {
      const done = await act(`${verb} job ${this.id}`, () => api(`/jobs/${encodeURIComponent(this.id)}/${verb}`, { method: 'POST' }));
      if (done) flash(`Job ${this.id}: ${verb === 'retry' ? 'retried' : 'cancelled'}.`);
      refreshSoon();
    },
  },

  queues: {
    title: 'Queues',
    mount(main) {
      this.body = h('div');
      main.append(h('h1', { text: 'Queues' }), this.body);
    },
    async refresh() {
      const [queues, overview] = await Promise.all([api('/queues'), api('/overview?minutes=1')]);
      const scheduled = new Map(overview.queues.map((q) => [q.queue, q.scheduled]));
      const rows = queues.map((q) => {
        const verb = q.paused ? 'resume' : 'pause';
        return h('tr', { 'data-queue': q.name },
          h('td', {}, h('a', { href: `#/jobs?queue=${encodeURIComponent(q.name)}`, text: q.name })),
          h('td', { 'data-testid': `queue-state-${q.name}` }, q.paused ? badge('paused', 'paused') : badge('active', 'active')),
          h('td', { class: 'num', 'data-testid': `queue-waiting-${q.name}`, text: String(q.waiting) }),
          h('td', { class: 'num hide-narrow', text: String(scheduled.get(q.name) ?? 0) }),
          h('td', { class: 'num', 'data-testid': `queue-running-${q.name}`, text: String(q.running) }),
          h('td', { class: 'hide-narrow', text: q.concurrency === null ? 'no limit' : `${q.concurrency} at once` }),
          h('td', { class: 'hide-narrow', text: q.rate_limit ? `${q.rate_limit.limit} per ${fmtMs(q.rate_limit.period_ms)}` : 'no limit' }),
          h('td', {}, h('button', {
            type: 'button', 'data-testid': `${verb}-${q.name}`, 'aria-label': `${verb === 'pause' ? 'Pause' : 'Resume'} queue ${q.name}`,
            text: verb === 'pause' ? 'Pause' : 'Resume', onclick: () => this.toggle(q.name, verb),
          })));
      });
      fill(this.body,
        table(['Queue', 'State', { text: 'Waiting', class: 'num' }, { text: 'Scheduled', class: 'num hide-narrow' }, { text: 'Running', class: 'num' },
          { text: 'Concurrency', class: 'hide-narrow' }, { text: 'Rate limit', class: 'hide-narrow' }, 'Action'], rows, 'No queue has jobs or settings yet.', 'queues-table'),
        h('p', { class: 'muted', text: 'A paused queue keeps its jobs; none of them starts until it is resumed. Limits are set with PATCH /queues/{name} or `tasuki queues`.' }));
    },
    async toggle(name, verb) {
      const done = await act(`${verb} queue ${name}`, () => api(`/queues/${encodeURIComponent(name)}/${verb}`, { method: 'POST' }));
      if (done !== undefined) flash(`Queue ${name} ${verb === 'pause' ? 'paused' : 'resumed'}.`);
      await refreshNow();
      const again = document.querySelector(`[data-testid="${verb === 'pause' ? 'resume' : 'pause'}-${CSS.escape(name)}"]`);
      again?.focus();
    },
  },

  schedules: {
    title: 'Schedules',
    mount(main) {
      this.body = h('div');
      main.append(h('h1', { text: 'Schedules' }), this.body);
    },
    async refresh() {
      const { items } = await api('/schedules');
      const rows = items.map((x) => {
        const verb = x.paused ? 'resume' : 'pause';
        return h('tr', { 'data-schedule': x.name },
          h('td', { text: x.name }),
          h('td', {}, h('code', { text: x.cron }), h('div', { class: 'muted', text: x.timezone })),
          h('td', { text: x.job_type }), h('td', { class: 'hide-narrow', text: x.queue ?? 'default' }),
          h('td', {}, x.paused ? badge('paused', 'paused') : badge('active', 'active')),
          h('td', {}, time(x.last_slot)), h('td', {}, x.next_run ? h('span', {}, time(x.next_run), h('div', { class: 'muted', text: ago(x.next_run) })) : '—'),
          h('td', {}, x.recent_jobs.length ? x.recent_jobs.slice(0, 5).flatMap((id, i) => [i ? ', ' : null, h('a', { href: `#/jobs/${id}`, text: `#${id}` })]) : '—'),
          h('td', {}, h('button', {
            type: 'button', 'aria-label': `${verb === 'pause' ? 'Pause' : 'Resume'} schedule ${x.name}`,
            text: verb === 'pause' ? 'Pause' : 'Resume',
            onclick: async () => {
              await act(`${verb} schedule ${x.name}`, () => api(`/schedules/${encodeURIComponent(x.name)}/${verb}`, { method: 'POST' }));
              refreshSoon();
            },
          })));
      });
      fill(this.body, table(['Schedule', 'When', 'Type', { text: 'Queue', class: 'hide-narrow' }, 'State', 'Last run', 'Next run', 'Jobs it created', 'Action'],
        rows, 'No schedules: declare them in SCHEDULES_FILE.', 'schedules-table'));
    },
  },

  workers: {
    title: 'Workers',
    mount(main) {
      this.body = h('div');
      main.append(h('h1', { text: 'Workers' }), this.body);
    },
    async refresh() {
      const workers = await api('/workers');
      const rows = workers.items.map((w) => {
        const stale = Date.now() - new Date(w.heartbeat_at).getTime() > 30000;
        return h('tr', { 'data-worker': w.id },
          h('td', {}, h('code', { text: w.id })),
          h('td', { class: 'hide-narrow', text: `${w.host} · pid ${w.pid}` }),
          h('td', { text: (w.queues ?? []).map((q) => `${q.name === '*' ? 'every queue' : q.name} (${q.slots})`).join(', ') || 'every queue' }),
          h('td', { class: 'num', 'data-testid': `worker-busy-${w.id}` }, `${w.running} of ${w.slots}`),
          h('td', { class: 'hide-narrow' }, time(w.started_at)),
          h('td', {}, h('span', { title: w.heartbeat_at, text: ago(w.heartbeat_at) }), stale ? [' ', badge('failed', 'stale')] : null));
      });
      const slots = workers.items.reduce((a, w) => a + w.slots, 0);
      const busy = workers.items.reduce((a, w) => a + w.running, 0);
      fill(this.body,
        h('p', { class: 'muted', 'data-testid': 'workers-summary', text: `${workers.items.length} worker process${workers.items.length === 1 ? '' : 'es'} alive, ${busy} of ${slots} slots in use.` }),
        table(['Worker', { text: 'Host', class: 'hide-narrow' }, 'Queues (slots)', { text: 'In use', class: 'num' }, { text: 'Started', class: 'hide-narrow' }, 'Last heartbeat'],
          rows, 'No worker is alive.', 'workers-table'));
    },
  },
};

// ---------------------------------------------------------------- routing

let current = null;
let generation = 0;

function route() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  const params = new URLSearchParams(query ?? '');
  const job = path.match(/^\/jobs\/([^/]+)$/);
  if (job) return { name: 'job', params, id: decodeURIComponent(job[1]) };
  const name = { '/': 'overview', '': 'overview', '/jobs': 'jobs', '/queues': 'queues', '/schedules': 'schedules', '/workers': 'workers' }[path];
  return { name: name ?? 'missing', params };
}

async function navigate(focus = true) {
  const { name, params, id } = route();
  const main = document.getElementById('content');
  fill(main);
  generation += 1;
  for (const a of document.querySelectorAll('nav a')) {
    const on = a.dataset.screen === (name === 'job' ? 'jobs' : name);
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (name === 'missing') {
    current = null;
    main.append(h('h1', { text: 'Not found' }), h('p', {}, 'No such screen. ', h('a', { href: '#/', text: 'Back to the overview' })));
    return;
  }
  current = Object.create(screens[name]);
  document.title = `${current.title} · tasuki`;
  document.body.dataset.screen = name;
  current.mount(main, params, id);
  if (focus) main.focus();
  await refreshNow();
}

let refreshing = null;
let again = false;
let debounce = null;

/** Refetches the current screen now (one refresh at a time; a call during one runs one more after it). */
async function refreshNow() {
  if (refreshing) { again = true; return refreshing; }
  const screen = current;
  const gen = generation;
  refreshing = (async () => {
    try {
      if (screen) await screen.refresh();
      if (gen === generation) document.body.dataset.loaded = String(Date.now());
    } catch (e) {
      if (gen === generation) flash(`Could not load: ${e.message}`, 'error');
    } finally {
      refreshing = null;
    }
    if (again) { again = false; await refreshNow(); }
  })();
  return refreshing;
}

function refreshSoon() {
  clearTimeout(debounce);
  debounce = setTimeout(refreshNow, 150);
}

// ---------------------------------------------------------------- live

let poller = null;
function setLive(mode) {
  const el = document.getElementById('live');
  el.className = `live ${mode}`;
  el.dataset.mode = mode;
  el.textContent = mode === 'on' ? 'Live' : mode === 'poll' ? 'Polling' : 'Connecting…';
}

function startPolling() {
  setLive('poll');
  if (!poller) poller = setInterval(refreshSoon, POLL_MS);
}

function stopPolling() {
  clearInterval(poller);
  poller = null;
}

function startLive() {
  if (!('EventSource' in window)) { startPolling(); return; }
  const events = new EventSource('/dashboard/events');
  events.addEventListener('open', () => { stopPolling(); setLive('on'); });
  events.addEventListener('change', () => { if (!document.hidden) refreshSoon(); });
  events.addEventListener('error', () => {
    // Fall back to polling, and try the stream again a little later.
    events.close();
    startPolling();
    setTimeout(startLive, 15000);
  });
}

// ---------------------------------------------------------------- start

document.getElementById('sign-in').addEventListener('click', openSignIn);
document.getElementById('sign-out').addEventListener('click', signOut);
document.getElementById('sign-in-form').addEventListener('submit', signIn);
document.getElementById('sign-in-cancel').addEventListener('click', () => document.getElementById('sign-in-dialog').close());
document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshSoon(); });
window.addEventListener('hashchange', () => navigate(true));

await loadSession();
await navigate(false);
startLive();
