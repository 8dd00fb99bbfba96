// One browser window per desktop monitor. `?monitor=NAME` makes this page show one RandR
// monitor of the desktop (its own video track and session); "Open monitors" opens a window
// per monitor and, where the browser offers the Window Management API, places each on one of
// this computer's screens in order (the permission prompt is the browser's). A window gets the
// join token in its URL's fragment (`#token=`: never sent to a server), and strips it at once.
import { bearer } from './access.js';

/** The monitor this page shows (null: the whole desktop). */
export function selectedMonitor() {
  return new URLSearchParams(location.search).get('monitor');
}

/**
 * Show the "Open monitors" button when the desktop has more than one monitor.
 * @param {HTMLButtonElement} button
 * @param {string | null} token this page's join token (the windows join with it too)
 */
export async function offerMonitorWindows(button, token) {
  let monitors = [];
  try {
    const response = await fetch('/api/monitors', { headers: bearer(token), credentials: 'omit', cache: 'no-store' });
    if (response.ok) monitors = (await response.json()).monitors || [];
  } catch { return; }
  if (monitors.length < 2) return;
  button.hidden = false;
  button.title = `Open one window per desktop monitor (${monitors.map((m) => m.name).join(', ')})`;
  button.addEventListener('click', () => openMonitorWindows(monitors, token));
}

/**
 * @param {{name: string, width: number, height: number}[]} monitors
 * @param {string | null} token
 */
async function openMonitorWindows(monitors, token) {
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
    const fragment = token ? `#${new URLSearchParams({ token })}` : '';
    window.open(`${location.pathname}?${params}${fragment}`, `hdx-monitor-${monitor.name}`, features);
  });
}
