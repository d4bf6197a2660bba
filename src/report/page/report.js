// The tlstrace report page: an overview table of connections and, for a connection opened, its
// ladder diagram (client, proxy as server, proxy as client, server) and panels. The data is the
// JSON block above (src/report/model.cpp); every string from it reaches the page as text
// (textContent), never as markup. Live mode (`proxy --ui`) follows /events for updates (rows) and
// fetches an opened connection's events from conn/ID.
'use strict';

const $ = (sel, el = document) => el.querySelector(sel);
const SVGNS = 'http://www.w3.org/2000/svg';

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ''));
  return e;
}

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Repeated subtrees are {"@": n} into the pool that came with them; an entry refers only to entries
// before it, and each is resolved once (a file edited to loop or to blow up cannot hang the page).
function resolver(pool) {
  const done = new Array(pool.length);
  const walk = (v, limit) => {
    if (Array.isArray(v)) return v.map((x) => walk(x, limit));
    if (v && typeof v === 'object') {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === '@') {
        const i = v['@'];
        if (!Number.isInteger(i) || i < 0 || i >= limit) return '(bad reference)';
        if (done[i] === undefined) done[i] = walk(pool[i], i);
        return done[i];
      }
      const o = {};
      for (const k of keys) o[k] = walk(v[k], limit);
      return o;
    }
    return v;
  };
  return (v) => walk(v, pool.length);
}

// ---- the connections ----

const state = {
  conns: [],
  byKey: new Map(),
  open: new Set(),
  sort: { key: 'id', dir: 1 },
  filter: { text: '', host: '', outcome: '', rating: '', version: '' },
  openAll: false,
};

const keyOf = (c) => `${c.f || 0}:${c.id}`;
const leg = (c, i) => (c.L && c.L[i]) || {};
const failed = (c) => c.o !== 'ok' && c.o !== 'open';

// A connection of the page: its row, and its events ("e") when the data had them. The live page's
// stream carries rows only, with their number of events ("n"): the events come from GET /conn/ID
// when the connection is opened (loadEvents), and again when "n" says there are more.
function addConns(data) {
  const resolve = resolver(Array.isArray(data.pool) ? data.pool : []);
  for (const raw of data.conns || []) {
    // (events are resolved when the connection is opened: 1,000 rows cost their rows only)
    const c = { ...raw, resolve };
    c.key = keyOf(c);
    c.hay = [c.id, c.t, c.cl, c.tg, c.sni, c.o, c.ca, c.au, ...[0, 1].flatMap((i) => Object.values(leg(c, i)))]
      .join(' ').toLowerCase();
    const old = state.byKey.get(c.key);
    if (old && c.e === undefined && old.e !== undefined) Object.assign(c, { e: old.e, resolve: old.resolve, ev: old.ev });
    if (old) state.conns[state.conns.indexOf(old)] = c;
    else state.conns.push(c);
    state.byKey.set(c.key, c);
  }
  // The live proxy keeps the newest --ui-keep connections: the page forgets the older ones too.
  if (data.below > 0) {
    const gone = (c) => !c.f && c.id <= data.below;
    for (const c of state.conns) if (gone(c)) state.byKey.delete(c.key);
    state.conns = state.conns.filter((c) => !gone(c));
  }
}

const eventsStale = (c) => c.n !== undefined && (c.e === undefined || c.e.length < c.n);
const loading = new Set();

// The live page: one connection's events from the proxy, when it is open and they are not all here.
async function loadEvents(c) {
  if (loading.has(c.key) || !eventsStale(c)) return;
  loading.add(c.key);
  try {
    const r = await fetch(`conn/${c.id}`, { cache: 'no-store' });
    const cur = state.byKey.get(c.key);
    if (!cur) return;
    if (r.status === 404) cur.gone = true;
    else if (r.ok) {
      const data = await r.json();
      const full = (data.conns || [])[0];
      if (full && Array.isArray(full.e)) {
        Object.assign(cur, { e: full.e, resolve: resolver(Array.isArray(data.pool) ? data.pool : []), ev: undefined });
        if (cur.e.length > cur.n) cur.n = cur.e.length;  // (the stream's row may come a tick later)
      }
    }
  } catch (e) {
    /* the proxy went away: the row says what is known */
  } finally {
    loading.delete(c.key);
  }
  scheduleRender(true);
}

// Live updates are drawn at most once a second: laying out a table costs the browser in proportion
// to its rows (up to --ui-keep), whatever few of them changed. What the user asked for (a
// connection's events) is drawn at once.
let renderPending = false, lastRender = 0;
function scheduleRender(now = false) {
  if (renderPending) return;
  renderPending = true;
  const wait = now ? 0 : Math.max(0, lastRender + 1000 - performance.now());
  setTimeout(() => requestAnimationFrame(() => { renderPending = false; render(); }), wait);
}

function sortValue(c, key) {
  switch (key) {
    case 'v0': return leg(c, 0).v || '';
    case 'v1': return leg(c, 1).v || '';
    case 'r0': return leg(c, 0).r || '';
    case 'r1': return leg(c, 1).r || '';
    case 'ce': return leg(c, 1).ce || leg(c, 0).ce || '';
    case 'bytes': return (c.up || 0) + (c.dn || 0);
    case 'tg': return c.sni || c.tg || '';
    case 'id': return (c.f || 0) * 1e12 + c.id;
    default: return c[key] ?? '';
  }
}

function matches(c) {
  const f = state.filter;
  if (f.text && !c.hay.includes(f.text.toLowerCase())) return false;
  if (f.host && !`${c.tg || ''} ${c.sni || ''}`.toLowerCase().includes(f.host.toLowerCase())) return false;
  if (f.outcome === 'ok' && c.o !== 'ok') return false;
  if (f.outcome === 'failed' && !failed(c)) return false;
  if (f.outcome && f.outcome !== 'ok' && f.outcome !== 'failed' && c.o !== f.outcome && c.ca !== f.outcome) return false;
  if (f.rating && leg(c, 0).r !== f.rating && leg(c, 1).r !== f.rating) return false;
  if (f.version && leg(c, 0).v !== f.version && leg(c, 1).v !== f.version) return false;
  return true;
}

function events(c) {
  if (!c.ev && c.e) c.ev = c.e.map((ev) => [ev[0], ev[1], ev[2], c.resolve(ev[3])]);
  return c.ev || [];
}

// ---- the overview table ----

function legCell(l) {
  const td = el('td', { class: 'leg' }, l.v || (l.er ? '—' : ''));
  if (l.c) td.append(el('small', {}, l.c));
  if (l.g) td.append(el('small', {}, l.g + (l.b ? ` (${l.b} bits)` : '')));
  if (l.hrr) td.append(el('small', {}, 'HelloRetryRequest'));
  if (l.res) td.append(el('small', {}, 'resumed'));
  return td;
}

const ratingCell = (l) => el('td', { class: l.r ? `rating-${l.r}` : '' }, l.r || '');
const fmtBytes = (n) => (n === undefined ? '' : n < 10000 ? `${n} B` : `${(n / 1024).toFixed(1)} kB`);

function rowOf(c) {
  const tr = el('tr', { class: `row ${failed(c) ? 'failed' : c.o === 'ok' ? 'ok' : ''}`, 'data-key': c.key,
                        'data-id': c.id });
  const target = el('td', {}, c.tg || '');
  if (c.sni && c.sni !== (c.tg || '').replace(/:\d+$/, '')) target.append(el('small', {}, ` sni ${c.sni}`));
  const outcome = el('td', { class: 'outcome' }, c.o || '');
  if (c.ca && c.ca !== c.o) outcome.append(el('small', {}, ` ${c.ca}`));
  if (c.pv) outcome.append(el('small', {}, ` · ${c.pv} policy violation${c.pv > 1 ? 's' : ''}`));
  if (c.au) outcome.append(el('small', {}, ` · audit ${c.au}`));
  tr.append(el('td', {}, `${c.f ? c.f + '/' : ''}${c.id}`), el('td', {}, (c.t || '').slice(11, 23)),
            el('td', {}, c.cl || ''), target, legCell(leg(c, 0)), ratingCell(leg(c, 0)),
            legCell(leg(c, 1)), ratingCell(leg(c, 1)), el('td', {}, leg(c, 1).ce || leg(c, 0).ce || ''),
            el('td', {}, `${fmtBytes(c.up)} / ${fmtBytes(c.dn)}`), el('td', {}, c.d === undefined ? '' : c.d.toFixed(1)),
            outcome);
  tr.addEventListener('click', () => toggle(c.key));
  return tr;
}

// The table's rows made `rows` with as few changes as it takes (a live update adds or replaces a
// few rows: the browser then lays out those, not 1,000 rebuilt ones).
function place(body, rows) {
  const wanted = new Set(rows);
  for (const tr of [...body.children]) if (!wanted.has(tr)) tr.remove();
  let at = body.firstElementChild;
  for (const tr of rows) {
    if (tr === at) at = at.nextElementSibling;
    else body.insertBefore(tr, at);
  }
}

function render() {
  lastRender = performance.now();
  const body = $('#conns tbody');
  const shown = state.conns.filter(matches);
  const { key, dir } = state.sort;
  shown.sort((a, b) => {
    const x = sortValue(a, key), y = sortValue(b, key);
    return (x < y ? -1 : x > y ? 1 : 0) * dir || sortValue(a, 'id') - sortValue(b, 'id');
  });
  const rows = [];
  for (const c of shown) {
    // (a row is made once per version of its connection: a live update rebuilds the changed rows only)
    c.tr ??= rowOf(c);
    rows.push(c.tr);
    if (state.open.has(c.key) || state.openAll) {
      if (eventsStale(c)) loadEvents(c);
      if (c.e === undefined) {
        rows.push(el('tr', { class: 'detail-row loading', 'data-key': c.key },
                       el('td', { class: 'detail', colspan: 12 }, c.gone ? 'no longer kept by the proxy' : 'loading…')));
      } else {
        const evs = events(c);
        if (!c.dr || c.drOf !== evs) { c.dr = detailRow(c); c.drOf = evs; }
        rows.push(c.dr);
      }
    }
  }
  place(body, rows);
  for (const th of document.querySelectorAll('#conns th')) {
    th.classList.toggle('sorted', th.dataset.key === key);
    th.classList.toggle('desc', th.dataset.key === key && dir < 0);
  }
  $('#count').textContent = `${shown.length} of ${state.conns.length} connections`;
  const fails = state.conns.filter(failed).length;
  $('#stats').textContent = `${state.conns.length} connections, ${fails} failed`;
}

function toggle(key) {
  if (state.open.has(key)) state.open.delete(key);
  else state.open.add(key);
  state.openAll = false;
  render();
  writeHash();
}

// ---- the ladder ----

// Lifelines: client, proxy as server (client leg), proxy as client (upstream leg), server.
const X = [90, 320, 460, 690];
const WIDTH = 790, TOP = 46, STEP = 24;
const ends = (legNo, inbound) => (legNo === 1 ? (inbound ? [X[0], X[1]] : [X[1], X[0]])
                                              : (inbound ? [X[3], X[2]] : [X[2], X[3]]));
const fmtMs = (us) => `+${(us / 1000).toFixed(3)} ms`;

function arrow(g, y, [x1, x2], label, cls) {
  const a = svg('g', { class: `arrow ${cls}` });
  const dirn = x2 > x1 ? 1 : -1;
  a.append(svg('line', { x1, y1: y, x2: x2 - dirn * 2, y2: y }),
           svg('path', { d: `M${x2},${y} l${-dirn * 8},-4 v8 z`, fill: 'currentColor' }),
           svg('text', { x: (x1 + x2) / 2, y: y - 4, 'text-anchor': 'middle' }, label));
  g.append(a);
  return a;
}

function noteBox(g, y, x1, x2, label, cls) {
  const n = svg('g', { class: `note ${cls}` });
  n.append(svg('rect', { x: x1, y: y - 13, width: x2 - x1, height: 17, rx: 3 }),
           svg('text', { x: (x1 + x2) / 2, y: y - 1, 'text-anchor': 'middle' }, clip(label, (x2 - x1) / 5.6)));
  g.append(n);
  return n;
}

const clip = (s, n) => (s.length > n ? s.slice(0, Math.max(1, Math.floor(n) - 1)) + '…' : s);
const legSpan = (legNo) => (legNo === 2 ? [X[2] - 60, X[3] + 80] : legNo === 1 ? [X[0] - 20, X[1] + 60] : [X[0], X[3]]);

// One ladder item per event that has one: [svg element] (or null: not drawn).
function drawEvent(g, y, [, legNo, name, f]) {
  const [x1, x2] = legSpan(legNo);
  switch (name) {
    case 'conn.open': return arrow(g, y, [X[0], X[1]], `TCP connect from ${f.client || ''}`, 'tcp');
    case 'conn.refused': return arrow(g, y, [X[1], X[0]], `refused: ${f.reason || ''}`, 'alert');
    case 'proxy.request': return arrow(g, y, [X[0], X[1]], `${f.method || ''} ${f.target || ''}`, 'http');
    case 'proxy.error': return arrow(g, y, [X[1], X[0]], `HTTP ${f.status} ${f.reason || ''}`, 'alert');
    case 'tcp.connect':
      if (f.error) return failMarker(g, y, X[2], `TCP connect to ${f.target || f.peer}: ${f.error}`, '');
      return arrow(g, y, [X[2], X[3]], `TCP connect ${f.peer || ''} (${f.connect_ms ?? '?'} ms)`, 'tcp');
    case 'tls.message': {
      const cls = f.type === 'HelloRetryRequest' ? 'msg hrr' : f.type === 'ChangeCipherSpec' ? 'msg ccs' : 'msg';
      const a = arrow(g, y, ends(legNo, f.dir === 'in'), `${f.type} (${f.length} bytes)`, cls);
      Object.assign(a.dataset, { type: f.type, length: f.length, dir: f.dir });
      return a;
    }
    case 'tls.alert': {
      const a = arrow(g, y, ends(legNo, f.dir === 'in'), `alert ${f.level} ${f.description}`, `alert ${f.level}`);
      Object.assign(a.dataset, { alert: `${f.level} ${f.description}`, dir: f.dir });
      return a;
    }
    case 'tls.established': {
      const res = f.resumed ? ` · resumed${f.resumption?.mechanism ? ` (${f.resumption.mechanism})` : ''}` : '';
      const text = `established ${f.version} ${f.cipher?.name || ''} ${f.group || ''}${res}`;
      return noteBox(g, y, x1 + 20, x2 - 20, text, f.resumed ? 'established resumed' : 'established');
    }
    case 'tls.key_exchange':
      return noteBox(g, y, x1 + 40, x2 - 40, `key exchange ${f.kex} ${f.group} ${f.bits ?? ''} bits: ${f.rating}`, 'kex');
    case 'tls.prime_check':
      return noteBox(g, y, x1 + 40, x2 - 40, `safe-prime test: ${f.safe_prime}, rating ${f.rating}`, 'kex');
    case 'tls.trust':
      return noteBox(g, y, x1 + 40, x2 - 40, f.verified ? 'certificate verified'
                                                        : `certificate not verified: ${f.error || 'hostname mismatch'}`,
                     f.verified ? 'trust' : 'trust policy');
    case 'tls.mirror': return noteBox(g, y, x1 + 40, x2 - 40, 'offer mirrored from the client', 'mirror');
    case 'conn.plaintext': return noteBox(g, y, x1, x2, `plain TCP relay: ${f.reason}`, 'plain');
    case 'tls.error':
      return failMarker(g, y, legNo === 2 ? X[2] : X[1], `${f.cause}${f.origin ? ` (from the ${f.origin} leg)` : ''}: ${f.message ? `at ${f.message}` : f.stage}`, f.hint || '');
    case 'tcp.close': {
      const peer = f.by === 'peer';
      const [a, b] = ends(legNo, peer);
      const label = `${(f.how || '').toUpperCase()} (${f.bytes_in} B in, ${f.bytes_out} B out)`;
      return arrow(g, y, [a, b], label, f.how === 'rst' || f.how === 'error' || f.how === 'timeout' ? 'tcp alert' : 'tcp');
    }
    case 'policy.violation': return noteBox(g, y, x1, x2, `policy ${f.rule}: ${f.message}`, 'policy');
    case 'audit.result': return noteBox(g, y, x1, x2, `audit ${f.scenario}: ${f.verdict} (${f.evidence})`, 'audit');
    case 'conn.close': return noteBox(g, y, X[0], X[3], `closed: ${f.outcome}, ${f.duration_ms} ms`, 'close');
    default: return null;
  }
}

function failMarker(g, y, x, why, hint) {
  const m = svg('g', { class: 'fail', 'data-failure': why });
  const left = x < WIDTH / 2;
  m.append(svg('circle', { cx: x, cy: y - 3, r: 8 }), svg('text', { class: 'x', x, y: y + 1 }, '✕'),
           svg('text', { class: 'why', x: left ? x + 14 : x - 14, y, 'text-anchor': left ? 'start' : 'end' },
               clip(why, 70)));
  g.append(m);
  if (hint) {
    m.append(svg('text', { class: 'hint', x: X[0] - 20, y: y + STEP - 6 }, clip(`hint: ${hint}`, 125)));
    m.dataset.extra = '1';
  }
  return m;
}

function ladder(c, show) {
  const g = svg('g');
  let y = TOP;
  events(c).forEach((ev, i) => {
    const item = drawEvent(g, y + 10, ev);
    if (!item) return;
    item.dataset.i = i;
    item.dataset.leg = ['none', 'client', 'upstream'][ev[1]] || 'none';
    g.append(svg('text', { class: 'time', x: 4, y: y + 10 }, fmtMs(ev[0])));
    item.addEventListener('click', (e) => {
      e.stopPropagation();
      for (const s of g.querySelectorAll('.selected')) s.classList.remove('selected');
      item.classList.add('selected');
      show(ev);
    });
    y += item.dataset.extra ? STEP * 2 : STEP;
  });
  const height = y + 16;
  const s = svg('svg', { class: 'ladder', width: WIDTH, height, viewBox: `0 0 ${WIDTH} ${height}`,
                         'data-conn': c.key });
  ['client', 'proxy (as server)', 'proxy (as client)', 'server'].forEach((name, i) => {
    s.append(svg('text', { class: 'head', x: X[i], y: 16 }, name),
             svg('line', { class: 'lifeline', x1: X[i], y1: 24, x2: X[i], y2: height - 4 }));
  });
  s.append(svg('text', { class: 'head', x: (X[1] + X[2]) / 2, y: 32 }, 'tlstrace'));
  s.append(g);
  return s;
}

// ---- the panels ----

function fieldTree(v) {
  if (v === null || typeof v !== 'object') return document.createTextNode(JSON.stringify(v));
  const ul = el('ul');
  for (const [k, x] of Object.entries(v)) {
    const li = el('li', {}, el('span', { class: 'k' }, Array.isArray(v) ? `[${k}]` : k), ': ');
    li.append(fieldTree(x));
    ul.append(li);
  }
  return ul;
}

function dl(pairs) {
  const d = el('dl');
  for (const [k, v, cls] of pairs) if (v !== undefined && v !== null && v !== '') d.append(el('dt', {}, k), el('dd', cls ? { class: cls } : {}, v));
  return d;
}

const find = (c, name, legNo) => events(c).filter((ev) => ev[2] === name && (legNo === undefined || ev[1] === legNo)).map((ev) => ev[3]);
const legName = (i) => (i === 1 ? 'client leg' : 'upstream leg');

function kexPanel(c, legNo) {
  const kx = find(c, 'tls.key_exchange', legNo).at(-1);
  if (!kx) return null;
  const pc = find(c, 'tls.prime_check', legNo).at(-1);
  const checks = { ...(kx.checks || {}), ...(pc?.checks || {}) };
  const rating = pc?.rating || kx.rating;
  const box = el('div', { class: 'panel kex', 'data-leg': legName(legNo) });
  box.append(dl([['kex', kx.kex], ['group', kx.group], ['bits', kx.bits], ['known group', kx.known_group],
                 ['p', kx.p], ['g', kx.g], ['curve', kx.group && !kx.p ? kx.group : ''],
                 ['HRR asked for', kx.hello_retry_request], ['rating', rating, `rating-${rating}`]]));
  const ul = el('ul', { class: 'plain' });
  for (const [k, ok] of Object.entries(checks)) ul.append(el('li', { class: ok === true ? 'ok' : 'bad' }, `${ok === true ? '✓' : ok === false ? '✗' : '?'} ${k}${typeof ok === 'string' ? `: ${ok}` : ''}`));
  for (const r of pc?.reasons || kx.reasons || []) ul.append(el('li', { class: 'bad' }, r));
  box.append(ul);
  return box;
}

function chainPanel(c) {
  const trust = find(c, 'tls.trust', 2).at(-1);
  const forged = find(c, 'tls.message', 1).filter((f) => f.type === 'Certificate').at(-1);
  const box = el('div', { class: 'panel chain' });
  const list = (title, chain, verdictAt) => {
    if (!Array.isArray(chain) || !chain.length) return;
    box.append(el('b', {}, title));
    const ol = el('ol', { class: 'chain', start: 0 });
    chain.forEach((cert, depth) => {
      const [text, cls] = verdictAt(depth);
      const key = cert.key ? `${cert.key.type} ${cert.key.curve || ''} ${cert.key.bits || ''}` : '';
      ol.append(el('li', {}, el('span', { class: cls }, `depth ${depth}: ${text}`), dl([
        ['subject', cert.subject], ['issuer', cert.issuer], ['valid', `${cert.not_before || ''} → ${cert.not_after || ''}`],
        ['key', key], ['signature', cert.signature_algorithm], ['SAN', (cert.san || []).join(', ')],
        ['sha256', cert.sha256]])));
    });
    box.append(ol);
  };
  if (trust) {
    list(`server's chain (${trust.verified ? 'verified' : 'NOT verified'}${trust.hostname ? `, name ${trust.hostname} ${trust.hostname_match ? 'matches' : 'does not match'}` : ''})`,
         trust.chain, (d) => (trust.verified ? ['ok', 'ok']
           : trust.depth === d ? [trust.error || 'failed here', 'bad'] : trust.depth === undefined && d === 0 ? ['hostname mismatch', 'bad'] : ['—', '']));
  }
  if (forged) list("proxy's forged chain sent to the client", forged.body?.chain, () => [leg(c, 0).ce || 'sent', '']);
  return box.childNodes.length ? box : null;
}

function diffPanel(c) {
  const s = find(c, 'conn.summary').at(-1);
  if (!s) return null;
  const box = el('div', { class: 'panel diff' });
  const ul = el('ul', { class: 'plain' });
  const nf = s.not_forwarded || {};
  const names = { versions: 'versions', cipher_suites: 'cipher suites', groups: 'groups',
                  signature_algorithms: 'signature algorithms', extensions: 'extensions', alpn: 'ALPN protocols' };
  for (const [k, words] of Object.entries(names)) {
    if (Array.isArray(nf[k]) && nf[k].length) ul.append(el('li', {}, `The client offered ${words} the proxy did not pass upstream: ${nf[k].join(', ')}.`));
  }
  if (!ul.childNodes.length) ul.append(el('li', {}, 'Everything the client offered was passed upstream.'));
  for (const d of s.downgrade || []) ul.append(el('li', { class: 'bad downgrade' }, `Downgrade: ${d}`));
  if (!(s.downgrade || []).length) ul.append(el('li', { class: 'ok' }, 'No downgrade.'));
  box.append(ul);
  return box;
}

function findingsPanel(c) {
  const items = [...find(c, 'policy.violation').map((f) => `policy ${f.rule} (${f.severity}): ${f.message} — expected ${f.expected}, observed ${f.observed}`),
                 ...find(c, 'audit.result').map((f) => `audit ${f.scenario}: ${f.verdict} — ${f.evidence}`)];
  if (!items.length) return null;
  const box = el('div', { class: 'panel findings' });
  box.append(el('ul', { class: 'plain' }, ...items.map((t) => el('li', { class: 'bad' }, t))));
  return box;
}

function detailRow(c) {
  const fields = el('div', { class: 'panel fields' }, 'Click a message or a note in the ladder to see its decoded fields.');
  const show = ([us, legNo, name, f]) => {
    fields.replaceChildren(el('b', {}, `${name}${legNo ? ` (${legName(legNo)})` : ''} ${fmtMs(us)}`), fieldTree(f));
  };
  const panels = el('div', { class: 'panels' });
  const add = (title, node) => node && panels.append(el('h3', {}, title), node);
  add('Decoded fields', fields);
  add('Key exchange, client leg', kexPanel(c, 1));
  add('Key exchange, upstream leg', kexPanel(c, 2));
  add('Certificates', chainPanel(c));
  add('Offered vs forwarded', diffPanel(c));
  add('Policy and audit', findingsPanel(c));
  const box = el('div', { class: 'connection' }, el('div', { class: 'ladder-box' }, ladder(c, show)), panels);
  const tr = el('tr', { class: 'detail-row', 'data-key': c.key });
  tr.append(el('td', { class: 'detail', colspan: 12 }, box));
  return tr;
}

// ---- filters, the URL hash, live updates ----

const FILTERS = ['text', 'host', 'outcome', 'rating', 'version'];

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  state.filter.text = p.get('filter') || p.get('text') || '';
  for (const k of FILTERS.slice(1)) state.filter[k] = p.get(k) || '';
  const open = p.get('open') || '';
  state.openAll = open === 'all';
  state.open = new Set(open && open !== 'all' ? open.split(',').map((s) => (s.includes(':') ? s : `0:${s}`)) : []);
  const sort = p.get('sort') || 'id';
  state.sort = { key: sort.replace(/^-/, ''), dir: sort.startsWith('-') ? -1 : 1 };
  for (const k of FILTERS) {
    const input = $(`#f-${k}`);
    if (input) input.value = state.filter[k];
  }
}

function writeHash() {
  const p = new URLSearchParams();
  if (state.filter.text) p.set('filter', state.filter.text);
  for (const k of FILTERS.slice(1)) if (state.filter[k]) p.set(k, state.filter[k]);
  if (state.openAll) p.set('open', 'all');
  else if (state.open.size) p.set('open', [...state.open].map((k) => k.replace(/^0:/, '')).join(','));
  if (state.sort.key !== 'id' || state.sort.dir < 0) p.set('sort', `${state.sort.dir < 0 ? '-' : ''}${state.sort.key}`);
  const h = p.toString();
  history.replaceState(null, '', h ? `#${h}` : location.pathname + location.search);
}

function live() {
  $('#live').hidden = false;
  const status = (s) => { $('#live-state').textContent = s; };
  const es = new EventSource('events');
  es.onopen = () => status('(connected)');
  es.onerror = () => status('(reconnecting)');
  es.addEventListener('conn', (m) => {
    try { addConns(JSON.parse(m.data)); } catch (e) { return; }
    scheduleRender();
  });
  es.addEventListener('stats', (m) => {
    try { $('#dropped').textContent = String(JSON.parse(m.data).dropped ?? 0); } catch (e) { /* ignore */ }
  });
}

// A large report's data is zlib-compressed and base64-encoded (src/report/page.cpp): the browser's
// own DecompressionStream inflates it.
async function loadData() {
  const node = $('#data');
  if (node.dataset.encoding !== 'deflate-base64') return JSON.parse(node.textContent);
  const bin = atob(node.textContent.trim());
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  return JSON.parse(await new Response(stream).text());
}

async function main() {
  const started = performance.now();
  let data = {};
  try { data = await loadData(); } catch (e) { data = { conns: [], notes: [`the embedded data cannot be read: ${e}`] }; }
  addConns(data);
  for (const n of data.notes || []) $('#notes').append(el('li', {}, n));
  if (data.evicted) $('#notes').append(el('li', {}, `${data.evicted} older connections are no longer kept`));
  readHash();
  for (const k of FILTERS) {
    $(`#f-${k}`).addEventListener('input', (e) => { state.filter[k] = e.target.value; render(); writeHash(); });
  }
  $('#filters').addEventListener('submit', (e) => e.preventDefault());
  for (const th of document.querySelectorAll('#conns th')) {
    th.addEventListener('click', () => {
      const k = th.dataset.key;
      state.sort = { key: k, dir: state.sort.key === k ? -state.sort.dir : 1 };
      render();
      writeHash();
    });
  }
  window.addEventListener('hashchange', () => { readHash(); render(); });
  render();
  document.body.dataset.renderMs = (performance.now() - started).toFixed(1);
  if (document.body.dataset.mode === 'live') live();
}

main();
