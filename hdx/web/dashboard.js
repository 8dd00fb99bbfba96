// The admin dashboard (/dashboard): polls GET /api/sessions?history=1 every 2 s and lists
// the live sessions with their experience score and small history charts.
//
// An admin token comes in the link's fragment (`#token=`), leaves the address bar at once
// and lives in this page's memory only (no storage API of any kind); it travels only as an
// `Authorization: Bearer` header. A local caller needs none unless the server wants tokens.
// A 401/403 is shown with the server's reason and polling stops: retrying cannot help.
import { takeToken, bearer } from './access.js';
import { drawLine, drawStates } from './sparkline.js';

const POLL_MS = 2000;
const MAX_ROWS = 500; // more sessions than this are summarised, not drawn
const SPARKS = [
  ['g2g_ms', 'latency ms', drawLine],
  ['fps', 'fps', drawLine],
  ['kbps', 'kbit/s', drawLine],
  ['lossless', 'lossless', drawStates],
];

const token = takeToken();
const statusLine = document.getElementById('dash-status');
const body = /** @type {HTMLTableSectionElement} */ (document.querySelector('#sessions tbody'));
const empty = document.getElementById('dash-empty');
/** @type {Map<string, {row: HTMLTableRowElement, cells: Record<string, HTMLElement>, sparks: Record<string, HTMLCanvasElement>}>} */
const rows = new Map();
const state = { sessions: [], error: null, polls: 0 };

const num = (v) => typeof v === 'number' && Number.isFinite(v);
const ms = (v) => (num(v) ? `${Math.round(v)} ms` : '–');
const text = (v) => (v === null || v === undefined || v === '' ? '–' : String(v));

/** One line: "82 good · network". */
function scoreLine(t) {
  if (!t || !num(t.score)) return '–';
  return `${Math.round(t.score)} ${text(t.grade)}${t.cause ? ` · ${t.cause}` : ''}`;
}

function latencyLine(t) {
  const g = t && t.g2g_ms;
  const i = t && t.i2p_ms;
  const parts = [];
  if (g && num(g.p50)) parts.push(`${ms(g.p50)} (p95 ${ms(g.p95)})`);
  if (i && num(i.p50)) parts.push(`input ${ms(i.p50)}`);
  return parts.length ? parts.join(' · ') : '–';
}

function bitrateLine(t, s) {
  const kbps = t && num(t.kbps) ? t.kbps : num(s.target_bitrate_bps) ? s.target_bitrate_bps / 1000 : null;
  return kbps === null ? '–' : `${(kbps / 1000).toFixed(2)} Mbit/s`;
}

function losslessLine(s, t) {
  const l = s.lossless;
  let line = 'off';
  if (l && typeof l === 'object') {
    const coverage = l.tiles && num(l.tiles.coverage) ? l.tiles.coverage : null;
    line = l.lossless ? 'exact' : coverage === null ? 'refining' : `refining ${Math.floor(coverage * 100)}%`;
  }
  if (t && num(t.lossy_pct)) line += ` · lossy ${t.lossy_pct.toFixed(0)}% of time`;
  if (t && t.ttl_ms && num(t.ttl_ms.p50)) line += ` · ${ms(t.ttl_ms.p50)} to exact`;
  return line;
}

/** The row for session `id`, made on first sight. */
function rowFor(id) {
  let entry = rows.get(id);
  if (entry) return entry;
  const row = document.createElement('tr');
  row.dataset.session = id;
  const cells = {};
  for (const key of ['user', 'role', 'state', 'score', 'encoder', 'fps', 'latency', 'bitrate', 'lossless', 'history']) {
    const td = document.createElement('td');
    td.dataset.col = key;
    cells[key] = td;
    row.append(td);
  }
  // The user's name over the session id, each in a span of its own.
  cells.name = document.createElement('span');
  cells.sid = document.createElement('span');
  cells.sid.className = 'sid';
  cells.user.append(cells.name, cells.sid);
  const sparks = {};
  for (const [key, label] of SPARKS) {
    const wrap = document.createElement('span');
    wrap.className = 'spark';
    const canvas = document.createElement('canvas');
    canvas.width = 72;
    canvas.height = 22;
    canvas.dataset.series = key;
    canvas.title = label;
    const caption = document.createElement('span');
    caption.textContent = label;
    wrap.append(canvas, caption);
    cells.history.append(wrap);
    sparks[key] = canvas;
  }
  entry = { row, cells, sparks };
  rows.set(id, entry);
  return entry;
}

function put(cell, value) {
  if (cell.textContent !== value) cell.textContent = value;
}

/** Show one session (missing fields are shown as "–"). */
function showSession(s) {
  const t = s.telemetry && typeof s.telemetry === 'object' ? s.telemetry : null;
  const { row, cells, sparks } = rowFor(String(s.id));
  put(cells.name, text(s.user));
  put(cells.sid, text(s.id));
  put(cells.role, text(s.role));
  put(cells.state, text(s.state));
  put(cells.score, scoreLine(t));
  cells.score.className = t && ['good', 'fair', 'poor'].includes(t.grade) ? `grade-${t.grade}` : '';
  put(cells.encoder, text(s.encoder));
  put(cells.fps, t && num(t.fps) ? t.fps.toFixed(0) : '–');
  put(cells.latency, latencyLine(t));
  put(cells.bitrate, bitrateLine(t, s));
  put(cells.lossless, losslessLine(s, t));
  const history = t && t.history && typeof t.history === 'object' ? t.history : {};
  for (const [key, , draw] of SPARKS) {
    const series = Array.isArray(history[key]) ? history[key].slice(-120) : [];
    draw(sparks[key], series);
  }
  return row;
}

function render() {
  const shown = state.sessions.slice(0, MAX_ROWS);
  const live = new Set(shown.map((s) => String(s.id)));
  for (const [id, entry] of rows) {
    if (!live.has(id)) { entry.row.remove(); rows.delete(id); }
  }
  body.replaceChildren(...shown.map(showSession));
  empty.hidden = shown.length > 0 || state.error !== null;
  const more = state.sessions.length > shown.length ? ` (first ${shown.length} shown)` : '';
  const line = state.error ?? `${state.sessions.length} live session${state.sessions.length === 1 ? '' : 's'}${more} · updated ${new Date().toLocaleTimeString()}`;
  put(statusLine, line);
  statusLine.classList.toggle('alert', state.error !== null);
}

/** One poll; resolves to false when polling must stop (the server refused us). */
async function poll() {
  let keepGoing = true;
  try {
    const response = await fetch('/api/sessions?history=1', { headers: bearer(token), cache: 'no-store' });
    const reply = await response.json().catch(() => null);
    if (response.ok && reply && Array.isArray(reply.sessions)) {
      state.sessions = reply.sessions;
      state.error = null;
    } else if (response.status === 401 || response.status === 403) {
      const reason = reply && typeof reply.error === 'string' ? reply.error : response.statusText;
      state.error = `${reason} (${response.status})${token ? '' : ' · open this page with #token=<admin token>'}`;
      state.sessions = [];
      keepGoing = false;
    } else {
      state.error = `the server answered ${response.status}; retrying`;
    }
  } catch (err) {
    state.error = 'the server cannot be reached; retrying';
  }
  state.polls += 1;
  render();
  return keepGoing;
}

async function run() {
  while (await poll()) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
}

window.hdxDashboard = {
  /** {sessions: the last JSON session list, error: what is shown instead or null, polls}. */
  state() {
    return { sessions: state.sessions, error: state.error, polls: state.polls };
  },
};

run();
