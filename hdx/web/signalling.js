// Signalling: one POST of the complete offer (non-trickle ICE), one JSON answer back.

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

/**
 * POST the offer to the server; throws an Error carrying the server's reason on 4xx/5xx.
 * @param {RTCSessionDescription} offer
 * @returns {Promise<{sdp: string, type: RTCSdpType, session: string}>}
 */
export async function postOffer(offer) {
  const response = await fetch('/api/offer' + location.search, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ sdp: offer.sdp, type: offer.type }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(`server refused the connection (${response.status}): ${body.error || response.statusText}`);
  }
  return body;
}
