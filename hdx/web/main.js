// hdx web client entry point: wires the peer, the renderer, the view, input, access and
// status, and exposes test hooks on window.hdx. Nothing is kept in the browser beyond this
// page's memory (no storage API of any kind); the join token lives there only.
import { takeToken, Access } from './access.js';
import { connect } from './peer.js';
import { AccessRefused } from './signalling.js';
import { renderTrack } from './video.js';
import { View } from './view.js';
import { attachInput } from './input.js';
import { Stats } from './status.js';
import { LatencyEstimator } from './latency.js';
import { Compositor, decodableFormats } from './compositor.js';
import { LosslessIndicator } from './indicator.js';
import { cursorSetter } from './cursor.js';
import { offerMonitorWindows, selectedMonitor } from './monitors.js';
import { Watermark } from './watermark.js';
import { InputSerials, ExperienceReporter } from './telemetry.js';
import { StatsOverlay, isStatsShortcut } from './overlay.js';

// First of all: the link's token leaves the address bar (and so history and screenshots).
const token = takeToken();

const canvas = /** @type {HTMLCanvasElement} */ (document.getElementById('screen'));
const viewport = document.getElementById('viewport');
const statusLine = document.getElementById('status');
const view = new View(canvas, viewport, document.getElementById('scaled-warning'),
  /** @type {HTMLButtonElement} */ (document.getElementById('view-mode')));
const stats = new Stats();
const compositor = new Compositor(canvas, /** @type {HTMLCanvasElement} */ (document.getElementById('tint')),
  (msg) => send(msg));
compositor.view = view;
const setCursor = cursorSetter(canvas);
const indicator = new LosslessIndicator(document.getElementById('lossless'));
compositor.onStateChange = (state) => indicator.show(state);
compositor.onLossless = (ms) => reporter.addTtl(ms); // each static event once
const watermark = new Watermark(/** @type {HTMLCanvasElement} */ (document.getElementById('watermark')), canvas);
const access = new Access({
  role: document.getElementById('role-badge'),
  control: document.getElementById('control-badge'),
  note: document.getElementById('floor-note'),
  request: /** @type {HTMLButtonElement} */ (document.getElementById('floor-request')),
  requests: document.getElementById('floor-requests'),
  release: /** @type {HTMLButtonElement} */ (document.getElementById('floor-release')),
}, (msg) => send(msg));
access.notify = (text) => stats.notify(text);
const overlay = new StatsOverlay(document.getElementById('stats-overlay'),
  /** @type {HTMLButtonElement} */ (document.getElementById('stats-toggle')), viewport);
// The overlay's shortcut is the page's own: caught before input.js sees it, so the S never
// reaches the desktop (Ctrl and Alt alone, already sent, type nothing there).
window.addEventListener('keydown', (e) => {
  if (!isStatsShortcut(e)) return;
  e.preventDefault();
  e.stopPropagation();
  if (!e.repeat) overlay.toggle();
}, true);
const tintToggle = document.getElementById('tint-toggle');
tintToggle.addEventListener('click', () => {
  const on = tintToggle.getAttribute('aria-pressed') !== 'true';
  tintToggle.setAttribute('aria-pressed', String(on));
  compositor.setDebugTint(on);
});
// `?tile-formats=png,zstd` narrows what this page asks for (to try the paths browsers without
// JPEG XL take); it can only remove formats, never claim one the browser cannot decode exactly.
const wanted = new URLSearchParams(window.location.search).get('tile-formats');
const formats = decodableFormats().then((names) => (wanted === null ? names
  : names.filter((name) => wanted.split(',').includes(name))));
let latency = new LatencyEstimator();
/** Per connection: input serials restart at 1, and reports count from the new stream. */
let serials = new InputSerials();
let reporter = new ExperienceReporter(async () => null);
/** The server's newest `experience` message, or null. */
let experience = null;
/** @type {Set<(info: {width: number, height: number, canvas: HTMLCanvasElement}) => void>} */
const frameListeners = new Set();
let control = null;
/** @type {RTCPeerConnection | null} */
let peerConnection = null;
/** Ends the current session early (set while one runs). */
let endSession = null;
/** The server's reason when it said `bye` (it is shutting down): no reconnecting then. */
let serverBye = null;
/** The server's reason when it refused this page (401/403): no reconnecting then either. */
let refusal = null;

function channelOpen() {
  return !!control && control.readyState === 'open';
}

function send(msg) {
  if (channelOpen()) control.send(JSON.stringify(msg));
}

/** Pointer, wheel and key messages carry a serial, so the server can name their frame. */
function sendInput(msg) {
  if (channelOpen()) send(serials.stamp(msg));
}

/** A frame was paired with its announcement: glass-to-glass, and input-to-photon if it is
 * the first frame to show a numbered input. */
function onLatencySample({ g2gMs, drawnS, input }) {
  reporter.addG2g(g2gMs);
  if (input === null) return;
  const i2p = serials.presented(input, drawnS * 1000 - performance.timeOrigin);
  if (i2p !== null) reporter.addI2p(i2p);
}

/** Build and send this period's report (only while the channel is open: else it waits). */
async function sendReport() {
  if (!channelOpen()) return;
  const from = reporter;
  const msg = await from.report();
  if (msg && from === reporter) send(msg); // not on a newer connection's channel
}

/** The page's own numbers, for the overlay and window.hdx.experience(). */
function clientExperience() {
  const g2g = latency.medianMs;
  const own = reporter.current;
  return {
    fps: stats.fps,
    g2gMs: g2g === null ? null : Math.round(Math.max(0, g2g) * 10) / 10,
    i2pMs: own.i2pMs,
    decodeMs: own.decodeMs,
    dropped: own.dropped,
    lost: own.lost,
    rttMs: stats.rttMs === null ? null : Math.round(stats.rttMs * 10) / 10,
    hidden: document.hidden,
  };
}

function onControlMessage(msg) {
  if (msg.t === 'hello') {
    stats.encoder = msg.encoder;
    stats.session = msg.session;
    stats.desktop = { width: msg.width, height: msg.height };
    compositor.configure(msg);
    access.hello(msg);
    watermark.show(access.watermark ? access.user || '?' : null);
    reporter.losslessEnabled = !!msg.lossless;
    if (msg.lossless) formats.then((names) => send({ t: 'caps', formats: names }));
  } else if (msg.t === 'pong') {
    const sample = stats.pong(msg);
    if (sample) latency.clockSample(sample.sentMs, sample.rttMs, msg.server_ts);
  } else if (msg.t === 'frame') {
    compositor.announce(msg);
    latency.announce(msg);
  } else if (msg.t === 'experience') {
    experience = msg; // only the newest matters
  } else if (msg.t === 'origin') {
    compositor.setOrigin(msg.origin);
  } else if (msg.t === 'verified') {
    compositor.confirm(msg.id, msg.tiles);
  } else if (msg.t === 'cursor') {
    setCursor(msg);
  } else if (msg.t === 'fidelity') {
    // Exact tiles are not the exact desktop (10-bit detail): never claim LOSSLESS meanwhile.
    compositor.fidelityReason = msg.exact ? null : String(msg.reason || 'reduced depth');
    compositor.refreshState();
  } else if (msg.t === 'floor') {
    access.setFloor(msg);
  } else if (msg.t === 'refused') {
    access.refused(msg);
  } else if (msg.t === 'bye') {
    // Leave at once, so the server's drain need not wait for us.
    serverBye = String(msg.reason || 'server closed the session');
    if (endSession) endSession();
  }
}

async function present(source, width, height, rtpTimestamp, canHold) {
  await compositor.present(source, width, height, rtpTimestamp, canHold);
  onFrame(width, height, rtpTimestamp);
}

function onFrame(width, height, rtpTimestamp) {
  latency.drawn(rtpTimestamp, (performance.timeOrigin + performance.now()) / 1000);
  stats.latencyMs = latency.medianMs;
  const resized = stats.desktop.width !== width || stats.desktop.height !== height;
  stats.desktop = { width, height };
  if (resized || stats.framesDrawn === 0) view.layout();
  stats.frameDrawn();
  reporter.framePresented();
  for (const listener of frameListeners) listener({ width, height, canvas });
}

/** Connect once; resolves when that connection has ended (failed, closed or never made). */
async function runSession() {
  latency = new LatencyEstimator(); // a new stream has a new RTP origin
  latency.onSample = onLatencySample;
  serials = new InputSerials();
  experience = null;
  reporter = new ExperienceReporter(async () => (peerConnection ? peerConnection.getStats() : null));
  access.reset();
  const peer = await connect(onControlMessage, (data) => compositor.onTileMessage(data),
    { token, monitor: selectedMonitor() });
  control = peer.control;
  peerConnection = peer.pc;
  stats.session = peer.session;
  stats.error = null;
  const ended = new Promise((resolve) => {
    endSession = resolve;
    peer.pc.addEventListener('connectionstatechange', () => {
      stats.connectionState = peer.pc.connectionState;
      if (['failed', 'closed'].includes(peer.pc.connectionState)) resolve();
    });
  });
  const renderer = renderTrack(await peer.track, present);
  stats.renderPath = renderer.path;
  const pinger = setInterval(() => send(stats.ping()), 1000);
  const reporting = setInterval(sendReport, 2000);
  await ended;
  endSession = null;
  access.reset(); // no floor without a session: nothing is sent, no badge claims control
  clearInterval(pinger);
  clearInterval(reporting);
  renderer.stop();
  peer.pc.close();
}

/** Keep a session up: reconnect after a failure with backoff (1 s doubling to 10 s), unless
 * the server said `bye` (it is shutting down; reloading the page connects again) or refused
 * this page's token (401/403: retrying cannot help). */
async function start() {
  const input = attachInput(canvas, viewport, view, sendInput, () => access.mayDrive(), () => access.blocked());
  access.onFloorLost = () => input.forget();
  offerMonitorWindows(/** @type {HTMLButtonElement} */ (document.getElementById('monitors')), token);
  viewport.focus();
  let delayMs = 1000;
  for (;;) {
    const began = performance.now();
    try {
      await runSession();
      stats.error = 'connection lost';
    } catch (err) {
      if (err instanceof AccessRefused) {
        refusal = err.reason;
        stats.connectionState = 'refused';
        stats.error = err.message;
        statusLine.classList.add('alert');
        showStatus();
        return;
      }
      stats.error = String(err && err.message ? err.message : err);
      console.error('hdx:', err);
    }
    if (leaving) return;
    if (serverBye) {
      stats.connectionState = 'closed by server';
      stats.error = `${serverBye}; reload to reconnect`;
      return;
    }
    if (performance.now() - began > 30000) delayMs = 1000; // it had been working: retry soon
    stats.connectionState = `reconnecting in ${Math.round(delayMs / 1000)} s`;
    stats.reconnects += 1;
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(delayMs * 2, 10000);
  }
}

// Closing the peer on the way out tells the server at once (no 30 s ICE consent timeout).
let leaving = false;
window.addEventListener('pagehide', () => {
  leaving = true;
  if (peerConnection) peerConnection.close();
});

function showStatus() {
  const line = refusal !== null ? `${stats.error} · reload after getting a new link` : stats.line(view);
  if (statusLine.textContent !== line) statusLine.textContent = line;
}

setInterval(() => {
  showStatus();
  const shown = compositor.refreshState(view); // the view may have scrolled or scaled
  reporter.sampleLossless(shown.lossless);
  if (overlay.on) overlay.render(experience, clientExperience());
  compositor.watchdog();
  watermark.follow(); // the screen's box and the clock
}, 100);

function losslessStatus() {
  const s = compositor.refreshState(view);
  return {
    lossless: s.lossless,
    losslessReason: s.reason,
    verified: s.verified,
    tiles: s.tiles,
    coverage: s.coverage,
    timeToLosslessMs: s.timeToLosslessMs,
    bits: s.bits,
    tileCounters: s.counters,
  };
}

function toBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

window.hdx = {
  /** Session state as a plain JSON object. */
  status() {
    return {
      connected: stats.connectionState === 'connected',
      connectionState: stats.connectionState,
      encoder: stats.encoder,
      session: stats.session,
      width: stats.desktop.width,
      height: stats.desktop.height,
      framesDrawn: stats.framesDrawn,
      fps: stats.fps,
      rttMs: stats.rttMs,
      latencyMs: stats.latencyMs,
      mode: view.mode,
      scale: view.scale,
      scaled: view.scaled,
      devicePixelRatio: window.devicePixelRatio,
      renderPath: stats.renderPath,
      reconnects: stats.reconnects,
      error: stats.error,
      serverBye,
      refusal,
      ...access.status(),
      ...losslessStatus(),
    };
  },
  /** Exact 16-bit samples shown, for a 16-bit desktop: {width, height, data: Uint16Array}. */
  snapshot16() { return compositor.snapshot16(); },
  /** snapshot16() with the samples as base64 of little-endian bytes. */
  snapshot16Base64() {
    const shot = compositor.snapshot16();
    if (!shot) return null;
    return { width: shot.width, height: shot.height, samples: toBase64(new Uint8Array(shot.data.buffer)) };
  },
  /** Per-tile overlay state: {shownPts, rows, cols, tile, overlayBase[], verified[], pending}. */
  tileState() { return compositor.tileState(); },
  /** Tint tiles that are not verified lossless (red: video only; amber: drawn, unverified). */
  setDebugTint(on) { compositor.setDebugTint(on); },
  /** 16-bit display window in sample units; no arguments restores the full range. */
  setWindowLevel(center, width) { compositor.setWindowLevel(center, width); },
  /** Exact RGBA of what the screen canvas shows: {width, height, data: Uint8ClampedArray}. */
  snapshot() {
    const ctx = canvas.getContext('2d');
    const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
    return { width: image.width, height: image.height, data: image.data };
  },
  /** snapshot() with the pixels as base64, for test drivers that pass JSON. */
  snapshotBase64() {
    const shot = window.hdx.snapshot();
    return { width: shot.width, height: shot.height, rgba: toBase64(new Uint8Array(shot.data.buffer)) };
  },
  /** Call `listener` after each frame is drawn; returns a function that removes it. */
  onFrameDrawn(listener) {
    frameListeners.add(listener);
    return () => frameListeners.delete(listener);
  },
  /** @param {'1:1' | 'fit'} mode */
  setViewMode(mode) { view.setMode(mode); },
  /** [offer, answer] SDP as negotiated, for checking codecs and payload types. */
  negotiated() {
    if (!peerConnection) return [null, null];
    return [peerConnection.localDescription?.sdp ?? null, peerConnection.remoteDescription?.sdp ?? null];
  },
  /** The browser's own view of the video stream (getStats inbound-rtp plus its codec). */
  async receiverStats() {
    if (!peerConnection) return null;
    const report = await peerConnection.getStats();
    let inbound = null;
    report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') inbound = s; });
    if (!inbound) return null;
    const codec = inbound.codecId ? report.get(inbound.codecId) : null;
    return {
      codec: codec ? codec.mimeType : null,
      payloadType: codec ? codec.payloadType : null,
      framesDecoded: inbound.framesDecoded,
      framesDropped: inbound.framesDropped,
      keyFramesDecoded: inbound.keyFramesDecoded,
      decoderImplementation: inbound.decoderImplementation,
      totalDecodeTime: inbound.totalDecodeTime,
      jitterBufferDelay: inbound.jitterBufferDelay,
      jitterBufferEmittedCount: inbound.jitterBufferEmittedCount,
      pliCount: inbound.pliCount,
    };
  },
  send,
  /** {server: newest `experience` message or null, client: this page's own numbers}. */
  experience() {
    return { server: experience && { ...experience }, client: clientExperience() };
  },
  /** Show or hide the stats overlay (no argument flips it); returns whether it shows. */
  toggleStats(on) { return overlay.toggle(on); },
  /** Ask for the input floor (a control page). */
  requestControl() { access.requestControl(); },
  /** Hand the floor to the session `sessionId` (the holder only). */
  grantControl(sessionId) { access.grantControl(sessionId); },
  /** Let go of the floor. */
  releaseControl() { access.releaseControl(); },
};

start();
