// The watermark: the user's name and the time, tiled and semi-transparent, on its own canvas
// stacked over the screen canvas (pointer-events: none). It never draws into the screen
// canvas, so snapshot() and lossless verification read only the desktop's pixels; the eye
// (and a screenshot) sees both. The overlay's backing store is sized in device pixels, so the
// text is crisp and the same size at any view scale, while its box follows the screen's.

const ANGLE = -Math.PI / 7;

/**
 * The watermark's text for `user` at `date` (local time, to the minute).
 * @param {string} user
 * @param {Date} date
 */
export function watermarkText(user, date) {
  const pad = (n) => String(n).padStart(2, '0');
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${user} · ${day} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export class Watermark {
  /**
   * @param {HTMLCanvasElement} overlay the watermark's own canvas
   * @param {HTMLCanvasElement} screen the screen canvas it covers (never drawn into)
   */
  constructor(overlay, screen) {
    this.overlay = overlay;
    this.screen = screen;
    /** @type {string | null} whose name is shown; null: no watermark */
    this.user = null;
    this.painted = '';
  }

  /** Show `user`'s watermark, or none (null). */
  show(user) {
    this.user = user;
    this.overlay.hidden = user === null;
    this.painted = '';
    if (user === null) {
      this.overlay.width = 1;
      this.overlay.height = 1;
    }
    this.follow();
  }

  /** Keep up with the screen canvas's box and the clock; cheap when nothing changed (call it
   * often: a new minute or a new view scale repaints). */
  follow(now = new Date()) {
    if (this.user === null) return;
    const { overlay, screen } = this;
    if (overlay.style.width !== screen.style.width) overlay.style.width = screen.style.width;
    if (overlay.style.height !== screen.style.height) overlay.style.height = screen.style.height;
    const dpr = window.devicePixelRatio || 1;
    const box = screen.getBoundingClientRect();
    const width = Math.max(1, Math.round(box.width * dpr));
    const height = Math.max(1, Math.round(box.height * dpr));
    const text = watermarkText(this.user, now);
    const key = `${width}x${height}@${dpr} ${text}`;
    if (key === this.painted) return;
    this.painted = key;
    if (overlay.width !== width || overlay.height !== height) {
      overlay.width = width;
      overlay.height = height;
    } else {
      overlay.getContext('2d').clearRect(0, 0, width, height);
    }
    paint(overlay.getContext('2d'), width, height, dpr, text);
  }
}

/**
 * Tile `text` over the whole canvas, rotated, light on dark and dark on light alike.
 * @param {CanvasRenderingContext2D} ctx
 */
function paint(ctx, width, height, dpr, text) {
  ctx.save();
  ctx.font = `${Math.round(15 * dpr)}px system-ui, sans-serif`;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  ctx.lineWidth = Math.max(1, dpr);
  ctx.fillStyle = 'rgba(255, 255, 255, 0.22)';
  ctx.strokeStyle = 'rgba(0, 0, 0, 0.22)';
  const stepX = ctx.measureText(text).width + 90 * dpr;
  const stepY = 110 * dpr;
  ctx.translate(width / 2, height / 2);
  ctx.rotate(ANGLE);
  const reach = Math.hypot(width, height) / 2 + stepX;
  let row = 0;
  for (let y = -reach; y <= reach; y += stepY, row++) {
    const shift = (row % 2) * (stepX / 2);
    for (let x = -reach + shift; x <= reach; x += stepX) {
      ctx.strokeText(text, x, y);
      ctx.fillText(text, x, y);
    }
  }
  ctx.restore();
}
