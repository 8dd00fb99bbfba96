// The peer connection: a receive-only H.264 video transceiver, the `control` data channel and
// the `tiles` channel that carries lossless refinement (binary, reliable, ordered).
import { iceGatheringDone, postOffer } from './signalling.js';

/**
 * @typedef {{pc: RTCPeerConnection, control: RTCDataChannel, tiles: RTCDataChannel,
 *            track: Promise<MediaStreamTrack>, session: string}} Peer
 */

/**
 * Connect to the hdx server this page came from, as `who` says (token and monitor).
 * @param {(msg: any) => void} onControlMessage
 * @param {(data: ArrayBuffer) => void} onTileMessage
 * @param {{token: string | null, monitor: string | null}} who
 * @returns {Promise<Peer>}
 */
export async function connect(onControlMessage, onTileMessage, who) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const transceiver = pc.addTransceiver('video', { direction: 'recvonly' });
  preferH264(transceiver);
  const control = pc.createDataChannel('control', { ordered: true });
  control.onmessage = (event) => {
    try { onControlMessage(JSON.parse(event.data)); } catch (err) { console.warn('hdx: bad control message', err); }
  };
  const tiles = pc.createDataChannel('tiles', { ordered: true });
  tiles.binaryType = 'arraybuffer';
  tiles.onmessage = (event) => onTileMessage(event.data);
  const track = new Promise((resolve) => {
    pc.ontrack = (event) => {
      lowLatency(event.receiver);
      resolve(event.track);
    };
  });
  let answer;
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc);
    answer = await postOffer(pc.localDescription, who);
    await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
  } catch (err) {
    pc.close(); // a refused or failed offer must not leave a peer behind
    throw err;
  }
  return { pc, control, tiles, track, session: answer.session };
}

/** hdx sends H.264 only; say so up front so the offer is small and the answer unambiguous. */
function preferH264(transceiver) {
  const caps = RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities('video');
  if (!caps || !transceiver.setCodecPreferences) return;
  const h264 = caps.codecs.filter((c) => c.mimeType === 'video/H264');
  const rtx = caps.codecs.filter((c) => c.mimeType === 'video/rtx');
  if (h264.length) transceiver.setCodecPreferences([...h264, ...rtx]);
}

/** Ask the receiver not to hold frames back for smoothness: a desktop wants them now. */
function lowLatency(receiver) {
  if ('jitterBufferTarget' in receiver) receiver.jitterBufferTarget = 0;
  if ('playoutDelayHint' in receiver) receiver.playoutDelayHint = 0;
}
