// Glass-to-glass latency measured where the user is: server capture time -> frame drawn here.
//
// The server announces every frame it sends on `control` as {t: 'frame', pts, ts}: pts is the
// frame's RTP timestamp minus the stream's random origin, ts the capture time on the server's
// clock. Each decoded VideoFrame carries its RTP timestamp. The origin is learnt by
// intersecting the candidates (rtp - pts) over the first frames, so a lost first frame cannot
// mislead it; the clock offset comes from ping/pong (the sample with the smallest RTT).
// An announcement may name the numbered input it is the first frame to show (`input`); the
// frame's drawn time then ends that input's input-to-photon interval.

const KEEP = 300; // announcements and drawn frames remembered (10 s at 30 fps)

export class LatencyEstimator {
  constructor() {
    /** @type {Map<number, number>} pts -> capture time (server clock, s) */
    this.announced = new Map();
    /** @type {Map<number, number>} pts -> serial of the input this frame first shows */
    this.inputs = new Map();
    /** @type {Map<number, number>} rtp -> drawn time (client clock, s), not yet matched */
    this.unmatched = new Map();
    this.origin = null;
    /** @type {Set<number> | null} */
    this.candidates = null;
    this.offsetS = 0; // server clock - client clock
    this.bestRttMs = Infinity;
    /** @type {number[]} */
    this.samplesMs = [];
    /**
     * Called for each frame paired with its announcement: its glass-to-glass latency, when
     * it was drawn (client epoch s) and the input serial it first shows (or null).
     * @type {((sample: {g2gMs: number, drawnS: number, input: number | null}) => void) | null}
     */
    this.onSample = null;
  }

  /** A pong: client send time `sentMs` (epoch ms), RTT, and the server's time `serverS`. */
  clockSample(sentMs, rttMs, serverS) {
    if (rttMs >= this.bestRttMs) return;
    this.bestRttMs = rttMs;
    this.offsetS = serverS - (sentMs + rttMs / 2) / 1000;
  }

  /** The server sent a frame. */
  announce(msg) {
    this.announced.set(msg.pts, msg.ts);
    trim(this.announced);
    if (Number.isInteger(msg.input)) {
      this.inputs.set(msg.pts, msg.input);
      trim(this.inputs);
    }
    if (this.origin === null) return;
    const rtp = (this.origin + msg.pts) >>> 0;
    const drawn = this.unmatched.get(rtp);
    if (drawn !== undefined) {
      this.unmatched.delete(rtp);
      this.record(drawn, msg.ts, msg.pts);
    }
  }

  /** A frame with RTP timestamp `rtp` was drawn at client time `nowS` (epoch seconds). */
  drawn(rtp, nowS) {
    if (rtp === undefined || rtp === null) return;
    if (this.origin === null) this.learnOrigin(rtp);
    if (this.origin === null) return;
    const pts = (rtp - this.origin) >>> 0;
    const captured = this.announced.get(pts);
    if (captured === undefined) {
      this.unmatched.set(rtp, nowS);
      trim(this.unmatched);
    } else {
      this.record(nowS, captured, pts);
    }
  }

  learnOrigin(rtp) {
    const now = new Set([...this.announced.keys()].map((pts) => (rtp - pts) >>> 0));
    const kept = this.candidates ? new Set([...this.candidates].filter((c) => now.has(c))) : now;
    this.candidates = kept.size ? kept : now;
    if (this.candidates.size === 1) this.origin = [...this.candidates][0];
  }

  record(drawnClientS, capturedServerS, pts) {
    const latencyMs = (drawnClientS + this.offsetS - capturedServerS) * 1000;
    this.samplesMs.push(latencyMs);
    if (this.samplesMs.length > 90) this.samplesMs.shift();
    // Each frame is recorded once, so each input serial is handed on once.
    const input = this.inputs.get(pts);
    if (input !== undefined) this.inputs.delete(pts);
    if (this.onSample) this.onSample({ g2gMs: latencyMs, drawnS: drawnClientS, input: input ?? null });
  }

  /** Median of the recent samples (ms), or null before the first. */
  get medianMs() {
    if (!this.samplesMs.length) return null;
    const sorted = [...this.samplesMs].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }
}

function trim(map) {
  while (map.size > KEEP) map.delete(map.keys().next().value);
}
