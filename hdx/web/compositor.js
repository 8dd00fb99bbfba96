// What the screen shows: each decoded video frame, with exact lossless tiles drawn over it.
//
// Rules (the Python twin is hdx/client/compositor.py; docs/protocol.md explains them):
// - A frame is known by pts = (rtp - origin) mod 2^32; the server sends the origin and
//   announces every frame, with the tiles it changes, before the frame's packets leave.
// - Before drawing a frame we wait (briefly) for its announcement. Drawing it then drops every
//   overlay cut from an older frame than a change announced up to that frame. A frame we
//   cannot identify drops every overlay: stale pixels are worse than lossy ones.
// - A tile already outdated by an announced change is not drawn (nack 'stale').
// - After drawing a tile we read back the screen's pixels, hash them and ack; only the
//   server's 'verified' reply marks the tile verified. LOSSLESS is claimed only when every
//   visible tile is verified, nothing announced is still to be drawn, and the view is 1:1.

import { Reassembler, unpackDirty } from './tiles.js';
import { TileDecoder } from './tile-decoder.js';

const HOLD_MS = 250;
const HALF = 0x80000000;

/** True when serial number `a` is later than `b` (RTP-style, mod 2^32). */
function later(a, b) {
  const d = (a - b) >>> 0;
  return d !== 0 && d < HALF;
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  let hex = '';
  for (const b of digest) hex += b.toString(16).padStart(2, '0');
  return hex;
}

// A 2x2 lossless JPEG XL (red, green / blue, #112233): decoding it exactly proves support.
const JXL_PROBE = '/woIEBAJCAIBANACSxibnHGEAziAAzggSsA5BQEAIESACBABIkDk+Zd7+h5aZ+9TVXVvkiQJAXV3d3d39////1v1ZmZmZuD//Xv+e2jMOeda+9ybJElCQFVVVVVV9f///9z7uru7u+H//Xv+e2jMOeda+9ybJElCQFVVVVVV9f///9z7uru7u+H//Xv+e2jMOeda+9ybJElCQFVVVVVV9f///9z7uru7uy8QBQB3cXAf/dzF0X/4O/yPy3s4+qM5';
const JXL_PIXELS = [255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 17, 34, 51, 255];

/** Tile formats this browser decodes exactly (sent to the server as `caps`). */
export async function decodableFormats() {
  const formats = ['png', 'jls', 'raw', 'zstd'];
  try {
    const bytes = Uint8Array.from(atob(JXL_PROBE), (ch) => ch.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/jxl' }),
      { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    const canvas = document.createElement('canvas');
    canvas.width = 2;
    canvas.height = 2;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    const px = ctx.getImageData(0, 0, 2, 2).data;
    if (JXL_PIXELS.every((v, i) => px[i] === v)) formats.unshift('jxl');
  } catch (err) {
    // no JPEG XL here: PNG carries colour tiles
  }
  return formats;
}

export class Compositor {
  /**
   * @param {HTMLCanvasElement} screen the canvas the user sees (and snapshot() reads)
   * @param {HTMLCanvasElement} tint a canvas over it for the debug tint (never read)
   * @param {(msg: object) => void} send control-channel sender
   */
  constructor(screen, tint, send) {
    this.screen = screen;
    this.ctx = screen.getContext('2d', { alpha: false, willReadFrequently: true });
    this.tint = tint;
    this.send = send;
    this.enabled = false;
    this.canVerify = typeof crypto !== 'undefined' && !!crypto.subtle;
    this.debugTint = false;
    this.window = null; // {center, width} for 16-bit display; null = full range
    this.refreshAskedAt = -Infinity;
    /** Exact tiles were dropped for an unidentified frame and the server was not told yet. */
    this.dropUnreported = false;
    /** Why exact tiles are not the exact desktop (server's `fidelity`), or null. */
    this.fidelityReason = null;
    /** @type {((state: object) => void) | null} called whenever the lossless state is re-derived */
    this.onStateChange = null;
    /** @type {((ms: number) => void) | null} called once per change that became lossless */
    this.onLossless = null;
    this.decoder = new TileDecoder();
    this.reset(0, 0, 8, 64);
  }

  /** Start over for a desktop of this size; `keepStream` keeps what is known about the video
   * stream (its origin and announcements) across a resize. */
  reset(width, height, bits, tile, keepStream = false) {
    this.width = width;
    this.height = height;
    this.bits = bits;
    this.tile = tile;
    this.cols = Math.ceil(width / tile);
    this.rows = Math.ceil(height / tile);
    const n = this.cols * this.rows;
    this.overlayBase = new Float64Array(n).fill(-1);
    this.overlayId = new Float64Array(n).fill(-1);
    this.verified = new Uint8Array(n);
    this.lastChange = new Float64Array(n).fill(-1);
    this.layer = document.createElement('canvas');
    this.layer.width = Math.max(width, 1);
    this.layer.height = Math.max(height, 1);
    this.layerCtx = this.layer.getContext('2d', { alpha: false });
    this.samples16 = bits > 8 ? new Uint16Array(width * height) : null;
    if (!keepStream) {
      this.origin = null;
      this.firstAnnounced = null;
      this.lastAnnounced = null;
    }
    /** @type {{pts: number, dirty: Uint8Array}[]} */
    this.pending = [];
    this.shownPts = null;
    this.reassembler = new Reassembler();
    this.tileQueue = Promise.resolve();
    /** @type {Set<() => void>} */
    this.waiters = new Set();
    this.counters = { tilesDrawn: 0, stale: 0, broken: 0, malformed: 0, invalidated: 0, unknownFrames: 0, held: 0, refreshes: 0 };
    this.changedAt = performance.now();
    this.timeToLosslessMs = null;
    this.wasLossless = false;
  }

  /** The server's hello. */
  configure(hello) {
    this.reset(hello.width, hello.height, hello.bits || 8, hello.tile || 64);
    this.enabled = !!hello.lossless;
  }

  setOrigin(origin) {
    this.origin = origin >>> 0;
    this.wake();
  }

  /** A frame announcement {pts, dirty?, rows?, cols?}. */
  announce(msg) {
    const pts = msg.pts >>> 0;
    if (this.firstAnnounced === null) this.firstAnnounced = pts;
    this.lastAnnounced = pts;
    if (this.enabled && typeof msg.dirty === 'string') {
      let dirty;
      if (msg.rows === this.rows && msg.cols === this.cols) {
        dirty = unpackDirty(msg.dirty, this.rows, this.cols);
      } else {
        dirty = new Uint8Array(this.rows * this.cols).fill(1); // another grid: all changed
      }
      let any = false;
      for (let i = 0; i < dirty.length; i++) {
        if (!dirty[i]) continue;
        any = true;
        if (this.lastChange[i] < 0 || later(pts, this.lastChange[i])) this.lastChange[i] = pts;
      }
      if (any) { // a repeat of the same picture (settle, refresh, IDR) changes nothing
        this.pending.push({ pts, dirty, at: performance.now() });
        if (this.pending.length > 1024) this.applyChange(this.pending.shift());
        this.changedAt = performance.now();
        this.wasLossless = false;
      }
    }
    this.wake();
  }

  wake() {
    for (const resolve of this.waiters) resolve();
    this.waiters.clear();
  }

  ptsOf(rtp) {
    if (this.origin === null || rtp === undefined || rtp === null) return null;
    return (rtp - this.origin) >>> 0;
  }

  isAnnounced(pts) {
    return pts !== null && this.lastAnnounced !== null &&
      !later(this.firstAnnounced, pts) && !later(pts, this.lastAnnounced);
  }

  /**
   * Draw a decoded video frame (a VideoFrame or a <video>), then the valid overlays.
   * `canHold`: the caller keeps `source` alive until this resolves.
   */
  async present(source, width, height, rtp, canHold) {
    if (this.screen.width !== width || this.screen.height !== height) {
      this.screen.width = width;
      this.screen.height = height;
      this.tint.width = width;
      this.tint.height = height;
      if (this.enabled && (width !== this.width || height !== this.height)) {
        this.reset(width, height, this.bits, this.tile, true);
      }
      this.dropAll(); // resizing cleared the canvas, and with it every exact tile
    }
    let pts = this.ptsOf(rtp);
    if (canHold && this.enabled && !this.isAnnounced(pts)) {
      this.counters.held += 1;
      const until = performance.now() + HOLD_MS;
      while (!this.isAnnounced(pts) && performance.now() < until) {
        await new Promise((resolve) => {
          this.waiters.add(resolve);
          setTimeout(resolve, until - performance.now());
        });
        pts = this.ptsOf(rtp);
      }
    }
    if (!this.enabled) {
      this.ctx.drawImage(source, 0, 0);
      return;
    }
    if (this.isAnnounced(pts)) {
      while (this.pending.length && !later(this.pending[0].pts, pts)) this.applyChange(this.pending.shift());
      this.shownPts = pts;
    } else {
      this.dropAll();
      this.shownPts = null;
      this.counters.unknownFrames += 1;
      this.dropUnreported = true; // the server thinks those tiles verified: tell it
      this.askForRefresh(); // a still desktop sends no new frame by itself
    }
    this.drawVideoAroundOverlays(source);
    this.refreshState();
  }

  /**
   * Draw the video only where no lossless overlay is: the screen canvas keeps the exact pixels
   * of overlay tiles between frames, so overlays are not drawn again for every video frame.
   * One clipped drawImage (pixel-aligned rectangles clip exactly): drawing many sub-rectangles
   * of a VideoFrame costs a conversion each and brought the page to 4 fps.
   */
  drawVideoAroundOverlays(source) {
    let overlays = 0;
    for (let i = 0; i < this.overlayBase.length; i++) if (this.overlayBase[i] >= 0) overlays++;
    if (overlays === 0) {
      this.ctx.drawImage(source, 0, 0);
      return;
    }
    if (overlays === this.overlayBase.length) return; // every tile exact: nothing to draw
    this.ctx.save();
    this.ctx.beginPath();
    this.forEachRun(false, (x, y, w, h) => this.ctx.rect(x, y, w, h));
    this.ctx.clip();
    this.ctx.drawImage(source, 0, 0);
    this.ctx.restore();
  }

  /** Ask the server for the picture again (at most twice a second). */
  askForRefresh() {
    const now = performance.now();
    if (now - this.refreshAskedAt < 500) return;
    this.refreshAskedAt = now;
    this.counters.refreshes += 1;
    if (this.dropUnreported) {
      this.dropUnreported = false;
      this.send({ t: 'refresh', dropped: true });
    } else {
      this.send({ t: 'refresh' });
    }
  }

  /** Called periodically: an announced change whose frame never came means a lost frame. */
  watchdog() {
    if (this.enabled && (this.dropUnreported
        || (this.pending.length && performance.now() - this.pending[0].at > 500))) {
      this.askForRefresh();
    }
  }

  applyChange({ pts, dirty }) {
    for (let i = 0; i < dirty.length; i++) {
      if (dirty[i] && this.overlayBase[i] >= 0 && later(pts, this.overlayBase[i])) {
        this.overlayBase[i] = -1;
        this.overlayId[i] = -1;
        this.verified[i] = 0;
        this.counters.invalidated += 1;
      }
    }
  }

  dropAll() {
    this.overlayBase.fill(-1);
    this.overlayId.fill(-1);
    this.verified.fill(0);
  }

  redrawOverlays() {
    this.forEachRun(true, (x, y, w, h) => this.ctx.drawImage(this.layer, x, y, w, h, x, y, w, h));
  }

  /**
   * Call `fn(x, y, w, h)` for each horizontal run of tiles that have an overlay
   * (`withOverlay`) or have none, clipped to the desktop.
   */
  forEachRun(withOverlay, fn) {
    const t = this.tile;
    for (let r = 0; r < this.rows; r++) {
      let c = 0;
      while (c < this.cols) {
        if ((this.overlayBase[r * this.cols + c] >= 0) !== withOverlay) { c++; continue; }
        const start = c;
        while (c < this.cols && (this.overlayBase[r * this.cols + c] >= 0) === withOverlay) c++;
        const x = start * t;
        const y = r * t;
        fn(x, y, Math.min(c * t, this.width) - x, Math.min(y + t, this.height) - y);
      }
    }
  }

  /** A message from the tiles channel; tiles are handled strictly in arrival order. */
  onTileMessage(data) {
    let tile;
    try {
      tile = this.reassembler.add(data);
    } catch (err) {
      this.counters.malformed += 1;
      return;
    }
    if (!tile || !this.enabled) return;
    // Decoding starts at once (in the worker, in arrival order); drawing and acking happen
    // strictly in arrival order on this thread.
    const decoding = this.decoder.decode(tile.header, tile.payload);
    decoding.catch(() => {}); // handled in handleTile
    this.tileQueue = this.tileQueue.then(() => this.handleTile(tile.header, decoding)).catch(() => {});
  }

  cellsOf(h) {
    const t = this.tile;
    const cells = [];
    for (let r = h.y / t; r < Math.ceil((h.y + h.h) / t); r++) {
      for (let c = h.x / t; c < Math.ceil((h.x + h.w) / t); c++) cells.push(r * this.cols + c);
    }
    return cells;
  }

  isStale(cells, basePts) {
    return this.shownPts === null || cells.some((i) => this.lastChange[i] >= 0 && later(this.lastChange[i], basePts));
  }

  async handleTile(h, decoding) {
    if (!this.enabled) return;
    const nack = (reason) => this.send({ t: 'nack', id: h.id, reason });
    if (h.x % this.tile || h.y % this.tile || h.x + h.w > this.width || h.y + h.h > this.height ||
        (h.bits > 8) !== (this.bits > 8)) {
      this.counters.broken += 1;
      nack('size');
      return;
    }
    const cells = this.cellsOf(h);
    if (this.isStale(cells, h.basePts)) {
      this.counters.stale += 1;
      nack('stale');
      return;
    }
    let draw;
    try {
      draw = this.drawer(h, await decoding);
    } catch (err) {
      this.counters.broken += 1;
      nack('decode');
      return;
    }
    if (this.isStale(cells, h.basePts)) { // an announcement arrived while we decoded
      this.counters.stale += 1;
      nack('stale');
      return;
    }
    draw();
    for (const i of cells) {
      this.overlayBase[i] = h.basePts;
      this.overlayId[i] = h.id;
      this.verified[i] = 0;
    }
    this.ctx.drawImage(this.layer, h.x, h.y, h.w, h.h, h.x, h.y, h.w, h.h);
    this.counters.tilesDrawn += 1;
    if (!this.canVerify) return;
    const drawn = this.samples16 ? this.samplesOf(h) : this.ctx.getImageData(h.x, h.y, h.w, h.h).data;
    // Hashing runs off this thread; the next tile need not wait for it.
    sha256Hex(drawn).then((hash) => this.send({ t: 'ack', id: h.id, hash }));
  }

  /** A function that puts a decoded tile into the layer (synchronously). */
  drawer(h, result) {
    if (result.kind === 'bitmap') {
      return () => { this.layerCtx.drawImage(result.bitmap, h.x, h.y); result.bitmap.close(); };
    }
    if (result.kind === 'rgba') {
      return () => this.layerCtx.putImageData(new ImageData(result.rgba, h.w, h.h), h.x, h.y);
    }
    if (result.kind !== 'samples16' || !this.samples16) throw new Error('unexpected tile kind');
    return () => {
      for (let row = 0; row < h.h; row++) {
        this.samples16.set(result.samples.subarray(row * h.w, (row + 1) * h.w), (h.y + row) * this.width + h.x);
      }
      this.paintSamples16(h.x, h.y, h.w, h.h);
    };
  }

  /** 16-bit samples of a rectangle, row by row (what a 16-bit tile's hash covers). */
  samplesOf(h) {
    const out = new Uint16Array(h.w * h.h);
    for (let row = 0; row < h.h; row++) {
      const at = (h.y + row) * this.width + h.x;
      out.set(this.samples16.subarray(at, at + h.w), row * h.w);
    }
    return out;
  }

  /** Map 16-bit samples through the window/level into the 8-bit layer. */
  paintSamples16(x, y, w, h) {
    const out = new ImageData(w, h);
    const px = out.data;
    const win = this.window;
    const low = win ? win.center - win.width / 2 : 0;
    const scale = win ? 255 / Math.max(win.width, 1) : 1 / 256;
    for (let row = 0; row < h; row++) {
      const at = (y + row) * this.width + x;
      for (let col = 0; col < w; col++) {
        const s = this.samples16[at + col];
        const v = win ? Math.max(0, Math.min(255, Math.round((s - low) * scale))) : s >> 8;
        const j = (row * w + col) * 4;
        px[j] = px[j + 1] = px[j + 2] = v;
        px[j + 3] = 255;
      }
    }
    this.layerCtx.putImageData(out, x, y);
  }

  /** The server's verdict on our hash of tile `id`. */
  confirm(id, tiles) {
    if (tiles > 0) {
      for (let i = 0; i < this.overlayId.length; i++) if (this.overlayId[i] === id) this.verified[i] = 1;
    }
    this.refreshState();
  }

  /** Tiles (first/last row and column) that the viewport shows. */
  visibleCells(view) {
    if (!view || view.mode !== '1:1') return { c0: 0, c1: this.cols - 1, r0: 0, r1: this.rows - 1 };
    const dpr = window.devicePixelRatio || 1;
    const vp = view.viewport;
    const x0 = vp.scrollLeft * dpr;
    const y0 = vp.scrollTop * dpr;
    const x1 = Math.min(this.width, x0 + vp.clientWidth * dpr) - 1;
    const y1 = Math.min(this.height, y0 + vp.clientHeight * dpr) - 1;
    const t = this.tile;
    return { c0: Math.floor(x0 / t), c1: Math.floor(Math.max(x1, 0) / t), r0: Math.floor(y0 / t), r1: Math.floor(Math.max(y1, 0) / t) };
  }

  /** The lossless state, as window.hdx.status() and the indicator report it. */
  state(view) {
    const n = this.verified.length;
    let verified = 0;
    for (let i = 0; i < n; i++) verified += this.verified[i] && this.overlayBase[i] >= 0 ? 1 : 0;
    const { c0, c1, r0, r1 } = this.visibleCells(view);
    let visibleExact = true;
    for (let r = r0; r <= r1 && visibleExact; r++) {
      for (let c = c0; c <= c1; c++) {
        const i = r * this.cols + c;
        if (!(this.verified[i] && this.overlayBase[i] >= 0)) { visibleExact = false; break; }
      }
    }
    const scaled = !!(view && view.scaled);
    let reason = null;
    if (!this.enabled) reason = 'refinement off';
    else if (this.fidelityReason) reason = this.fidelityReason;
    else if (!this.canVerify) reason = 'cannot verify (not a secure context)';
    else if (scaled) reason = 'scaled view';
    else if (this.shownPts === null) reason = 'video frame not identified';
    else if (this.pending.length) reason = 'changes pending';
    else if (!visibleExact) reason = 'refining';
    return {
      lossless: reason === null && n > 0,
      reason,
      verified,
      tiles: n,
      coverage: n ? verified / n : 0,
      timeToLosslessMs: this.timeToLosslessMs,
      bits: this.bits,
      counters: { ...this.counters },
    };
  }

  refreshState(view) {
    const s = this.state(view || this.view);
    if (s.lossless && !this.wasLossless) {
      this.wasLossless = true;
      this.timeToLosslessMs = performance.now() - this.changedAt;
      if (this.onLossless) this.onLossless(this.timeToLosslessMs);
    }
    if (this.debugTint) this.paintTint();
    if (this.onStateChange) this.onStateChange(s);
    return s;
  }

  setDebugTint(on) {
    this.debugTint = !!on;
    this.tint.hidden = !this.debugTint;
    this.paintTint();
  }

  paintTint() {
    const ctx = this.tint.getContext('2d');
    ctx.clearRect(0, 0, this.tint.width, this.tint.height);
    this.tint.style.width = this.screen.style.width;
    this.tint.style.height = this.screen.style.height;
    if (!this.debugTint) return;
    const t = this.tile;
    for (let i = 0; i < this.verified.length; i++) {
      if (this.verified[i] && this.overlayBase[i] >= 0) continue;
      ctx.fillStyle = this.overlayBase[i] >= 0 ? 'rgba(255, 200, 0, 0.25)' : 'rgba(255, 0, 0, 0.25)';
      ctx.fillRect((i % this.cols) * t, Math.floor(i / this.cols) * t, t, t);
    }
  }

  /** Per-tile facts for tests and debugging (a copy). */
  tileState() {
    return {
      shownPts: this.shownPts, rows: this.rows, cols: this.cols, tile: this.tile,
      overlayBase: Array.from(this.overlayBase), verified: Array.from(this.verified),
      pending: this.pending.length, origin: this.origin,
    };
  }

  /** 16-bit display window (center, width in sample units); null restores full range. */
  setWindowLevel(center, width) {
    this.window = center === null || center === undefined ? null : { center, width };
    if (!this.samples16) return;
    this.paintSamples16(0, 0, this.width, this.height);
    this.redrawOverlays();
  }

  /** What is shown, as 16-bit grey samples: exact where tiles are drawn, video (<<8) elsewhere. */
  snapshot16() {
    if (!this.samples16) return null;
    const shot = this.ctx.getImageData(0, 0, this.width, this.height).data;
    const out = new Uint16Array(this.width * this.height);
    const t = this.tile;
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) {
        const i = y * this.width + x;
        const cell = Math.floor(y / t) * this.cols + Math.floor(x / t);
        out[i] = this.overlayBase[cell] >= 0 ? this.samples16[i] : shot[i * 4 + 1] << 8;
      }
    }
    return { width: this.width, height: this.height, data: out };
  }
}
