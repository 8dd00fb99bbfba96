// The main thread's side of tile-worker.js: one worker (measured on 2 cores: a second one
// made video latency worse during refinement and did not make refinement faster), promises
// keyed by job id. The compositor draws tiles strictly in arrival order.

import { FORMAT } from './tiles.js';

const WORKERS = 1;
// A 2x2 8-bit JPEG-LS image: decoding it at start loads and compiles CharLS in each worker
// before the first real tiles arrive (otherwise the first refinement is twice as slow).
const WARM_UP_JLS = '/9j/6AAgU1BJRkYAAgAAAQAAAAIAAAACCggGAQAAASwAAAEs/+gACAAAAAH/2P/3AAsIAAIAAgEBEQD/2gAIAQEAAAAAC8gAAAMI/9k=';

export class TileDecoder {
  constructor() {
    this.nextId = 1;
    /** @type {Map<number, {resolve: (r: any) => void, reject: (e: Error) => void}>} */
    this.pending = new Map();
    this.workers = [];
    for (let i = 0; i < WORKERS; i++) {
      const worker = new Worker('/static/tile-worker.js', { type: 'module' });
      worker.onmessage = (event) => {
        const { id, ok, error, ...result } = event.data;
        const job = this.pending.get(id);
        if (!job) return;
        this.pending.delete(id);
        if (ok) job.resolve(result);
        else job.reject(new Error(error));
      };
      worker.onerror = (event) => {
        for (const job of this.pending.values()) job.reject(new Error(`tile decoder failed: ${event.message}`));
        this.pending.clear();
      };
      this.workers.push(worker);
    }
    const sample = Uint8Array.from(atob(WARM_UP_JLS), (ch) => ch.charCodeAt(0));
    for (let i = 0; i < this.workers.length; i++) {
      this.decode({ fmt: FORMAT.JLS, bits: 8, w: 2, h: 2 }, sample.slice()).catch(() => {});
    }
  }

  /**
   * Decode one tile's payload; resolves {kind: 'bitmap', bitmap} | {kind: 'rgba', rgba} |
   * {kind: 'samples16', samples}, rejects with the reason.
   * @param {{fmt: number, bits: number, w: number, h: number}} header
   * @param {Uint8Array} payload (its buffer is transferred to the worker)
   */
  decode(header, payload) {
    const id = this.nextId++;
    const copy = payload.byteOffset === 0 && payload.byteLength === payload.buffer.byteLength
      ? payload : payload.slice();
    const worker = this.workers[id % this.workers.length];
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, fmt: header.fmt, bits: header.bits, w: header.w, h: header.h,
        payload: copy.buffer }, [copy.buffer]);
    });
  }
}
