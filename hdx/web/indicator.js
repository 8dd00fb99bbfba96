// The lossless indicator: "LOSSLESS ✓" only when the compositor says every visible pixel is
// verified exact; otherwise "LOSSY" with why, and refinement progress.

export class LosslessIndicator {
  /** @param {HTMLElement} element */
  constructor(element) {
    this.element = element;
  }

  /** @param {{lossless: boolean, reason: string | null, coverage: number}} state */
  show(state) {
    const text = state.lossless
      ? 'LOSSLESS ✓'
      : `LOSSY · ${state.reason === 'refining' ? `refining ${Math.floor(state.coverage * 100)}%` : state.reason}`;
    if (this.element.textContent !== text) this.element.textContent = text;
    this.element.classList.toggle('exact', state.lossless);
    this.element.classList.toggle('lossy', !state.lossless);
  }
}
