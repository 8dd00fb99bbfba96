// The `tiles` channel's binary messages (twin of hdx/lossless/protocol.py; format in
// docs/protocol.md). Every chunk carries the full 32-byte header; a tile is complete when all
// its chunks have arrived. Anything malformed throws, and the caller counts and drops it.

const HEADER_BYTES = 32;
const MAX_PAYLOAD = 64 << 20;
export const FORMAT = { JXL: 1, PNG: 2, JLS: 3, RAW: 4, ZSTD: 5 };

/**
 * @typedef {{id: number, x: number, y: number, w: number, h: number, basePts: number,
 *            fmt: number, bits: number, channels: number, length: number}} TileHeader
 */

/** @param {ArrayBuffer} buffer */
export function parseChunk(buffer) {
  if (!(buffer instanceof ArrayBuffer)) throw new Error('tile messages are binary');
  if (buffer.byteLength < HEADER_BYTES) throw new Error('tile message shorter than its header');
  const v = new DataView(buffer);
  if (v.getUint8(0) !== 0x48 || v.getUint8(1) !== 0x54 || v.getUint8(2) !== 1 || v.getUint8(3) !== 1) {
    throw new Error('not an hdx tile message (magic, version or kind)');
  }
  const index = v.getUint16(8);
  const count = v.getUint16(10);
  /** @type {TileHeader} */
  const header = {
    id: v.getUint32(4), x: v.getUint16(12), y: v.getUint16(14), w: v.getUint16(16),
    h: v.getUint16(18), basePts: v.getUint32(20), fmt: v.getUint8(24), bits: v.getUint8(25),
    channels: v.getUint8(26), length: v.getUint32(28),
  };
  if (count === 0 || index >= count) throw new Error(`chunk ${index} of ${count}`);
  if (!header.w || !header.h || ![8, 16].includes(header.bits) || ![1, 3].includes(header.channels)) {
    throw new Error('bad tile geometry or depth');
  }
  if (header.length > MAX_PAYLOAD) throw new Error('tile payload over the limit');
  return { header, index, count, piece: new Uint8Array(buffer, HEADER_BYTES) };
}

function sameHeader(a, b) {
  return Object.keys(a).every((k) => a[k] === b[k]);
}

/** Collects chunks into tiles; bounded: at most `maxPartial` incomplete tiles are held. */
export class Reassembler {
  constructor(maxPartial = 8, maxBytes = 32 << 20) {
    this.maxPartial = maxPartial;
    this.maxBytes = maxBytes;
    /** @type {Map<number, {header: TileHeader, count: number, pieces: Map<number, Uint8Array>, size: number}>} */
    this.partial = new Map();
  }

  /** @returns {{header: TileHeader, payload: Uint8Array} | null} the tile once complete */
  add(buffer) {
    const { header, index, count, piece } = parseChunk(buffer);
    let entry = this.partial.get(header.id);
    if (!entry) {
      entry = { header, count, pieces: new Map(), size: 0 };
      this.partial.set(header.id, entry);
      while (this.partial.size > this.maxPartial) this.partial.delete(this.partial.keys().next().value);
    } else if (entry.count !== count || !sameHeader(entry.header, header)) {
      this.partial.delete(header.id);
      throw new Error(`chunk ${index} of tile ${header.id} disagrees with its first chunk`);
    }
    if (entry.pieces.has(index)) throw new Error(`duplicate chunk ${index} of tile ${header.id}`);
    entry.pieces.set(index, piece);
    entry.size += piece.length;
    let held = 0;
    for (const e of this.partial.values()) held += e.size;
    if (entry.size > header.length || held > this.maxBytes) {
      this.partial.delete(header.id);
      throw new Error(`tile ${header.id} is larger than it said`);
    }
    if (entry.pieces.size < count) return null;
    this.partial.delete(header.id);
    if (entry.size !== header.length) throw new Error(`tile ${header.id} is incomplete`);
    const payload = new Uint8Array(header.length);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const p = entry.pieces.get(i);
      payload.set(p, at);
      at += p.length;
    }
    return { header, payload };
  }
}

/** A frame announcement's changed tiles: base64 of row-major bits, MSB first. */
export function unpackDirty(text, rows, cols) {
  const raw = atob(text);
  if (raw.length !== Math.ceil((rows * cols) / 8)) throw new Error('dirty map does not fit the grid');
  const out = new Uint8Array(rows * cols);
  for (let i = 0; i < rows * cols; i++) out[i] = (raw.charCodeAt(i >> 3) >> (7 - (i & 7))) & 1;
  return out;
}
