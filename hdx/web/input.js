// Pointer, wheel and keyboard from the page to the `control` channel, in desktop coordinates.
// Keys carry both `key` (the character on the user's layout) and `code` (the physical key).
// Everything held is released when the page loses focus, so nothing sticks on the desktop.
// Nothing is sent unless `mayDrive()` says so (a view-only page, or a controller while someone
// else holds the floor, sends nothing); the page's own keys (scrolling, shortcuts) then work.

/**
 * @param {HTMLCanvasElement} canvas
 * @param {HTMLElement} focusTarget element that takes keyboard focus
 * @param {import('./view.js').View} view
 * @param {(msg: object) => void} send
 * @param {() => boolean} mayDrive the gate in front of every message
 * @param {() => void} onBlocked the user tried to drive while the gate was shut
 * @returns {{releaseAll: () => void, forget: () => void}}
 */
export function attachInput(canvas, focusTarget, view, send, mayDrive = () => true, onBlocked = () => {}) {
  const keysDown = new Map(); // code -> key
  const buttonsDown = new Set();
  let last = { x: 0, y: 0 };

  const pointer = (action, event) => {
    last = view.toDesktop(event);
    const msg = { t: 'pointer', a: action, x: last.x, y: last.y };
    if (action !== 'move') msg.b = event.button;
    send(msg);
  };
  canvas.addEventListener('pointermove', (e) => { if (mayDrive()) pointer('move', e); });
  canvas.addEventListener('pointerdown', (e) => {
    focusTarget.focus();
    e.preventDefault();
    if (!mayDrive()) { onBlocked(); return; }
    canvas.setPointerCapture(e.pointerId);
    buttonsDown.add(e.button);
    pointer('down', e);
  });
  canvas.addEventListener('pointerup', (e) => {
    // Only a button this page pressed is released: an `up` alone would be input of its own.
    if (!buttonsDown.delete(e.button) || !mayDrive()) return;
    pointer('up', e);
  });
  canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  canvas.addEventListener('wheel', (e) => {
    if (!mayDrive()) return; // the viewport scrolls (pans) instead
    const at = view.toDesktop(e);
    send({ t: 'wheel', x: at.x, y: at.y, dx: e.deltaX, dy: e.deltaY });
    e.preventDefault();
  }, { passive: false });

  const key = (down, e) => {
    if (e.isComposing || !e.key || !e.code) return;
    if (!mayDrive()) {
      if (down && !e.repeat) onBlocked();
      keysDown.delete(e.code);
      return;
    }
    if (down) keysDown.set(e.code, e.key); else if (!keysDown.delete(e.code)) return;
    send({ t: 'key', key: e.key.slice(0, 32), code: e.code.slice(0, 32), down });
    e.preventDefault();
  };
  focusTarget.addEventListener('keydown', (e) => key(true, e));
  focusTarget.addEventListener('keyup', (e) => key(false, e));

  /** Forget what is held without sending: the desktop no longer has it (the floor moved on,
   * and the server released this page's keys and buttons when it did). */
  const forget = () => {
    keysDown.clear();
    buttonsDown.clear();
  };
  const releaseAll = () => {
    if (mayDrive()) {
      for (const [code, k] of keysDown) send({ t: 'key', key: k, code, down: false });
      for (const b of buttonsDown) send({ t: 'pointer', a: 'up', x: last.x, y: last.y, b });
    }
    forget();
  };
  window.addEventListener('blur', releaseAll);
  document.addEventListener('visibilitychange', () => { if (document.hidden) releaseAll(); });
  window.addEventListener('pagehide', releaseAll);
  return { releaseAll, forget };
}
