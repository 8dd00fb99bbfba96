// Tiny history charts for the dashboard, drawn on small canvases (no library, no inline
// styles). A null in the history is a gap, not a zero.

const LINE = '#6cf';
const EXACT = '#2a2';
const NOT_EXACT = '#b80';
const UNKNOWN = '#444';

/**
 * Draw `values` as a line scaled to the canvas (from 0, or from the smallest value when it
 * is negative); nulls and non-numbers break the line.
 * @param {HTMLCanvasElement} canvas
 * @param {Array<number | null>} values oldest first
 */
export function drawLine(canvas, values) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const finite = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  if (!finite.length) return;
  const low = Math.min(0, ...finite);
  const span = Math.max(...finite) - low || 1;
  const step = values.length > 1 ? (width - 1) / (values.length - 1) : 0;
  ctx.strokeStyle = LINE;
  ctx.lineWidth = 1;
  ctx.beginPath();
  let drawing = false;
  values.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) { drawing = false; return; }
    const x = i * step + 0.5;
    const y = height - 1.5 - ((v - low) / span) * (height - 3);
    if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    drawing = true;
  });
  ctx.stroke();
}

/**
 * Draw a lossless history as bars: green verified exact, amber not, grey unknown.
 * @param {HTMLCanvasElement} canvas
 * @param {Array<boolean | null>} values oldest first
 */
export function drawStates(canvas, values) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  if (!values.length) return;
  const w = width / values.length;
  values.forEach((v, i) => {
    ctx.fillStyle = v === true ? EXACT : v === false ? NOT_EXACT : UNKNOWN;
    ctx.fillRect(Math.floor(i * w), 2, Math.max(1, Math.ceil(w)), height - 4);
  });
}
