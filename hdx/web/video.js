// Hand decoded video frames to the compositor, as soon as they are decoded.
//
// Preferred path: MediaStreamTrackProcessor hands us each decoded VideoFrame, which we keep
// open until the compositor has drawn it (it may wait briefly for the frame's announcement).
// Fallback: a hidden <video> and requestVideoFrameCallback (frames cannot be held there, so
// an unannounced frame drops the lossless overlays).

/**
 * @param {MediaStreamTrack} track
 * @param {(source: CanvasImageSource, width: number, height: number,
 *          rtpTimestamp: number | undefined, canHold: boolean) => Promise<void>} present
 *   draws one frame; `rtpTimestamp` where the browser tells it
 * @returns {{path: string, stop: () => void}}
 */
export function renderTrack(track, present) {
  if (typeof MediaStreamTrackProcessor === 'function') {
    return renderWithProcessor(track, present);
  }
  return renderWithVideoElement(track, present);
}

function renderWithProcessor(track, present) {
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
        await present(frame, frame.displayWidth, frame.displayHeight, meta.rtpTimestamp, true);
      } finally {
        frame.close();
      }
    }
  })().catch((err) => console.warn('hdx: video reader stopped', err));
  return { path: 'MediaStreamTrackProcessor', stop: () => { running = false; reader.cancel(); } };
}

function renderWithVideoElement(track, present) {
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = new MediaStream([track]);
  let running = true;
  const onVideoFrame = (_now, meta) => {
    if (!running) return;
    present(video, video.videoWidth, video.videoHeight, meta && meta.rtpTimestamp, false);
    video.requestVideoFrameCallback(onVideoFrame);
  };
  video.requestVideoFrameCallback(onVideoFrame);
  video.play().catch((err) => console.warn('hdx: video did not start', err));
  return { path: 'video+requestVideoFrameCallback', stop: () => { running = false; video.srcObject = null; } };
}
