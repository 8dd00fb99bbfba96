// Decodes lossless tiles off the main thread (a module worker), so decoding never delays the
// video. In: {id, fmt, bits, w, h, payload: ArrayBuffer}. Out: {id, ok: true, kind, ...} with
// kind 'bitmap' (an ImageBitmap), 'rgba' (RGBA bytes) or 'samples16' (Uint16 samples), all
// transferred, or {id, ok: false, error}.

import { decodeJpegLs } from './jls.js';
import { decompress as zstdDecompress } from './fzstd.js';
import { FORMAT } from './tiles.js';

function greyToRgba(grey) {
  const out = new Uint8ClampedArray(grey.length * 4);
  for (let i = 0, j = 0; i < grey.length; i++, j += 4) {
    out[j] = out[j + 1] = out[j + 2] = grey[i];
    out[j + 3] = 255;
  }
  return out;
}

function rgbToRgba(rgb) {
  const out = new Uint8ClampedArray((rgb.length / 3) * 4);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    out[j] = rgb[i];
    out[j + 1] = rgb[i + 1];
    out[j + 2] = rgb[i + 2];
    out[j + 3] = 255;
  }
  return out;
}

function sizeHeader(payload, w, h, what) {
  if (payload.length < 4) throw new Error(`${what} tile shorter than its header`);
  const width = (payload[0] << 8) | payload[1];
  const height = (payload[2] << 8) | payload[3];
  if (width !== w || height !== h) throw new Error(`${what} tile size mismatch`);
}

/** Grey samples of a JPEG-LS or raw tile: Uint8Array (8-bit) or Uint16Array. */
async function greySamples(fmt, bits, w, h, payload) {
  if (fmt === FORMAT.RAW) {
    sizeHeader(payload, w, h, 'raw');
    const body = payload.slice(4); // aligned copy
    const bytes = bits > 8 ? 2 : 1;
    if (body.length !== w * h * bytes) throw new Error('raw tile size mismatch');
    return bytes === 2 ? new Uint16Array(body.buffer, 0, w * h) : body;
  }
  const image = await decodeJpegLs(payload);
  if (image.width !== w || image.height !== h || image.componentCount !== 1 ||
      (image.bitsPerSample > 8) !== (bits > 8)) {
    throw new Error('tile does not match its header');
  }
  return image.data;
}

async function decode({ fmt, bits, w, h, payload }) {
  if (fmt === FORMAT.JXL || fmt === FORMAT.PNG) {
    const type = fmt === FORMAT.JXL ? 'image/jxl' : 'image/png';
    const bitmap = await createImageBitmap(new Blob([payload], { type }),
      { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    if (bitmap.width !== w || bitmap.height !== h) throw new Error('tile size mismatch');
    return { kind: 'bitmap', bitmap };
  }
  if (fmt === FORMAT.ZSTD) {
    sizeHeader(payload, w, h, 'zstd');
    const out = new Uint8Array(w * h * 3); // bounded: a frame claiming more fails
    const rgb = zstdDecompress(payload.subarray(4), out);
    if (rgb.length !== out.length) throw new Error('zstd tile is short');
    return { kind: 'rgba', rgba: rgbToRgba(rgb) };
  }
  if (fmt === FORMAT.JLS || fmt === FORMAT.RAW) {
    const samples = await greySamples(fmt, bits, w, h, payload);
    if (bits > 8) return { kind: 'samples16', samples };
    return { kind: 'rgba', rgba: greyToRgba(samples) };
  }
  throw new Error(`unknown tile format ${fmt}`);
}

self.onmessage = async (event) => {
  const job = event.data;
  try {
    const result = await decode({ ...job, payload: new Uint8Array(job.payload) });
    const transfer = [result.bitmap, result.rgba && result.rgba.buffer,
      result.samples && result.samples.buffer].filter(Boolean);
    self.postMessage({ id: job.id, ok: true, ...result }, transfer);
  } catch (err) {
    self.postMessage({ id: job.id, ok: false, error: String(err && err.message ? err.message : err) });
  }
};
