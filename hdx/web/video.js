// Draw decoded video frames onto the screen canvas, exactly, as soon as they are decoded.
//
// Preferred path: MediaStreamTrackProcessor hands us each decoded VideoFrame; we draw it at
// (0, 0) unscaled. Fallback: a hidden <video> and requestVideoFrameCallback.

/**
 * @param {MediaStreamTrack} track
 * @param {HTMLCanvasElement} canvas
 * @param {(width: number, height: number, rtpTimestamp: number | undefined) => void} onFrame
 *   called after every drawn frame, with the frame's RTP timestamp where the browser tells it
 * @returns {{path: string, stop: () => void}}
 */
export function renderTrack(track, canvas, onFrame) {
  const ctx = canvas.getContext('2d', { alpha: false });
  const draw = (source, width, height, rtpTimestamp) => {
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    ctx.drawImage(source, 0, 0);
    onFrame(width, height, rtpTimestamp);
  };
  if (typeof MediaStreamTrackProcessor === 'function') {
    return renderWithProcessor(track, draw);
  }
  return renderWithVideoElement(track, draw);
}

function renderWithProcessor(track, draw) {
  // eslint-disable-next-line no-undef
  const processor = new MediaStreamTrackProcessor({ track, maxBufferSize: 1 });
  const reader = processor.readable.getReader();
  let running = true;
  (async () => {
    while (running) {
      const { value: frame, done } = await reader.read();
      if (done) break;
      try {
        const meta = typeof frame.metadata === 'function' ? frame.metadata() : {};
        draw(frame, frame.displayWidth, frame.displayHeight, meta.rtpTimestamp);
      } finally {
        frame.close();
      }
    }
  })().catch((err) => console.warn('hdx: video reader stopped', err));
  return { path: 'MediaStreamTrackProcessor', stop: () => { running = false; reader.cancel(); } };
}

function renderWithVideoElement(track, draw) {
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = new MediaStream([track]);
  let running = true;
  const onVideoFrame = (_now, meta) => {
    if (!running) return;
    draw(video, video.videoWidth, video.videoHeight, meta && meta.rtpTimestamp);
    video.requestVideoFrameCallback(onVideoFrame);
  };
  video.requestVideoFrameCallback(onVideoFrame);
  video.play().catch((err) => console.warn('hdx: video did not start', err));
  return { path: 'video+requestVideoFrameCallback', stop: () => { running = false; video.srcObject = null; } };
}
