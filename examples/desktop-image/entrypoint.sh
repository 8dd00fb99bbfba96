#!/usr/bin/env bash
# Container entrypoint: a virtual desktop (Xvfb + openbox) on $DISPLAY, served by hdx.
# Runs as the image's user (hdx), so the X server and hdx share MIT-SHM segments. Arguments
# are passed on to `hdx serve` (e.g. --log-format json).
set -euo pipefail

export DISPLAY="${DISPLAY:-:0}"
screen="${XVFB_SCREEN:-1920x1080x24}"

Xvfb "$DISPLAY" -screen 0 "$screen" +extension RANDR -nolisten tcp &
xvfb_pid=$!

# Wait for the display to answer: at most 10 s.
for _ in $(seq 100); do
  if xdpyinfo >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$xvfb_pid" 2>/dev/null; then
    echo "hdx-entrypoint: Xvfb $DISPLAY exited while starting" >&2
    exit 1
  fi
  sleep 0.1
done
if ! xdpyinfo >/dev/null 2>&1; then
  echo "hdx-entrypoint: display $DISPLAY did not answer within 10 s" >&2
  exit 1
fi

# The window manager; a derived image may add an executable /etc/hdx/startup (the desktop's
# programs), which openbox runs once it is up.
if [ -x /etc/hdx/startup ]; then
  openbox --startup /etc/hdx/startup &
else
  openbox &
fi

# hdx replaces this shell: tini's SIGTERM reaches it directly and starts the drain.
exec hdx serve --source "x11:$DISPLAY" --config /etc/hdx/hdx.toml "$@"
