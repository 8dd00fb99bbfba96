// Signalling: one POST of the complete offer (non-trickle ICE), one JSON answer back.
import { bearer } from './access.js';

/**
 * Wait until ICE gathering completes, or `timeoutMs` passes (then send what we have).
 * @param {RTCPeerConnection} pc
 * @param {number} timeoutMs
 */
export function iceGatheringDone(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() { if (pc.iceGatheringState === 'complete') done(); }
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** The server refused this page (401/403: no, a bad, an expired or a revoked token): retrying
 * cannot help, so the page shows `reason` and stays put. */
export class AccessRefused extends Error {
  /**
   * @param {number} status 401 or 403
   * @param {string} reason the server's words
   */
  constructor(status, reason) {
    super(`access refused (${status}): ${reason}`);
    this.name = 'AccessRefused';
    this.status = status;
    this.reason = reason;
  }
}

/**
 * POST the offer to the server; throws AccessRefused on 401/403, an Error carrying the
 * server's reason on other 4xx/5xx. The token goes in the Authorization header only.
 * @param {RTCSessionDescription} offer
 * @param {{token: string | null, monitor: string | null}} who
 * @returns {Promise<{sdp: string, type: RTCSdpType, session: string}>}
 */
export async function postOffer(offer, { token, monitor }) {
  const query = monitor ? `?${new URLSearchParams({ monitor })}` : '';
  const response = await fetch(`/api/offer${query}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...bearer(token) },
    body: JSON.stringify({ sdp: offer.sdp, type: offer.type }),
    credentials: 'omit',
    cache: 'no-store',
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const reason = String(body.error || response.statusText || 'no reason given');
    if (response.status === 401 || response.status === 403) throw new AccessRefused(response.status, reason);
    throw new Error(`server refused the connection (${response.status}): ${reason}`);
  }
  return body;
}
