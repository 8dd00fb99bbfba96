// Experience telemetry: what this page lived through, reported to the server every 2 s as
// {t: 'stats', ...} (docs/telemetry.md). The server scores it and answers `experience`.
//
// - InputSerials numbers each pointer, wheel and key message (`i`) and remembers when it
//   left; the server names the first frame showing an input's effect, and that frame's
//   drawn time ends the input-to-photon interval.
// - ExperienceReporter collects glass-to-glass and input-to-photon samples, time-to-lossless
//   events, presented frames and lossy time, adds the decoder's own counters (getStats deltas)
//   and builds one bounded report per period. Every list it keeps is capped.

const MAX_SERIAL = 2 ** 31 - 1;
const KEEP_SENT = 256; // serials awaiting their frame (a few seconds of pointer moves)
const MAX_G2G = 64;
const MAX_I2P = 16;
const MAX_TTL = 16;
const MAX_REPORT_BYTES = 3800; // the server refuses more than 4096
// The server refuses a report with a value beyond these; a sample that large is an error
// (a clock step, a frame matched minutes late), so it is dropped rather than sent.
const MAX_MS = 600000;
const MAX_COUNT = 1000000;
const MAX_PERIOD_MS = 3600000;
const EARLY_MS = -50; // clock-offset error tolerated before a g2g sample is called wrong

/** Numbers outgoing input messages per connection and times them until their frame shows. */
export class InputSerials {
  constructor() {
    this.next = 1;
    /** @type {Map<number, number>} serial -> performance.now() when sent */
    this.sent = new Map();
  }

  /**
   * Give `msg` the next serial (`i`) and remember when it left.
   * @template {object} T
   * @param {T} msg a pointer, wheel or key message
   * @returns {T & {i: number}} the same object
   */
  stamp(msg) {
    const serial = this.next;
    this.next = serial >= MAX_SERIAL ? 1 : serial + 1;
    this.sent.delete(serial); // after a wrap, the old entry is not this input
    this.sent.set(serial, performance.now());
    if (this.sent.size > KEEP_SENT) this.sent.delete(this.sent.keys().next().value);
    return Object.assign(msg, { i: serial });
  }

  /**
   * The frame first showing input `serial` was drawn at `drawnMs` (performance.now() clock):
   * its input-to-photon time in ms, or null if the serial is unknown or already counted.
   * @param {number} serial
   * @param {number} drawnMs
   * @returns {number | null}
   */
  presented(serial, drawnMs) {
    const sent = this.sent.get(serial);
    if (sent === undefined) return null;
    this.sent.delete(serial); // each serial counts once
    return Math.max(0, drawnMs - sent);
  }
}

/** Append `value` to `list`, keeping only the newest `cap` entries. */
function pushCapped(list, value, cap) {
  list.push(value);
  if (list.length > cap) list.splice(0, list.length - cap);
}

const round1 = (ms) => Math.round(ms * 10) / 10;
const round2 = (ms) => Math.round(ms * 100) / 100;
const count = (n) => Math.min(MAX_COUNT, Math.max(0, Math.round(n || 0)));
/** A finite ms value within the server's bounds, or null. */
const msOrNull = (ms) => (Number.isFinite(ms) && ms >= 0 && ms <= MAX_MS ? round2(ms) : null);

/**
 * The inbound video stream's counters from a getStats() report (null if there is none).
 * @param {RTCStatsReport | null} report
 */
export function inboundVideo(report) {
  let inbound = null;
  if (report) report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') inbound = s; });
  return inbound;
}

/** Collects one connection's experience and builds its periodic `stats` reports. */
export class ExperienceReporter {
  /**
   * @param {() => Promise<RTCStatsReport | null>} getStats the peer connection's getStats
   */
  constructor(getStats) {
    this.getStats = getStats;
    this.startPeriod(performance.now());
    /** False once the server's hello said lossless refinement is off: `lossy` is then null. */
    this.losslessEnabled = false;
    /** The counters of the last report (deltas are taken against them). */
    this.last = { framesDecoded: 0, framesDropped: 0, packetsReceived: 0, packetsLost: 0,
      totalDecodeTime: 0, jitterBufferDelay: 0, jitterBufferEmittedCount: 0 };
    this.busy = false;
    /** The page's own numbers as of the last report (for the overlay and hdx.experience()). */
    this.current = { decodeMs: null, dropped: 0, lost: 0, i2pMs: null, decoder: null };
  }

  /** A presented frame's glass-to-glass latency (ms). */
  addG2g(ms) {
    if (!Number.isFinite(ms) || ms < EARLY_MS || ms > MAX_MS) return; // a clock error, not a frame
    pushCapped(this.g2g, round1(Math.max(0, ms)), MAX_G2G);
  }

  /** An input-to-photon interval (ms). */
  addI2p(ms) {
    if (!Number.isFinite(ms) || ms < 0 || ms > MAX_MS) return;
    pushCapped(this.i2p, round1(ms), MAX_I2P);
    this.current.i2pMs = round1(ms);
  }

  /** A static event reached lossless after `ms`. */
  addTtl(ms) {
    if (!Number.isFinite(ms) || ms < 0 || ms > MAX_MS) return;
    pushCapped(this.ttl, round1(ms), MAX_TTL);
  }

  /** A frame was drawn. */
  framePresented() {
    this.presentedFrames += 1;
  }

  /** The 100 ms tick: was every visible tile verified exact just now? */
  sampleLossless(lossless) {
    this.ticks += 1;
    if (!lossless) this.lossyTicks += 1;
  }

  /**
   * End the period: the report to send, with the decoder's counters since the last one.
   * Resolves to null while a previous report is still being built.
   * @returns {Promise<object | null>}
   */
  async report() {
    if (this.busy) return null;
    this.busy = true;
    let inbound = null;
    try {
      inbound = inboundVideo(await this.getStats());
    } catch (err) {
      inbound = null; // the connection closed meanwhile: report what the page saw itself
    } finally {
      this.busy = false;
    }
    const now = performance.now();
    const msg = {
      t: 'stats',
      period_ms: Math.min(MAX_PERIOD_MS, Math.max(1, Math.round(now - this.periodStart))),
      g2g: this.g2g,
      i2p: this.i2p,
      ttl: this.ttl,
      presented: count(this.presentedFrames),
      ...this.decoderFields(inbound),
      lossy: this.losslessEnabled && this.ticks ? Math.round((this.lossyTicks / this.ticks) * 1000) / 1000 : null,
      sw: count(screen.width),
      sh: count(screen.height),
      dpr: Math.min(16, Math.max(0, window.devicePixelRatio || 1)),
      hidden: document.hidden,
    };
    this.startPeriod(now);
    return fit(msg);
  }

  /** Forget the samples and counts of the period that ended: the next one starts at `now`. */
  startPeriod(now) {
    this.periodStart = now;
    this.g2g = [];
    this.i2p = [];
    this.ttl = [];
    this.presentedFrames = 0;
    this.ticks = 0;
    this.lossyTicks = 0;
  }

  /** The getStats part of a report; the counters also become the new baseline. */
  decoderFields(inbound) {
    const none = { decoded: 0, dropped: 0, received: 0, lost: 0, decode_ms: null, jitter_ms: null, jb_ms: null, decoder: null };
    if (!inbound) return none;
    const cur = {};
    for (const key of Object.keys(this.last)) cur[key] = Number(inbound[key]) || 0;
    // A counter that went down belongs to a new stream: count from zero again.
    const delta = (key) => (cur[key] >= this.last[key] ? cur[key] - this.last[key] : cur[key]);
    const decoded = delta('framesDecoded');
    const emitted = delta('jitterBufferEmittedCount');
    const decoder = typeof inbound.decoderImplementation === 'string' && inbound.decoderImplementation
      ? inbound.decoderImplementation.slice(0, 64) : null;
    const fields = {
      decoded: count(decoded),
      dropped: count(delta('framesDropped')),
      received: count(delta('packetsReceived')),
      lost: count(delta('packetsLost')), // RTCP can count duplicates as negative loss
      decode_ms: decoded > 0 ? msOrNull((delta('totalDecodeTime') * 1000) / decoded) : null,
      jitter_ms: typeof inbound.jitter === 'number' ? msOrNull(inbound.jitter * 1000) : null,
      jb_ms: emitted > 0 ? msOrNull((delta('jitterBufferDelay') * 1000) / emitted) : null,
      decoder,
    };
    this.last = cur;
    Object.assign(this.current, {
      decodeMs: fields.decode_ms ?? this.current.decodeMs,
      dropped: count(cur.framesDropped),
      lost: count(cur.packetsLost),
      decoder,
    });
    return fields;
  }
}

/** Keep a report under MAX_REPORT_BYTES: the oldest samples go first, then the decoder name. */
function fit(msg) {
  const size = () => new TextEncoder().encode(JSON.stringify(msg)).length;
  while (size() > MAX_REPORT_BYTES) {
    if (msg.g2g.length > 8) msg.g2g = msg.g2g.slice(msg.g2g.length >> 1);
    else if (msg.decoder !== null) msg.decoder = null;
    else if (msg.g2g.length || msg.i2p.length || msg.ttl.length) { msg.g2g = []; msg.i2p = []; msg.ttl = []; }
    else break;
  }
  return msg;
}
