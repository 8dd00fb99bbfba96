// Pointer, wheel and keyboard from the page to the `control` channel, in desktop coordinates.
// Keys carry both `key` (the character on the user's layout) and `code` (the physical key).
// Everything held is released when the page loses focus, so nothing sticks on the desktop.

/**
 * @param {HTMLCanvasElement} canvas
 * @param {HTMLElement} focusTarget element that takes keyboard focus
 * @param {import('./view.js').View} view
 * @param {(msg: object) => void} send
 */
export function attachInput(canvas, focusTarget, view, send) {
  const keysDown = new Map(); // code -> key
  const buttonsDown = new Set();
  let last = { x: 0, y: 0 };

  const pointer = (action, event) => {
    last = view.toDesktop(event);
    const msg = { t: 'pointer', a: action, x: last.x, y: last.y };
    if (action !== 'move') msg.b = event.button;
    send(msg);
  };
  canvas.addEventListener('pointermove', (e) => pointer('move', e));
  canvas.addEventListener('pointerdown', (e) => {
    focusTarget.focus();
    canvas.setPointerCapture(e.pointerId);
    buttonsDown.add(e.button);
    pointer('down', e);
    e.preventDefault();
  });
  canvas.addEventListener('pointerup', (e) => { buttonsDown.delete(e.button); pointer('up', e); });
  canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  canvas.addEventListener('wheel', (e) => {
    const at = view.toDesktop(e);
    send({ t: 'wheel', x: at.x, y: at.y, dx: e.deltaX, dy: e.deltaY });
    e.preventDefault();
  }, { passive: false });

  const key = (down, e) => {
    if (e.isComposing || !e.key || !e.code) return;
    if (down) keysDown.set(e.code, e.key); else keysDown.delete(e.code);
    send({ t: 'key', key: e.key.slice(0, 32), code: e.code.slice(0, 32), down });
    e.preventDefault();
  };
  focusTarget.addEventListener('keydown', (e) => key(true, e));
  focusTarget.addEventListener('keyup', (e) => key(false, e));

  const releaseAll = () => {
    for (const [code, k] of keysDown) send({ t: 'key', key: k, code, down: false });
    keysDown.clear();
    for (const b of buttonsDown) send({ t: 'pointer', a: 'up', x: last.x, y: last.y, b });
    buttonsDown.clear();
  };
  window.addEventListener('blur', releaseAll);
  document.addEventListener('visibilitychange', () => { if (document.hidden) releaseAll(); });
  window.addEventListener('pagehide', releaseAll);
}
