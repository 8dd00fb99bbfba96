// The desktop's pointer shape, shown as this page's own cursor over the screen canvas.
// The server never draws the cursor into the picture (X GetImage leaves it out), so moving
// the mouse changes no pixel and costs no round trip: the browser moves its cursor locally.

/**
 * @param {HTMLElement} element the element the user points at (the screen canvas)
 * @returns {(msg: {png?: string, hx?: number, hy?: number, visible?: boolean}) => void}
 */
export function cursorSetter(element) {
  return (msg) => {
    if (!msg.visible || typeof msg.png !== 'string' || !/^[A-Za-z0-9+/=]+$/.test(msg.png)) {
      element.style.cursor = 'none';
      return;
    }
    const hx = Math.max(0, Math.min(255, msg.hx | 0));
    const hy = Math.max(0, Math.min(255, msg.hy | 0));
    element.style.cursor = `url(data:image/png;base64,${msg.png}) ${hx} ${hy}, default`;
  };
}
