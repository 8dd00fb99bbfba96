// How the desktop canvas maps onto the window: 1:1 device pixels (pan with scrollbars) or
// fit-to-window. Any view that is not exactly one desktop pixel per device pixel is marked as
// not for diagnosis.

export class View {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {HTMLElement} viewport the scrolling container
   * @param {HTMLElement} warning shown while the view is scaled
   * @param {HTMLButtonElement} toggle switches the mode
   */
  constructor(canvas, viewport, warning, toggle) {
    this.canvas = canvas;
    this.viewport = viewport;
    this.warning = warning;
    this.toggle = toggle;
    /** @type {'1:1' | 'fit'} */
    this.mode = '1:1';
    this.scale = 1;
    toggle.addEventListener('click', () => this.setMode(this.mode === 'fit' ? '1:1' : 'fit'));
    window.addEventListener('resize', () => this.layout());
    // devicePixelRatio changes when the window moves to another monitor or the user zooms.
    this.watchDevicePixelRatio();
  }

  /** @param {'1:1' | 'fit'} mode */
  setMode(mode) {
    this.mode = mode;
    this.toggle.textContent = mode === 'fit' ? '1:1 pixels' : 'Fit to window';
    this.layout();
  }

  /** Recompute the canvas's CSS size after a mode, window, DPR or desktop-size change. */
  layout() {
    const dpr = window.devicePixelRatio || 1;
    const { width, height } = this.canvas;
    let cssWidth = width / dpr;
    let cssHeight = height / dpr;
    this.viewport.classList.toggle('fit', this.mode === 'fit');
    if (this.mode === 'fit') {
      const fit = Math.min(this.viewport.clientWidth / cssWidth, this.viewport.clientHeight / cssHeight);
      cssWidth *= fit;
      cssHeight *= fit;
    }
    this.canvas.style.width = `${cssWidth}px`;
    this.canvas.style.height = `${cssHeight}px`;
    // Device pixels per desktop pixel: exactly 1 only in 1:1 mode (or a fit that happens to be 1).
    this.scale = (cssWidth * dpr) / width;
    const scaled = Math.abs(this.scale - 1) > 1e-6;
    this.warning.hidden = !scaled;
    this.canvas.dataset.scaled = String(scaled);
  }

  get scaled() { return Math.abs(this.scale - 1) > 1e-6; }

  /**
   * Desktop coordinates of a pointer event on the canvas.
   * @param {MouseEvent} event
   */
  toDesktop(event) {
    const rect = this.canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * this.canvas.width) / rect.width;
    const y = ((event.clientY - rect.top) * this.canvas.height) / rect.height;
    return { x: Math.floor(x), y: Math.floor(y) };
  }

  watchDevicePixelRatio() {
    const query = window.matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`);
    query.addEventListener('change', () => { this.layout(); this.watchDevicePixelRatio(); }, { once: true });
  }
}
