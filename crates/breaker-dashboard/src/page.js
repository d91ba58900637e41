
'use strict';
// Every name, message and detail comes from the store and may hold markup: text goes into
// the page only through textContent and attribute setters, never as HTML.
(function () {
  const base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
  const SVG = 'http://www.w3.org/2000/svg';
  const cards = new Map();
  let actions = false;
  let history = [];

  const $ = (id) => document.getElementById(id);
  const tokenInput = $('token');

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  function left(ms) {
    let s = Math.max(0, Math.round((ms - Date.now()) / 1000));
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60); s %= 60;
    if (m < 60) return m + 'm ' + String(s).padStart(2, '0') + 's';
    return Math.floor(m / 60) + 'h ' + String(m % 60).padStart(2, '0') + 'm';
  }

  function describe(entry) {
    const d = entry.details || {};
    const parts = [];
    if (entry.event === 'tripped') {
      if (d.cause) parts.push(d.cause);
      if (d.cause === 'threshold') parts.push((d.failures || 0) + '/' + (d.calls || 0) + ' failed');
      if (d.open_until && d.open_until !== '0') parts.push('until ' + clock(Number(d.open_until)));
    }
    if (entry.event === 'override') {
      parts.push(d.mode || '?');
      if (d.until && d.until !== '0') parts.push('until ' + clock(Number(d.until)));
    }
    if (d.by) parts.push('by ' + d.by);
    return parts.join(', ');
  }

  // Token: from the URL fragment (#token=...), kept for this tab only, and the fragment
  // removed so that it does not stay in the address bar or the history.
  function readToken() {
    const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (match) {
      // A malformed fragment (#token=%zz) cannot be decoded: it is taken as typed, so the
      // page still runs and the operator sees what arrived.
      let token = match[1];
      try {
        token = decodeURIComponent(token);
      } catch (malformed) {
        // Kept as typed.
      }
      sessionStorage.setItem('breaker-token', token);
      dropFragment();
    }
    tokenInput.value = sessionStorage.getItem('breaker-token') || '';
  }
  readToken();
  // A fragment changed in the address bar does not reload the page.
  window.addEventListener('hashchange', readToken);
  tokenInput.addEventListener('change', () => sessionStorage.setItem('breaker-token', tokenInput.value));

  function dropFragment() {
    window.history.replaceState(null, '', location.pathname + location.search);
  }

  async function getJson(path) {
    let response;
    try {
      response = await fetch(base + path, { cache: 'no-store' });
    } catch (_) {
      throw new Error('the dashboard cannot be reached');
    }
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) {
      const message = body && body.error ? body.error : 'HTTP ' + response.status;
      throw new Error(message);
    }
    return body;
  }

  function card(name) {
    let c = cards.get(name);
    if (c) return c;
    const root = el('article', 'breaker');
    const head = el('div', 'head');
    const title = el('h3', 'name', name);
    const state = el('span', 'badge state');
    const override = el('span', 'badge override');
    override.hidden = true;
    head.append(title, state, override);
    const conflict = el('p', 'warning conflict');
    conflict.hidden = true;
    const numbers = el('dl', 'numbers');
    const field = (label) => {
      const box = el('div');
      const value = el('dd', null, '-');
      box.append(el('dt', null, label), value);
      numbers.append(box);
      return value;
    };
    const fields = {
      calls: field('calls'),
      failures: field('failures'),
      rate: field('failure rate'),
      openUntil: field('open until'),
      overrideUntil: field('override until'),
      generation: field('generation'),
    };
    const chart = document.createElementNS(SVG, 'svg');
    chart.setAttribute('class', 'chart');
    chart.setAttribute('viewBox', '0 0 300 60');
    chart.setAttribute('preserveAspectRatio', 'none');
    chart.setAttribute('role', 'img');
    const legend = el('div', 'legend');
    const key = (cls, text) => {
      const item = el('span');
      item.append(el('span', 'swatch ' + cls), document.createTextNode(text));
      return item;
    };
    const span = el('span');
    legend.append(key('calls', 'calls'), key('failures', 'failures'), span);
    const transitions = el('ol', 'transitions');
    const buttons = el('div', 'actions');
    const result = el('div', 'result');
    const forInput = el('input');
    forInput.placeholder = 'for (10m)';
    forInput.setAttribute('aria-label', 'override duration');
    for (const [action, label] of [['trip', 'Trip'], ['reset', 'Reset'], ['force-open', 'Force open'],
      ['force-closed', 'Force closed'], ['auto', 'Auto']]) {
      const button = el('button', null, label);
      button.type = 'button';
      button.dataset.action = action;
      button.addEventListener('click', () => act(name, action, forInput.value.trim(), result));
      buttons.append(button);
    }
    buttons.append(forInput);
    buttons.hidden = !actions;
    root.append(head, conflict, numbers, chart, legend, transitions, buttons, result);
    c = { root, title, state, override, conflict, fields, chart, span, transitions, buttons };
    cards.set(name, c);
    return c;
  }

  function drawChart(c, b) {
    const chart = c.chart;
    while (chart.firstChild) chart.firstChild.remove();
    const bucketMs = b.bucket_ms || 1;
    const slots = Math.max(1, Math.min(1000, Math.ceil((b.window_ms || bucketMs) / bucketMs)));
    const buckets = b.buckets || [];
    let last = Math.floor(Date.now() / bucketMs);
    for (const bucket of buckets) last = Math.max(last, Math.floor(bucket.start_ms / bucketMs));
    const first = last - slots + 1;
    const max = Math.max(1, ...buckets.map((bucket) => bucket.calls));
    const width = 300 / slots;
    for (const bucket of buckets) {
      const slot = Math.floor(bucket.start_ms / bucketMs) - first;
      if (slot < 0 || slot >= slots) continue;
      const bar = (cls, value) => {
        const h = Math.max(value > 0 ? 1 : 0, (value / max) * 58);
        const rect = document.createElementNS(SVG, 'rect');
        rect.setAttribute('class', cls);
        rect.setAttribute('x', (slot * width).toFixed(2));
        rect.setAttribute('width', Math.max(width - 0.6, 0.4).toFixed(2));
        rect.setAttribute('y', (60 - h).toFixed(2));
        rect.setAttribute('height', h.toFixed(2));
        const title = document.createElementNS(SVG, 'title');
        title.textContent = clock(bucket.start_ms) + ': ' + bucket.calls + ' calls, ' + bucket.failures + ' failures';
        rect.append(title);
        chart.append(rect);
      };
      bar('calls', bucket.calls);
      bar('failures', bucket.failures);
    }
    c.span.textContent = b.buckets ? 'last ' + Math.round((slots * bucketMs) / 1000) + 's' : 'window not available';
  }

  function update(c, b) {
    const forced = b.override !== 'auto';
    c.state.textContent = b.state;
    c.state.className = 'badge state state-' + b.state;
    c.override.hidden = !forced;
    c.override.textContent = forced ? b.override : '';
    c.root.className = 'breaker is-' + b.state + (forced ? ' is-forced' : '');
    c.root.dataset.state = b.state;
    c.root.dataset.override = b.override;
    c.fields.calls.textContent = String(b.calls);
    c.fields.failures.textContent = String(b.failures);
    c.fields.rate.textContent = b.failure_rate.toFixed(1) + ' %';
    c.fields.openUntil.textContent = b.open_until_ms ? clock(b.open_until_ms) + ' (' + left(b.open_until_ms) + ')' : '-';
    c.fields.overrideUntil.textContent = forced ? (b.override_until_ms ? clock(b.override_until_ms) + ' (' + left(b.override_until_ms) + ')' : 'until auto') : '-';
    c.fields.generation.textContent = String(b.generation);
    c.conflict.hidden = !b.policy_conflict;
    c.conflict.textContent = b.policy_conflict ? '⚠ policy conflict: processes registered this breaker with ' + b.policies.length + ' different policies' : '';
    drawChart(c, b);
    const mine = history.filter((entry) => entry.name === b.name).slice(0, 5);
    c.transitions.replaceChildren(...mine.map((entry) => {
      const item = el('li');
      const when = el('time', null, clock(entry.at_ms));
      when.dateTime = new Date(entry.at_ms).toISOString();
      const details = describe(entry);
      item.append(when, document.createTextNode(entry.event + (details ? ' (' + details + ')' : '')));
      return item;
    }));
    c.buttons.hidden = !actions;
  }

  function showHistory() {
    $('history').replaceChildren(...history.slice(0, 30).map((entry) => {
      const row = el('tr');
      const d = describe(entry);
      row.append(el('td', null, new Date(entry.at_ms).toLocaleString([], { hour12: false })),
        el('td', null, entry.name), el('td', null, entry.event), el('td', null, String(entry.generation)),
        el('td', null, d));
      return row;
    }));
  }

  function outage(message) {
    const banner = $('outage');
    if (message) {
      banner.textContent = 'Outage: ' + message + '. Showing the last state read; retrying every second.';
      banner.hidden = false;
      $('main').classList.add('stale');
    } else {
      banner.hidden = true;
      banner.textContent = '';
      $('main').classList.remove('stale');
    }
  }

  async function act(name, action, duration, result) {
    result.className = 'result';
    const token = tokenInput.value.trim();
    if (!token) {
      result.className = 'result bad';
      result.textContent = 'Enter the operator token at the top of the page.';
      tokenInput.focus();
      return;
    }
    let path = 'api/breakers/' + encodeURIComponent(name) + '/' + action;
    if (duration && action.startsWith('force-')) path += '?for=' + encodeURIComponent(duration);
    result.textContent = action + '…';
    try {
      const response = await fetch(base + path, { method: 'POST', headers: { Authorization: 'Bearer ' + token } });
      let body = null;
      try { body = await response.json(); } catch (_) { /* not JSON */ }
      if (response.ok) {
        result.textContent = 'done: ' + (body && body.action ? body.action : action) + ' at ' + clock(Date.now());
      } else {
        result.className = 'result bad';
        result.textContent = (response.status === 401 ? 'refused: ' : 'failed: ') + (body && body.error ? body.error : 'HTTP ' + response.status);
      }
    } catch (err) {
      result.className = 'result bad';
      result.textContent = 'failed: ' + err.message;
    }
    refresh();
  }

  async function loadConfig() {
    const config = await getJson('api/config');
    actions = Boolean(config.actions);
    $('auth').hidden = !actions;
    $('mode').textContent = actions ? 'actions allowed with the token' : 'read-only';
    $('mode').classList.toggle('enabled', actions);
  }

  let configured = false;
  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    try {
      if (!configured) { await loadConfig(); configured = true; }
      const [breakers, entries] = await Promise.all([getJson('api/breakers'), getJson('api/history?count=200')]);
      history = entries;
      const seen = new Set();
      const grid = $('breakers');
      for (const b of breakers) {
        seen.add(b.name);
        const c = card(b.name);
        update(c, b);
        if (c.root.parentNode !== grid) grid.append(c.root);
      }
      for (const [name, c] of cards) {
        if (!seen.has(name)) { c.root.remove(); cards.delete(name); }
      }
      $('empty').hidden = breakers.length > 0;
      showHistory();
      outage(null);
      $('updated').textContent = 'updated ' + clock(Date.now());
    } catch (err) {
      outage(err.message || String(err));
    }
    timer = setTimeout(refresh, 1000);
  }

  refresh();
})();
