// Exact JPEG-LS decoding in the page: CharLS compiled to plain JavaScript (charls-decode.js,
// vendored from @cornerstonejs/codec-charls; no eval, no WebAssembly, so the page's CSP holds).
// Decoding runs synchronously on the page's thread, at roughly 10-30 MB/s of samples.

/**
 * @typedef {object} JpegLsImage
 * @property {number} width
 * @property {number} height
 * @property {number} bitsPerSample 2..16
 * @property {number} componentCount 1 (grey) or 3 (colour)
 * @property {number} interleaveMode 0: planar (all of component 0, then 1, then 2);
 *   1 or 2: pixel-interleaved (RGBRGB...). Always 0 for one component.
 * @property {number} nearLossless 0 for a lossless stream
 * @property {Uint8Array | Uint16Array} data samples row by row, Uint16Array above 8 bits
 */

/** Streams that declare a bigger image are refused before anything is allocated. */
export const MAX_DECODED_BYTES = 64 << 20;

/** @type {Promise<{charls: any, decoder: any}> | null} one CharLS instance for the page */
let instance = null;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => { script.remove(); reject(new Error(`could not load ${src}`)); };
    document.head.append(script);
  });
}

async function instantiate() {
  if (typeof globalThis.CharLS !== "function") {
    // A page loads the classic script; a module worker (no document) imports it.
    if (typeof document !== "undefined") await loadScript("/static/charls-decode.js");
    else await import("./charls-decode.js");
  }
  const charls = await globalThis.CharLS();
  return { charls, decoder: new charls.JpegLSDecoder() };
}

/**
 * Width, height, component count and bits per sample from the SOF55 segment, or throws.
 * @param {Uint8Array} b
 */
function frameHeader(b) {
  if (b.length < 2 || b[0] !== 0xff || b[1] !== 0xd8) throw new Error("no SOI marker");
  for (let i = 2; i + 4 <= b.length;) {
    if (b[i] !== 0xff) throw new Error(`expected a marker at byte ${i}`);
    const marker = b[i + 1];
    if (marker === 0xff) { i += 1; continue; } // fill byte
    const length = (b[i + 2] << 8) | b[i + 3];
    if (marker === 0xf7 && length >= 6 && i + 10 <= b.length) {
      return { bits: b[i + 4], height: (b[i + 5] << 8) | b[i + 6],
               width: (b[i + 7] << 8) | b[i + 8], components: b[i + 9] };
    }
    if (marker === 0xda) break; // scan data before any frame header
    i += 2 + length;
  }
  throw new Error("no JPEG-LS frame header (SOF55)");
}

/**
 * Decodes one JPEG-LS stream exactly. Rejects with an Error on malformed input.
 * @param {Uint8Array} bytes the whole stream, SOI to EOI
 * @returns {Promise<JpegLsImage>}
 */
export async function decodeJpegLs(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("decodeJpegLs wants a Uint8Array");
  const header = frameHeader(bytes);
  // A scan that runs off the end of the buffer without meeting a marker makes CharLS 2.4 read
  // about 2^32 zero bits before it fails (16 s here; team-charls/charls PR #434). The EOI
  // marker at the end stops it in time, so insist on one (after any DICOM zero padding).
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  if (end < 4 || bytes[end - 2] !== 0xff || bytes[end - 1] !== 0xd9) {
    throw new Error("JPEG-LS stream does not end with an EOI marker: truncated?");
  }
  const stream = bytes.subarray(0, end);
  const declared = header.width * header.height * header.components * (header.bits > 8 ? 2 : 1);
  if (declared > MAX_DECODED_BYTES) {
    throw new Error(`JPEG-LS image of ${header.width}x${header.height}x${header.components} ` +
                    `is over the ${MAX_DECODED_BYTES}-byte limit`);
  }
  const current = (instance ??= instantiate());
  let charls, decoder, frame, decoded;
  try {
    ({ charls, decoder } = await current);
    decoder.getEncodedBuffer(stream.length).set(stream);
    decoder.decode();
    frame = decoder.getFrameInfo();
    decoded = decoder.getDecodedBuffer();
  } catch (error) {
    // A C++ exception unwinds through CharLS without restoring its stack or freeing what it
    // held (the build has exception catching off), and an abort kills it: start afresh.
    if (instance === current) instance = null;
    if (!charls) throw error; // could not load
    // A C++ exception arrives as a number: a pointer to the std::exception.
    const message = typeof error === "number" ? charls.getExceptionMessage(error)
      : String(error?.message ?? error);
    throw new Error(`JPEG-LS decode failed: ${message}`);
  }
  const interleaveMode = decoder.getInterleaveMode();
  const nearLossless = decoder.getNearLossless();
  // getDecodedBuffer is a copy in 1.2.7; were it a view of the CharLS heap, the next decode
  // would overwrite it.
  const own = decoded.buffer === charls.HEAPU8.buffer ? decoded.slice() : decoded;
  const data = frame.bitsPerSample > 8
    ? new Uint16Array(own.buffer, own.byteOffset, own.length >> 1)
    : new Uint8Array(own.buffer, own.byteOffset, own.length);
  return { width: frame.width, height: frame.height, bitsPerSample: frame.bitsPerSample,
           componentCount: frame.componentCount, interleaveMode, nearLossless, data };
}
