/**
 * The status page the controller serves at GET / to a browser: one HTML
 * document with its script and style inline, no build step, no dependency.
 * It reads GET /events (Server-Sent Events, the /overview snapshot every
 * second; polling /overview when the stream is unavailable) and renders every
 * value with textContent, never as HTML.
 *
 * The API token never reaches the page from the server. Reading needs none;
 * an action (abort, switch, restore) asks for it in a dialog, or takes it from
 * the URL fragment (`/#token=…`, which browsers do not send to the server, so
 * it is in no access log), keeps it in sessionStorage (this tab only) and sends
 * it only as an Authorization header to this origin. The Content-Security-Policy
 * allows exactly the inline script and style below (by hash), connections to
 * this origin only, and no framing.
 */
import { createHash } from 'node:crypto';

const STYLE = `
:root { --blue: #2563eb; --green: #16a34a; --bad: #dc2626; --warn: #d97706; --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #f9fafb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; padding: 10px 16px; background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
header h1 { font-size: 16px; margin: 0; }
.badge { display: inline-block; padding: 2px 8px; border-radius: 10px; font-weight: 600; background: var(--line); }
.badge.blue { background: var(--blue); color: #fff; } .badge.green { background: var(--green); color: #fff; }
.badge.ok { background: #dcfce7; color: #166534; } .badge.bad { background: #fee2e2; color: #991b1b; } .badge.warn { background: #fef3c7; color: #92400e; }
#active { font-size: 18px; padding: 4px 14px; }
.spacer { flex: 1; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 12px; padding: 12px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; min-width: 0; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 14px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
th { font-weight: 600; color: var(--muted); font-size: 12px; white-space: nowrap; }
.scroll { overflow-x: auto; }
.muted { color: var(--muted); } .bad { color: var(--bad); } .good { color: var(--green); } .warn { color: var(--warn); }
.bar { height: 10px; background: var(--line); border-radius: 5px; overflow: hidden; margin: 4px 0; }
.bar > div { height: 100%; background: var(--blue); width: 0; transition: width .3s; }
button { font: inherit; padding: 3px 10px; border: 1px solid #9ca3af; border-radius: 4px; background: #fff; cursor: pointer; }
button.danger { border-color: var(--bad); color: var(--bad); }
#msg { padding: 0 16px; }
#msg p { margin: 8px 0; padding: 6px 10px; border-radius: 4px; background: #eff6ff; }
#msg p.bad { background: #fee2e2; }
dialog { border: 1px solid var(--line); border-radius: 6px; max-width: 460px; width: calc(100% - 24px); }
dialog input { width: 100%; font: inherit; padding: 4px; margin: 6px 0; }
dialog menu { display: flex; gap: 8px; justify-content: flex-end; padding: 0; margin: 10px 0 0; }
svg.chart { width: 100%; height: 90px; background: var(--bg); border: 1px solid var(--line); }
svg.chart polyline { fill: none; stroke: var(--blue); stroke-width: 1.5; }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; }
.countdown { font-size: 20px; font-weight: 600; }
`;

const SCRIPT = `
'use strict';
var TOKEN_KEY = 'pgflip.token';
var last = null;
// a token handed over in the URL fragment: kept for this tab, then removed from the address bar
(function () {
  var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    try { sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1])); } catch (e) { /* storage off */ }
    history.replaceState(null, '', location.pathname + location.search);
  }
})();
function token() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } }
function $(id) { return document.getElementById(id); }
function h(tag, attrs) {
  var el = document.createElement(tag);
  if (attrs) for (var k in attrs) {
    if (attrs[k] === undefined || attrs[k] === null) continue;
    if (k === 'class') el.className = attrs[k];
    else if (k === 'onclick') el.addEventListener('click', attrs[k]);
    else el.setAttribute(k, attrs[k]);
  }
  for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
  return el;
}
function add(el, c) {
  if (c === undefined || c === null || c === false) return;
  if (Array.isArray(c)) { c.forEach(function (x) { add(el, x); }); return; }
  el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
}
function fill(id) { var el = $(id); el.replaceChildren(); for (var i = 1; i < arguments.length; i++) add(el, arguments[i]); }
function table(head, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty || 'none');
  return h('div', { class: 'scroll' }, h('table', null,
    h('thead', null, h('tr', null, head.map(function (x) { return h('th', null, x); }))),
    h('tbody', null, rows.map(function (r) { return h('tr', r.attrs || null, (r.cells || r).map(function (x) { return h('td', null, x); })); }))));
}
function dur(ms) {
  if (ms === undefined || ms === null) return '';
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 120000) return (ms / 1000).toFixed(1) + ' s';
  return Math.round(ms / 60000) + ' min';
}
function bytes(n) {
  if (n === undefined || n === null) return '?';
  var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; var i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}
function pct(x) { return x === null || x === undefined ? '–' : (x * 100).toFixed(1) + '%'; }
function time(s) { if (!s) return ''; var d = new Date(s); return d.toLocaleTimeString(); }
function when(s) { if (!s) return ''; var d = new Date(s); return d.toLocaleDateString() + ' ' + d.toLocaleTimeString(); }
function yes(b, t, f, cls) { return h('span', { class: b ? (cls || 'good') : 'bad' }, b ? t : f); }
function bar(frac) { var inner = h('div'); inner.style.width = Math.max(0, Math.min(1, frac || 0)) * 100 + '%'; return h('div', { class: 'bar', role: 'progressbar', 'aria-valuenow': Math.round((frac || 0) * 100) }, inner); }
function stateClass(s) { return s === 'completed' ? 'good' : s === 'running' || s === 'queued' ? 'warn' : s === 'done' || s === 'skipped' ? 'muted' : 'bad'; }

function chart(points) {
  var ns = 'http://www.w3.org/2000/svg';
  var svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'chart'); svg.setAttribute('viewBox', '0 0 300 90'); svg.setAttribute('preserveAspectRatio', 'none');
  if (points.length > 1) {
    var t0 = points[0].t, t1 = points[points.length - 1].t, max = 0;
    points.forEach(function (p) { if (p.seconds > max) max = p.seconds; });
    max = max || 1;
    var line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', points.map(function (p) {
      return ((p.t - t0) / Math.max(1, t1 - t0) * 300).toFixed(1) + ',' + (88 - p.seconds / max * 84).toFixed(1);
    }).join(' '));
    svg.appendChild(line);
  }
  return svg;
}

function renderPair(s) {
  var p = s.pair;
  var a = $('active'); a.textContent = p.active; a.className = 'badge ' + p.active;
  $('epoch').textContent = 'epoch ' + p.epoch;
  var hl = $('health'); hl.textContent = p.health; hl.className = 'badge ' + (p.health === 'ok' ? 'ok' : 'bad');
  $('leader').textContent = p.leader ? '' : 'not the leader';
  $('flipping').textContent = p.flipInProgress ? 'flip in progress' : '';
  var rows = ['blue', 'green'].map(function (side) {
    var v = s.sides[side]; var t = (s.traffic || {})[side];
    return { attrs: { 'data-side': side }, cells: [
      h('span', { class: 'badge ' + (v.active ? side : '') }, side + (v.active ? ' (active)' : '')),
      v.up ? h('span', { class: 'good' }, 'up ' + (v.latencyMs !== undefined ? v.latencyMs + ' ms' : '')) : h('span', { class: 'bad', title: v.error || '' }, 'down'),
      h('span', { title: v.version || '' }, (v.version || '').split(' ')[0]),
      v.fenced === null || v.fenced === undefined ? h('span', { class: 'muted' }, '?') : yes(!v.fenced, 'no', 'fenced', 'muted'),
      t ? t.qps + ' q/s' : '', t ? pct(t.errorRate) : '', t && t.p95Ms !== null ? t.p95Ms + ' ms' : '',
    ] };
  });
  var d = s.drift; var drift;
  if (!d) drift = h('p', { class: 'muted' }, 'schema drift: not checked yet');
  else if (d.same) drift = h('p', { class: 'good' }, 'schema: the same on both sides (checked ' + time(d.checkedAt) + ')');
  else drift = h('div', null, h('p', { class: 'warn' }, 'schema differs between the sides (checked ' + time(d.checkedAt) + '; a risky migration rebuilds the idle side from the active one)'),
    table(['table', 'blue', 'green'],
      d.onlyOn.blue.map(function (t) { return [t, 'present', 'missing']; })
        .concat(d.onlyOn.green.map(function (t) { return [t, 'missing', 'present']; }))
        .concat(d.differ.map(function (x) { return [x.table, x.blue, x.green]; }))));
  fill('pair', h('h2', null, 'Pair'), table(['side', 'health', 'version', 'fenced', 'traffic', 'errors', 'p95'], rows), drift);
}

function renderFleet(s) {
  fill('fleet', h('h2', null, 'Fleet'), table(['proxy', 'side', 'sessions (client / held / pinned)', 'last pause'], s.fleet.map(function (p) {
    var lp = p.lastPause;
    return [p.id + (p.reachable ? '' : ' (unreachable)'),
      p.activeSide ? h('span', { class: 'badge ' + p.activeSide }, p.activeSide + ' @' + p.epoch) : '',
      (p.sessions !== undefined ? p.sessions : '?') + ' / ' + (p.held !== undefined ? p.held : '?') + ' / ' + (p.pinned !== undefined ? p.pinned : '?'),
      lp ? dur(lp.ms) + ' ' + lp.from + '→' + lp.target + ' (' + lp.how + ', ' + time(lp.at) + ')' : h('span', { class: 'muted' }, 'none yet')];
  }), 'no proxy registered'));
}

function renderMigration(s) {
  var m = s.migration;
  if (!m) { fill('migration', h('h2', null, 'Migration'), h('p', { class: 'muted' }, 'none running')); return; }
  var parts = [h('h2', null, 'Migration'),
    h('div', { class: 'kv' }, 'name', h('strong', { id: 'migration-name' }, m.name), 'class', m.type + (m.classification && m.classification !== m.type ? ' (found ' + m.classification + ')' : ''),
      'state', h('span', { class: stateClass(m.state) }, m.state + (m.abortRequested ? ' (abort requested)' : '')), 'side', m.side || '', 'started', when(m.startedAt)),
    h('div', null, 'progress ' + Math.round(m.progress * 100) + '%', bar(m.progress))];
  if (m.copy) parts.push(h('div', null, 'copy: ' + (m.copy.rows !== undefined ? m.copy.rows + ' rows, ' : '') + bytes(m.copy.bytes) + (m.copy.totalBytes ? ' of ' + bytes(m.copy.totalBytes) : '') + ', ' + Math.round(m.copy.fraction * 100) + '%', bar(m.copy.fraction)));
  if (m.lag || s.lagSeries.length) parts.push(h('div', null, 'sync lag: ' + (m.lag ? m.lag.seconds.toFixed(2) + ' s, ' + bytes(m.lag.bytes) : ''), chart(s.lagSeries)));
  var w = s.watch;
  if (w) {
    var left = Math.max(0, Math.round((Date.parse(w.endsAt) - Date.now()) / 1000));
    var th = w.thresholds;
    parts.push(h('div', { id: 'watch' }, h('h2', null, 'Watch window on ' + w.side),
      h('div', { class: 'countdown' }, left + ' s left of ' + w.windowSeconds + ' s'),
      table(['', 'now', 'rolls back above'], [
        ['error rate', h('span', { class: w.errorRate !== null && w.errorRate > th.errorRate ? 'bad' : '' }, pct(w.errorRate)), pct(th.errorRate)],
        ['p95 latency', h('span', { class: w.p95Ms !== null && th.p95LimitMs !== null && w.p95Ms > th.p95LimitMs ? 'bad' : '' }, w.p95Ms === null ? '–' : w.p95Ms + ' ms'),
          th.p95LimitMs === null ? 'no baseline' : th.latencyFactor + '× baseline ' + th.baselineP95Ms + ' ms = ' + th.p95LimitMs.toFixed(1) + ' ms'],
        ['health checks', '', th.healthFailureLimit + ' consecutive failures'],
      ])));
  }
  parts.push(h('h2', null, 'Steps'), table(['step', 'state', 'took', 'detail'], m.steps.map(function (st) {
    return [st.name, h('span', { class: stateClass(st.state) }, st.state), st.durationMs !== undefined ? dur(st.durationMs) : st.state === 'running' ? dur(Date.now() - Date.parse(st.startedAt)) + '…' : '', st.detail || ''];
  })));
  if (m.verify && m.verify.length) parts.push(h('h2', null, 'Verify'), table(['table', 'rows (source / target)', 'checksums'], m.verify.map(function (v) {
    return [v.table, v.sourceRows + ' / ' + v.targetRows, v.equal ? h('span', { class: 'good' }, 'match') : h('span', { class: 'bad' }, 'differ' + (v.firstDifference ? ' at ' + v.firstDifference : ''))];
  })));
  if (m.errors && m.errors.length) parts.push(h('p', { class: 'bad' }, m.errors.join('; ')));
  if (m.state === 'running' || m.state === 'queued') parts.push(h('p', null, h('button', { class: 'danger', id: 'abort', onclick: function () {
    confirmAction('Abort migration ' + m.name + '? It goes back to the state before it.', 'POST', '/migrations/' + encodeURIComponent(m.id) + '/abort', {});
  } }, 'Abort')));
  fill('migration', parts);
}

function renderHistory(s) {
  var hs = s.history;
  fill('history', h('h2', null, 'Migrations'),
    table(['when', 'name', 'class', 'outcome', 'took', 'pause'], hs.migrations.map(function (m) {
      return [when(m.createdAt), m.name + (m.dryRun ? ' (dry run)' : ''), m.type, h('span', { class: stateClass(m.state), title: m.outcome || '' }, m.state), dur(m.durationMs), m.pauseMs !== undefined ? dur(m.pauseMs) : ''];
    }), 'no migration yet'));
  fill('flips', h('h2', null, 'Flips'),
    h('div', { id: 'flip-list' }, table(['when', 'flip', 'outcome', 'pause', 'migration'], hs.flips.map(function (f) {
      return [when(f.at), f.kind === 'hold' ? 'hold on ' + f.from : f.from + ' → ' + f.target, f.committed ? h('span', { class: 'good' }, 'epoch ' + f.epoch) : h('span', { class: 'bad', title: f.reason || '' }, 'aborted'), f.pauseMs !== undefined ? dur(f.pauseMs) : '', f.migration || 'manual'];
    }), 'no flip yet')));
  fill('points', h('h2', null, 'Rollback points'), h('div', { id: 'rollback-points' }, table(['taken', 'side', 'database', ''], hs.rollbackPoints.map(function (p) {
      return [when(p.createdAt), p.side, p.database, h('button', { class: 'danger restore', 'data-id': p.id, onclick: function () {
        confirmAction('Restore ' + p.side + ' from ' + p.id + '? This replaces the schema and data of ' + p.side + ' (' + p.database + ') with the rollback point.', 'POST', '/rollback-points/' + encodeURIComponent(p.id) + '/restore', { confirm: true });
      } }, 'Restore…')];
    }), 'no rollback point')),
    h('p', null, h('button', { id: 'switch', onclick: function () {
      var to = s.pair.active === 'blue' ? 'green' : 'blue';
      confirmAction('Switch all traffic to ' + to + '? A manual flip through every proxy.', 'POST', '/switch', { target: to });
    } }, 'Switch to ' + (s.pair.active === 'blue' ? 'green' : 'blue') + '…')));
}

function renderAudit(s) {
  fill('audit', h('h2', null, 'Audit log'), table(['when', 'who', 'action', 'target', 'outcome'], s.audit.map(function (a) {
    return [when(a.at), a.who + (a.via ? ' (' + a.via + ')' : ''), a.action, a.target || '', h('span', { class: /^denied|^error/.test(a.outcome) ? 'bad' : '' }, a.outcome)];
  }), 'no entry yet'));
}

function render(s) {
  last = s;
  [renderPair, renderFleet, renderMigration, renderHistory, renderAudit].forEach(function (f) {
    try { f(s); } catch (e) { console.error(e); }
  });
  $('updated').textContent = 'updated ' + time(s.at);
}

function say(text, bad) {
  var p = h('p', { class: bad ? 'bad' : '' }, text);
  $('msg').replaceChildren(p);
}

var pending = null;
function confirmAction(text, method, path, body) {
  pending = { method: method, path: path, body: body };
  $('confirm-text').textContent = text;
  $('confirm-token').value = token();
  $('confirm').showModal();
}
function runPending() {
  var a = pending; pending = null;
  var t = $('confirm-token').value.trim();
  if (t) { try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* storage off */ } }
  var headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (t) headers.authorization = 'Bearer ' + t;
  say(a.method + ' ' + a.path + '…');
  fetch(a.path.slice(1), { method: a.method, headers: headers, body: JSON.stringify(a.body) }).then(function (r) {
    return r.json().catch(function () { return {}; }).then(function (b) {
      if (r.ok) say(a.method + ' ' + a.path + ': done ' + JSON.stringify(b));
      else {
        if (r.status === 401 || r.status === 403) { try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* storage off */ } }
        say(a.method + ' ' + a.path + ': refused (' + r.status + '): ' + (b.error || r.statusText), true);
      }
    });
  }, function (e) { say(a.method + ' ' + a.path + ': ' + e.message, true); });
}

function connect() {
  var live = $('live');
  if (!window.EventSource) return poll();
  var es = new EventSource('events');
  es.addEventListener('overview', function (ev) { live.textContent = 'live'; live.className = 'badge ok'; render(JSON.parse(ev.data)); });
  es.onerror = function () { live.textContent = 'reconnecting'; live.className = 'badge warn'; };
}
function poll() {
  fetch('overview', { headers: { accept: 'application/json' } }).then(function (r) { return r.json(); }).then(function (s) {
    $('live').textContent = 'polling'; render(s);
  }, function () { $('live').textContent = 'unreachable'; $('live').className = 'badge bad'; }).finally(function () { setTimeout(poll, 2000); });
}

document.addEventListener('DOMContentLoaded', function () {
  $('confirm-ok').addEventListener('click', function (e) { e.preventDefault(); $('confirm').close(); runPending(); });
  $('confirm-cancel').addEventListener('click', function (e) { e.preventDefault(); pending = null; $('confirm').close(); });
  $('forget').addEventListener('click', function () { try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* storage off */ } say('token forgotten for this tab'); });
  // the watch countdown and running step timers move between snapshots
  setInterval(function () { if (last) { try { renderMigration(last); } catch (e) { /* next snapshot */ } } }, 1000);
  connect();
});
`;

const BODY = `
<header>
  <h1>pgflip</h1>
  <span>active</span><span id="active" class="badge">…</span><span id="epoch"></span>
  <span id="health" class="badge"></span><span id="leader" class="bad"></span><span id="flipping" class="warn"></span>
  <span class="spacer"></span>
  <span id="updated" class="muted"></span><span id="live" class="badge">connecting</span>
  <button id="forget" title="remove the API token this tab keeps">forget token</button>
</header>
<div id="msg" role="status" aria-live="polite"></div>
<main>
  <section id="pair"><h2>Pair</h2></section>
  <section id="fleet"><h2>Fleet</h2></section>
  <section id="migration" class="wide"><h2>Migration</h2></section>
  <section id="history"><h2>Migrations</h2></section>
  <section id="flips"><h2>Flips</h2></section>
  <section id="points"><h2>Rollback points</h2></section>
  <section id="audit" class="wide"><h2>Audit log</h2></section>
</main>
<dialog id="confirm">
  <form method="dialog">
    <p id="confirm-text"></p>
    <label>API token (PGFLIP_API_TOKEN; kept for this tab only)
      <input id="confirm-token" type="password" autocomplete="off" spellcheck="false"></label>
    <menu><button id="confirm-cancel" value="cancel">Cancel</button><button id="confirm-ok" class="danger" value="ok">Confirm</button></menu>
  </form>
</dialog>
`;

const hash = (s: string): string => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

let cached: { html: string; csp: string } | undefined;

export function statusPage(): { html: string; csp: string } {
  cached ??= {
    html: `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`
      + `<title>pgflip status</title><link rel="icon" href="data:,"><style>${STYLE}</style></head><body>${BODY}<script>${SCRIPT}</script></body></html>\n`,
    csp: [
      "default-src 'none'", `script-src ${hash(SCRIPT)}`, `style-src ${hash(STYLE)}`, "connect-src 'self'", "img-src 'self' data:",
      "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
    ].join('; '),
  };
  return cached;
}
