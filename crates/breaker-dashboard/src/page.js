'use strict';
// Every name, message and detail comes from the store and may hold markup: text goes into
// the page only through textContent and attribute setters, never as HTML.
//
// Built for fleets of thousands of breakers: each second the page reads the list once
// (with windows only for a few breakers; the detail view reads its breaker's own), counts it,
// and updates in place only what is on screen. The table draws only the rows in
// view (a fixed row height places them), the cards view draws at most CARD_LIMIT cards, and
// the order of names is worked out again only when the set of names changes.
(function () {
  const base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
  const SVG = 'http://www.w3.org/2000/svg';
  // Up to this many breakers in the store, the automatic view is cards; above, the table.
  const CARDS_UP_TO = 12;
  // The most cards drawn at once: beyond, the page says how to narrow the list.
  const CARD_LIMIT = 60;
  // Rows drawn above and below the ones in view, so that scrolling shows no gap.
  const OVERSCAN = 8;
  const ROW = 34;
  const FILTERS = ['all', 'open', 'half-open', 'closed', 'forced', 'conflict', 'unreadable'];
  const VIEWS = ['auto', 'table', 'cards'];

  const cards = new Map();
  const pool = [];
  // Natural order: svc-2 before svc-10, case and accents aside.
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  let actions = false;
  let history = [];
  let breakers = [];
  let byName = new Map();
  let nameRank = new Map();
  let namesKey = '';
  let shown = [];
  let view = 'auto';
  let filter = 'all';
  let search = '';
  let detailName = null;
  let detailHistory = [];

  const $ = (id) => document.getElementById(id);
  const tokenInput = $('token');

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Sets a node's text only when it changed, so an unchanged row costs no layout.
  function text(node, value) {
    if (node.textContent !== value) node.textContent = value;
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

  function until(ms) {
    return ms ? clock(ms) + ' (' + left(ms) + ')' : '-';
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

  function link(name) {
    return '#/breaker/' + encodeURIComponent(name);
  }

  const unreadable = (b) => b.state === 'unreadable';
  const forced = (b) => !unreadable(b) && b.override !== 'auto';

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

  function dropFragment() {
    window.history.replaceState(null, '', location.pathname + location.search);
  }

  // The view the fragment names: #/breaker/<name> is one breaker, anything else the list.
  function route() {
    const match = /^#\/breaker\/(.*)$/.exec(location.hash);
    let name = null;
    if (match) {
      try {
        name = decodeURIComponent(match[1]);
      } catch (malformed) {
        name = match[1];
      }
    }
    const changed = name !== detailName;
    detailName = name;
    $('list-view').hidden = name !== null;
    $('detail-view').hidden = name === null;
    if (changed) {
      detailHistory = [];
      $('detail-result').textContent = '';
      if (name !== null) window.scrollTo(0, 0);
    }
    render();
    if (changed) {
      if (name === null) document.title = 'breakers';
      refresh();
    }
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

  // ---- The list: counts, filter, order -------------------------------------------------

  function rankOf(b) {
    if (b.state === 'open') return 0;
    if (b.state === 'half-open') return 1;
    return 2;
  }

  function matches(b) {
    if (search && !b.name.toLowerCase().includes(search)) return false;
    switch (filter) {
      case 'all': return true;
      case 'forced': return forced(b);
      case 'conflict': return Boolean(b.policy_conflict);
      default: return b.state === filter;
    }
  }

  // The natural order of every name, worked out again only when names come or go.
  function orderNames() {
    const names = breakers.map((b) => b.name);
    const key = names.length + '\u0000' + names.join('\u0000');
    if (key === namesKey) return;
    namesKey = key;
    names.sort((a, b) => collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0));
    nameRank = new Map(names.map((name, i) => [name, i]));
  }

  function arrange() {
    orderNames();
    shown = breakers.filter(matches);
    shown.sort((a, b) => rankOf(a) - rankOf(b) || nameRank.get(a.name) - nameRank.get(b.name));
  }

  function summarize() {
    const counts = { all: breakers.length, open: 0, 'half-open': 0, closed: 0, forced: 0, conflict: 0, unreadable: 0 };
    for (const b of breakers) {
      if (b.state in counts) counts[b.state] += 1;
      if (forced(b)) counts.forced += 1;
      if (b.policy_conflict) counts.conflict += 1;
    }
    for (const key of FILTERS) {
      text($('count-' + key), String(counts[key]));
      const button = document.querySelector('.summary [data-filter="' + key + '"]');
      button.classList.toggle('zero', key !== 'all' && counts[key] === 0);
      button.classList.toggle('active', key === filter && key !== 'all');
    }
  }

  function health(error) {
    const node = $('health');
    node.classList.toggle('down', Boolean(error));
    text(node, error ? 'store: unreachable' : 'store: answering');
    node.title = error || '';
  }

  function currentView() {
    if (view !== 'auto') return view;
    return breakers.length <= CARDS_UP_TO ? 'cards' : 'table';
  }

  function render() {
    summarize();
    if (detailName !== null) {
      renderDetail();
      return;
    }
    arrange();
    const mode = currentView();
    $('empty').hidden = breakers.length > 0;
    $('nomatch').hidden = breakers.length === 0 || shown.length > 0;
    text($('shown'), breakers.length === 0 ? '' : shown.length === breakers.length
      ? shown.length + ' shown' : shown.length + ' of ' + breakers.length + ' shown');
    $('table-view').hidden = mode !== 'table' || shown.length === 0;
    $('breakers').hidden = mode !== 'cards';
    if (mode === 'table') {
      for (const c of cards.values()) c.root.remove();
      cards.clear();
      $('more').hidden = true;
      $('rows').style.height = shown.length * ROW + 'px';
      drawRows();
    } else {
      renderCards();
    }
    showHistory();
  }

  // ---- The table: only the rows in view exist ------------------------------------------

  function makeRow() {
    const root = el('div', 'row');
    root.setAttribute('role', 'row');
    const cell = (cls) => {
      const span = el('span', cls);
      span.setAttribute('role', 'cell');
      root.append(span);
      return span;
    };
    const name = cell('name');
    const anchor = el('a');
    const flag = el('span', 'flag', '⚠');
    flag.title = 'policy conflict';
    name.append(anchor, flag);
    const stateCell = cell('');
    const state = el('span', 'badge state');
    stateCell.append(state);
    const error = el('span', 'error');
    const override = cell('optional');
    const calls = cell('num');
    const failures = cell('num optional');
    const rateCell = cell('rate');
    const bar = el('span', 'bar');
    const fill = el('span');
    bar.append(fill);
    const rate = el('span', 'value');
    rateCell.append(bar, rate);
    const openUntil = cell('optional');
    const generation = cell('num optional');
    root.append(error);
    return { root, anchor, flag, state, error, override, calls, failures, rateCell, fill, rate, openUntil, generation, name: null };
  }

  function fillRow(r, b, index) {
    const bad = unreadable(b);
    const isForced = forced(b);
    r.root.style.transform = 'translateY(' + index * ROW + 'px)';
    r.root.dataset.index = String(index);
    if (r.name !== b.name) {
      r.name = b.name;
      r.root.dataset.name = b.name;
      r.anchor.textContent = b.name;
      r.anchor.href = link(b.name);
      r.anchor.title = b.name;
    }
    const cls = 'row is-' + b.state + (isForced ? ' is-forced' : '');
    if (r.root.className !== cls) r.root.className = cls;
    r.root.dataset.state = b.state;
    r.root.dataset.override = bad ? '' : b.override;
    r.flag.hidden = !b.policy_conflict;
    text(r.state, b.state);
    const badge = 'badge state state-' + b.state;
    if (r.state.className !== badge) r.state.className = badge;
    for (const node of [r.override, r.calls, r.failures, r.rateCell, r.openUntil, r.generation]) node.hidden = bad;
    r.error.hidden = !bad;
    if (bad) {
      text(r.error, 'cannot be read: ' + (b.error || 'unknown error'));
      r.error.title = b.error || '';
      return;
    }
    text(r.override, isForced ? b.override + (b.override_until_ms ? ' ' + left(b.override_until_ms) : '') : '');
    text(r.calls, String(b.calls));
    text(r.failures, String(b.failures));
    text(r.rate, b.failure_rate.toFixed(1) + ' %');
    const width = Math.max(0, Math.min(100, b.failure_rate)).toFixed(1) + '%';
    if (r.fill.style.width !== width) r.fill.style.width = width;
    text(r.openUntil, b.state === 'open' && b.open_until_ms ? until(b.open_until_ms) : '');
    text(r.generation, String(b.generation));
  }

  function drawRows() {
    const container = $('rows');
    if ($('table-view').hidden) return;
    const top = container.getBoundingClientRect().top;
    const first = Math.max(0, Math.floor(-top / ROW) - OVERSCAN);
    const last = Math.min(shown.length, Math.ceil((window.innerHeight - top) / ROW) + OVERSCAN);
    const count = Math.max(0, last - first);
    while (pool.length < count) {
      const r = makeRow();
      pool.push(r);
      container.append(r.root);
    }
    for (let i = 0; i < pool.length; i++) {
      const r = pool[i];
      if (i < count) {
        r.root.hidden = false;
        fillRow(r, shown[first + i], first + i);
      } else {
        r.root.hidden = true;
      }
    }
  }

  let drawing = false;
  function onScroll() {
    if (drawing || detailName !== null || currentView() !== 'table') return;
    drawing = true;
    requestAnimationFrame(() => { drawing = false; drawRows(); });
  }

  // ---- The cards: for a few breakers ---------------------------------------------------

  function card(name) {
    let c = cards.get(name);
    if (c) return c;
    const root = el('article', 'breaker');
    root.dataset.name = name;
    const head = el('div', 'head');
    const title = el('h3', 'name');
    const anchor = el('a', null, name);
    anchor.href = link(name);
    title.append(anchor);
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
    const key = (cls, label) => {
      const item = el('span');
      item.append(el('span', 'swatch ' + cls), document.createTextNode(label));
      return item;
    };
    const span = el('span');
    legend.append(key('calls', 'calls'), key('failures', 'failures'), span);
    const transitions = el('ol', 'transitions');
    const result = el('div', 'result');
    const buttons = actionButtons(name, result);
    root.append(head, conflict, numbers, chart, legend, transitions, buttons, result);
    c = { root, state, override, conflict, numbers, fields, chart, legend, span, transitions, buttons };
    cards.set(name, c);
    return c;
  }

  function actionButtons(name, result) {
    const buttons = el('div', 'actions');
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
    return buttons;
  }

  // Draws the window's buckets into `chart` (viewBox width x height).
  function drawChart(chart, b, width, height) {
    const bucketMs = b.bucket_ms || 1;
    const slots = Math.max(1, Math.min(1000, Math.ceil((b.window_ms || bucketMs) / bucketMs)));
    const buckets = b.buckets || [];
    let last = Math.floor(Date.now() / bucketMs);
    for (const bucket of buckets) last = Math.max(last, Math.floor(bucket.start_ms / bucketMs));
    const first = last - slots + 1;
    let max = 1;
    for (const bucket of buckets) max = Math.max(max, bucket.calls);
    const slot = width / slots;
    const rects = [];
    for (const bucket of buckets) {
      const at = Math.floor(bucket.start_ms / bucketMs) - first;
      if (at < 0 || at >= slots) continue;
      const bar = (cls, value) => {
        const h = Math.max(value > 0 ? 1 : 0, (value / max) * (height - 2));
        const rect = document.createElementNS(SVG, 'rect');
        rect.setAttribute('class', cls);
        rect.setAttribute('x', (at * slot).toFixed(2));
        rect.setAttribute('width', Math.max(slot - 0.6, 0.4).toFixed(2));
        rect.setAttribute('y', (height - h).toFixed(2));
        rect.setAttribute('height', h.toFixed(2));
        const title = document.createElementNS(SVG, 'title');
        title.textContent = clock(bucket.start_ms) + ': ' + bucket.calls + ' calls, ' + bucket.failures + ' failures';
        rect.append(title);
        rects.push(rect);
      };
      bar('calls', bucket.calls);
      bar('failures', bucket.failures);
    }
    chart.replaceChildren(...rects);
    return b.buckets ? 'last ' + Math.round((slots * bucketMs) / 1000) + 's' : 'window not available';
  }

  function updateCard(c, b) {
    const bad = unreadable(b);
    const isForced = forced(b);
    text(c.state, b.state);
    c.state.className = 'badge state state-' + b.state;
    c.override.hidden = !isForced;
    text(c.override, isForced ? b.override : '');
    c.root.className = 'breaker is-' + b.state + (isForced ? ' is-forced' : '');
    c.root.dataset.state = b.state;
    c.root.dataset.override = bad ? '' : b.override;
    for (const node of [c.numbers, c.chart, c.legend, c.transitions]) node.hidden = bad;
    c.conflict.hidden = !b.policy_conflict && !bad;
    if (bad) {
      text(c.conflict, 'This breaker cannot be read: ' + (b.error || 'unknown error'));
      c.buttons.hidden = true;
      return;
    }
    c.fields.calls.textContent = String(b.calls);
    c.fields.failures.textContent = String(b.failures);
    c.fields.rate.textContent = b.failure_rate.toFixed(1) + ' %';
    c.fields.openUntil.textContent = until(b.open_until_ms);
    c.fields.overrideUntil.textContent = isForced ? (b.override_until_ms ? until(b.override_until_ms) : 'until auto') : '-';
    c.fields.generation.textContent = String(b.generation);
    c.conflict.textContent = b.policy_conflict ? '⚠ policy conflict: processes registered this breaker with ' + b.policies.length + ' different policies' : '';
    c.span.textContent = drawChart(c.chart, b, 300, 60);
    const mine = history.filter((entry) => entry.name === b.name).slice(0, 5);
    c.transitions.replaceChildren(...mine.map(transition));
    c.buttons.hidden = !actions;
  }

  function transition(entry) {
    const item = el('li');
    const when = el('time', null, clock(entry.at_ms));
    when.dateTime = new Date(entry.at_ms).toISOString();
    const details = describe(entry);
    item.append(when, document.createTextNode(entry.event + (details ? ' (' + details + ')' : '')));
    return item;
  }

  function renderCards() {
    const grid = $('breakers');
    const drawn = shown.slice(0, CARD_LIMIT);
    const keep = new Set(drawn.map((b) => b.name));
    for (const [name, c] of cards) {
      if (!keep.has(name)) { c.root.remove(); cards.delete(name); }
    }
    // In order: a card already in its place is not moved.
    let previous = null;
    for (const b of drawn) {
      const c = card(b.name);
      updateCard(c, b);
      const expected = previous ? previous.nextSibling : grid.firstChild;
      if (expected !== c.root) grid.insertBefore(c.root, expected);
      previous = c.root;
    }
    const more = $('more');
    more.hidden = shown.length <= CARD_LIMIT;
    text(more, shown.length > CARD_LIMIT ? 'Showing the first ' + CARD_LIMIT + ' of ' + shown.length +
      ': search or filter to narrow them, or switch to the table.' : '');
  }

  function showHistory() {
    $('history').replaceChildren(...history.slice(0, 8).map((entry) => {
      const row = el('tr');
      const d = describe(entry);
      const name = el('td');
      const anchor = el('a', null, entry.name);
      anchor.href = link(entry.name);
      name.append(anchor);
      row.append(el('td', null, new Date(entry.at_ms).toLocaleString([], { hour12: false })),
        name, el('td', null, entry.event), el('td', null, String(entry.generation)),
        el('td', null, d));
      return row;
    }));
  }

  // ---- One breaker ---------------------------------------------------------------------

  let detailActionsFor = null;
  function renderDetail() {
    const name = detailName;
    const b = byName.get(name);
    document.title = name + ' · breakers';
    text($('detail-name'), name);
    const missing = $('detail-missing');
    missing.hidden = Boolean(b) || breakers.length === 0;
    text(missing, b ? '' : 'No breaker named this is registered in the store.');
    $('detail-body').hidden = !b || unreadable(b);
    const state = $('detail-state');
    state.hidden = !b;
    $('detail-override').hidden = true;
    $('detail-conflict').hidden = true;
    $('detail-error').hidden = !b || !unreadable(b);
    if (!b) return;
    text(state, b.state);
    state.className = 'badge state state-' + b.state;
    if (unreadable(b)) {
      text($('detail-error'), 'This breaker cannot be read: ' + (b.error || 'unknown error'));
      return;
    }
    const isForced = forced(b);
    const override = $('detail-override');
    override.hidden = !isForced;
    text(override, isForced ? b.override : '');
    const conflict = $('detail-conflict');
    conflict.hidden = !b.policy_conflict;
    text(conflict, b.policy_conflict ? '⚠ policy conflict: processes registered this breaker with ' + b.policies.length + ' different policies (below, newest first)' : '');
    const numbers = [
      ['calls', String(b.calls)],
      ['failures', String(b.failures)],
      ['failure rate', b.failure_rate.toFixed(1) + ' %'],
      ['open until', until(b.open_until_ms)],
      ['override', isForced ? b.override + (b.override_until_ms ? ' until ' + until(b.override_until_ms) : ' until auto') : 'auto'],
      ['ramping until', until(b.ramping_until_ms)],
      ['generation', String(b.generation)],
      ['probes in flight', String(b.probes_in_flight)],
      ['first seen', b.first_seen_ms ? new Date(b.first_seen_ms).toLocaleString([], { hour12: false }) : '-'],
      ['last seen', b.last_seen_ms ? new Date(b.last_seen_ms).toLocaleString([], { hour12: false }) : '-'],
    ];
    $('detail-numbers').replaceChildren(...numbers.map(([label, value]) => {
      const box = el('div');
      box.dataset.field = label;
      box.append(el('dt', null, label), el('dd', null, value));
      return box;
    }));
    text($('detail-span'), drawChart($('detail-chart'), b, 600, 120));
    if (detailActionsFor !== name) {
      detailActionsFor = name;
      const result = $('detail-result');
      const buttons = actionButtons(name, result);
      buttons.id = 'detail-actions';
      $('detail-actions').replaceWith(buttons);
    }
    $('detail-actions').hidden = !actions;
    $('detail-policies').replaceChildren(...(b.policies || []).map((policy, i) => {
      const box = el('div');
      if (b.policies.length > 1) box.append(el('p', 'policy-title', i === 0 ? 'policy 1 (newest)' : 'policy ' + (i + 1)));
      const list = el('dl', 'policy');
      for (const [key, value] of Object.entries(policy)) {
        list.append(el('dt', null, key.replace(/_/g, ' ')),
          el('dd', null, typeof value === 'object' ? JSON.stringify(value) : String(value)));
      }
      box.append(list);
      return box;
    }));
    $('detail-history').replaceChildren(...detailHistory.map((entry) => {
      const row = el('tr');
      row.append(el('td', null, new Date(entry.at_ms).toLocaleString([], { hour12: false })),
        el('td', null, entry.event), el('td', null, String(entry.generation)), el('td', null, describe(entry)));
      return row;
    }));
  }

  // ---- Actions, configuration, the loop ------------------------------------------------

  function outage(message) {
    const banner = $('outage');
    health(message);
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

  function showCost(cost) {
    const line = $('cost');
    if (!cost) {
      line.textContent = '';
    } else if (cost.unavailable) {
      line.textContent = 'Redis cost: unavailable';
      line.title = cost.unavailable;
    } else if (cost.measuring) {
      line.textContent = 'Redis cost: measuring…';
    } else {
      line.textContent = 'Redis: ' + (cost.cpu_share * 100).toFixed(1) + ' % of a core · '
        + Math.round(cost.script_calls_per_second) + ' script calls/s · '
        + Math.round(cost.commands_per_second) + ' commands/s';
    }
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
  let generation = 0;
  async function refresh() {
    clearTimeout(timer);
    const mine = ++generation;
    try {
      if (!configured) { await loadConfig(); configured = true; }
      const name = detailName;
      const historyPath = name === null ? 'api/history?count=200'
        : 'api/history?count=50&name=' + encodeURIComponent(name);
      // The breaker in the detail view is read on its own too, with its window (a listing
      // of many breakers leaves windows out).
      const detailPath = name === null ? null : 'api/breakers?name=' + encodeURIComponent(name);
      // What the store costs Redis: a line of its own, never an outage.
      const [listed, entries, detail, cost] = await Promise.all([
        getJson('api/breakers'), getJson(historyPath), detailPath ? getJson(detailPath) : null,
        getJson('api/cost').catch(() => null)]);
      // A later refresh (the view changed meanwhile) has the newer answer.
      if (mine !== generation) return;
      breakers = listed;
      byName = new Map(listed.map((b) => [b.name, b]));
      for (const b of detail || []) if (byName.has(b.name)) byName.set(b.name, b);
      if (name === null) history = entries; else detailHistory = entries;
      outage(null);
      showCost(cost);
      render();
      $('updated').textContent = 'updated ' + clock(Date.now());
    } catch (err) {
      if (mine !== generation) return;
      outage(err.message || String(err));
    }
    timer = setTimeout(refresh, 1000);
  }

  // ---- Controls ------------------------------------------------------------------------

  function setFilter(value) {
    filter = FILTERS.includes(value) ? value : 'all';
    $('filter').value = filter;
    if (detailName !== null) location.hash = '#/';
    render();
  }

  function setView(value) {
    view = VIEWS.includes(value) ? value : 'auto';
    for (const button of document.querySelectorAll('.views button')) {
      button.setAttribute('aria-pressed', String(button.dataset.view === view));
    }
    render();
  }

  $('search').addEventListener('input', (event) => {
    search = event.target.value.trim().toLowerCase();
    render();
  });
  $('filter').addEventListener('change', (event) => setFilter(event.target.value));
  for (const button of document.querySelectorAll('.summary [data-filter]')) {
    button.addEventListener('click', () => setFilter(button.dataset.filter === filter ? 'all' : button.dataset.filter));
  }
  for (const button of document.querySelectorAll('.views button')) {
    button.addEventListener('click', () => setView(button.dataset.view));
  }
  window.addEventListener('scroll', onScroll, { passive: true });
  window.addEventListener('resize', onScroll);
  // A fragment changed in the address bar does not reload the page.
  window.addEventListener('hashchange', () => { readToken(); route(); });
  tokenInput.addEventListener('change', () => sessionStorage.setItem('breaker-token', tokenInput.value));

  readToken();
  route();
  refresh();
})();
