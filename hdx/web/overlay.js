// The stats overlay: a small box over the top-right of the viewport with the user's own
// numbers and the server's verdict (score, grade, likely cause). It is a DOM element of its
// own, never drawn on the screen canvas, so the pixels snapshot() reads and lossless tiles
// are verified against cannot change because of it; clicks go through it (pointer-events).

/**
 * Is `event` the overlay's shortcut, Ctrl+Alt+S? AltGr (which some systems report as
 * Ctrl+Alt) types a character on many layouts and is left alone.
 * @param {KeyboardEvent} event
 * @returns {boolean}
 */
export function isStatsShortcut(event) {
  return event.code === 'KeyS' && event.ctrlKey && event.altKey && !event.shiftKey
    && !event.metaKey && !(event.getModifierState && event.getModifierState('AltGraph'));
}

const ROWS = [
  ['score', 'Experience'],
  ['cause', 'Likely cause'],
  ['g2g', 'Latency'],
  ['i2p', 'Input to photon'],
  ['fps', 'Frame rate'],
  ['rate', 'Bitrate'],
  ['decode', 'Decode'],
  ['network', 'Network'],
  ['lossless', 'Lossless'],
];

const finite = (v) => typeof v === 'number' && Number.isFinite(v);
// One decimal where it matters (decode times, loopback RTTs), whole ms beyond.
const ms = (v) => (finite(v) ? `${v.toFixed(v < 10 ? 1 : 0)} ms` : '–');
const pct = (v) => (finite(v) ? `${v.toFixed(v < 10 ? 1 : 0)}%` : '–');

export class StatsOverlay {
  /**
   * @param {HTMLElement} box the overlay element (hidden while off)
   * @param {HTMLButtonElement} button the header toggle (aria-pressed follows the state)
   * @param {HTMLElement} anchor the element whose top-right corner the box sits in
   */
  constructor(box, button, anchor) {
    this.box = box;
    this.button = button;
    this.anchor = anchor;
    /** @type {Record<string, HTMLElement>} */
    this.cells = {};
    const list = document.createElement('dl');
    for (const [key, label] of ROWS) {
      const dt = document.createElement('dt');
      dt.textContent = label;
      const dd = document.createElement('dd');
      dd.dataset.stat = key;
      dd.textContent = '–';
      this.cells[key] = dd;
      list.append(dt, dd);
    }
    box.replaceChildren(list);
    button.addEventListener('click', () => this.toggle());
    window.addEventListener('resize', () => this.place());
    this.set(false);
  }

  get on() {
    return !this.box.hidden;
  }

  /**
   * Show or hide the overlay; no argument flips it.
   * @param {boolean} [on]
   * @returns {boolean} whether it is shown now
   */
  toggle(on) {
    this.set(on === undefined ? !this.on : !!on);
    return this.on;
  }

  set(on) {
    this.box.hidden = !on;
    this.button.setAttribute('aria-pressed', String(on));
    if (on) this.place();
  }

  /** Follow the viewport's top edge (the header's height depends on what it shows). */
  place() {
    if (!this.on) return;
    const top = `${Math.round(this.anchor.getBoundingClientRect().top) + 8}px`;
    if (this.box.style.top !== top) this.box.style.top = top;
  }

  /**
   * Show the newest numbers (cheap when hidden: nothing is touched).
   * @param {object | null} server the server's newest `experience` message
   * @param {{fps: number, g2gMs: number | null, i2pMs: number | null, decodeMs: number | null,
   *          dropped: number, lost: number, rttMs: number | null}} client the page's own
   */
  render(server, client) {
    if (!this.on) return;
    this.place();
    const s = server || {};
    const grade = ['good', 'fair', 'poor'].includes(s.grade) ? s.grade : null;
    this.put('score', finite(s.score) ? `${Math.round(s.score)} / 100 · ${grade || '?'}` : 'waiting for server');
    const gradeClass = grade ? `grade-${grade}` : '';
    if (this.cells.score.className !== gradeClass) this.cells.score.className = gradeClass;
    this.put('cause', s.cause ? String(s.cause) : (server ? 'none' : '–'));
    this.put('g2g', `${ms(client.g2gMs)} here${server ? ` · ${ms(s.g2g_ms)} server` : ''}`);
    this.put('i2p', ms(client.i2pMs ?? s.i2p_ms));
    this.put('fps', `${client.fps} fps drawn${finite(s.fps) ? ` · ${s.fps.toFixed(0)} sent` : ''}`);
    this.put('rate', finite(s.kbps) ? `${(s.kbps / 1000).toFixed(2)} Mbit/s` : '–');
    this.put('decode', `${ms(client.decodeMs)} · ${client.dropped} dropped`);
    this.put('network', `rtt ${ms(client.rttMs ?? s.rtt_ms)} · ${client.lost} lost${finite(s.loss_pct) ? ` (${pct(s.loss_pct)})` : ''}`);
    this.put('lossless', finite(s.lossy_pct) || finite(s.ttl_ms)
      ? `lossy ${pct(s.lossy_pct)} of the time${finite(s.ttl_ms) ? ` · exact in ${ms(s.ttl_ms)}` : ''}` : '–');
  }

  put(key, text) {
    if (this.cells[key].textContent !== text) this.cells[key].textContent = text;
  }
}
