// One browser window per desktop monitor. `?monitor=NAME` makes this page show one RandR
// monitor of the desktop (its own video track and session); "Open monitors" opens a window
// per monitor and, where the browser offers the Window Management API, places each on one of
// this computer's screens in order (the permission prompt is the browser's).

/** The monitor this page shows (null: the whole desktop). */
export function selectedMonitor() {
  return new URLSearchParams(location.search).get('monitor');
}

/**
 * Show the "Open monitors" button when the desktop has more than one monitor.
 * @param {HTMLButtonElement} button
 */
export async function offerMonitorWindows(button) {
  let monitors = [];
  try {
    const response = await fetch('/api/monitors' + location.search);
    if (response.ok) monitors = (await response.json()).monitors || [];
  } catch { return; }
  if (monitors.length < 2) return;
  button.hidden = false;
  button.title = `Open one window per desktop monitor (${monitors.map((m) => m.name).join(', ')})`;
  button.addEventListener('click', () => openMonitorWindows(monitors));
}

/** @param {{name: string, width: number, height: number}[]} monitors */
async function openMonitorWindows(monitors) {
  let screens = [];
  if ('getScreenDetails' in window) {
    try { screens = (await window.getScreenDetails()).screens; } catch { screens = []; }
  }
  monitors.forEach((monitor, i) => {
    const params = new URLSearchParams(location.search);
    params.set('monitor', monitor.name);
    const screen = screens[i];
    const features = screen
      ? `left=${screen.availLeft},top=${screen.availTop},width=${screen.availWidth},height=${screen.availHeight}`
      : `width=${Math.round(monitor.width / devicePixelRatio)},height=${Math.round(monitor.height / devicePixelRatio)}`;
    window.open(`${location.pathname}?${params}`, `hdx-monitor-${monitor.name}`, features);
  });
}
