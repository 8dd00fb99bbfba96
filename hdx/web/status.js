// Session facts for the status line and for window.hdx.status(): connection, encoder, frame
// rate over the last second, round-trip time from control-channel pings.

export class Stats {
  constructor() {
    this.connectionState = 'new';
    this.encoder = null;
    this.session = null;
    this.desktop = { width: 0, height: 0 };
    this.framesDrawn = 0;
    this.rttMs = null;
    /** Median glass-to-glass latency of recent frames (capture on the server -> drawn here). */
    this.latencyMs = null;
    this.error = null;
    this.renderPath = null;
    this.reconnects = 0;
    /** A short-lived message for the status line (a refusal, why input is not sent). */
    this.notice = null;
    this.noticeUntil = 0;
    /** @type {number[]} */
    this.drawTimes = [];
    /** @type {Map<number, number>} */
    this.pings = new Map();
    this.nextPing = 1;
  }

  frameDrawn() {
    const now = performance.now();
    this.framesDrawn += 1;
    this.drawTimes.push(now);
    while (this.drawTimes.length && this.drawTimes[0] < now - 1000) this.drawTimes.shift();
  }

  get fps() {
    const now = performance.now();
    return this.drawTimes.filter((t) => t >= now - 1000).length;
  }

  /** A ping message to send; its pong gives the RTT. */
  ping() {
    const id = this.nextPing++;
    this.pings.set(id, performance.now());
    if (this.pings.size > 16) this.pings.delete(this.pings.keys().next().value);
    return { t: 'ping', id, ts: performance.timeOrigin + performance.now() };
  }

  /** Returns {sentMs, rttMs} (sentMs on the epoch clock) for clock-offset estimation. */
  pong(msg) {
    const sent = this.pings.get(msg.id);
    if (sent === undefined) return null;
    this.pings.delete(msg.id);
    this.rttMs = performance.now() - sent;
    return { sentMs: msg.ts, rttMs: this.rttMs };
  }

  /** Show `text` in the status line for `ms`. */
  notify(text, ms = 6000) {
    this.notice = text;
    this.noticeUntil = performance.now() + ms;
  }

  /** One line for people. */
  line(view) {
    const parts = [this.connectionState];
    if (this.error) parts.push(this.error);
    if (this.notice && performance.now() < this.noticeUntil) parts.push(this.notice);
    if (this.encoder) parts.push(this.encoder);
    parts.push(`${this.fps} fps`);
    if (this.latencyMs !== null) parts.push(`latency ${this.latencyMs.toFixed(0)} ms`);
    if (this.rttMs !== null) parts.push(`network rtt ${this.rttMs.toFixed(1)} ms`);
    if (this.desktop.width) parts.push(`${this.desktop.width}×${this.desktop.height}`);
    parts.push(view.scaled ? `scaled ${(view.scale * 100).toFixed(0)}%` : '1:1');
    return parts.join(' · ');
  }
}
