// The main thread's side of tile-worker.js: one worker, promises keyed by job id.

export class TileDecoder {
  constructor() {
    this.worker = new Worker('/static/tile-worker.js', { type: 'module' });
    this.nextId = 1;
    /** @type {Map<number, {resolve: (r: any) => void, reject: (e: Error) => void}>} */
    this.pending = new Map();
    this.worker.onmessage = (event) => {
      const { id, ok, error, ...result } = event.data;
      const job = this.pending.get(id);
      if (!job) return;
      this.pending.delete(id);
      if (ok) job.resolve(result);
      else job.reject(new Error(error));
    };
    this.worker.onerror = (event) => {
      for (const job of this.pending.values()) job.reject(new Error(`tile decoder failed: ${event.message}`));
      this.pending.clear();
    };
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
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, fmt: header.fmt, bits: header.bits, w: header.w, h: header.h,
        payload: copy.buffer }, [copy.buffer]);
    });
  }
}
