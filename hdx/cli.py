"""The ``hdx`` command: ``serve``, ``doctor`` and ``client``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hdx.config import Config, load_config
from hdx.errors import HdxError

log = logging.getLogger("hdx")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hdx", description="Remote display over WebRTC that refines to lossless pixels.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve a desktop to browsers",
                           description="Serve a desktop. Flags override HDX_* environment "
                           "variables, which override the --config file.")
    serve.add_argument("--source", help="synthetic (default) | image:PATH | x11:DISPLAY")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8080; 0 = any free port)")
    serve.add_argument("--encoder", choices=["auto", "nvenc", "x264"],
                       help="video encoder (default auto: NVENC if it works, else libx264)")
    serve.add_argument("--fps", type=int, help="capture/encode rate ceiling (default 30)")
    serve.add_argument("--bitrate", type=int, dest="bitrate_kbps", metavar="KBPS",
                       help="video bitrate ceiling in kbit/s (default 8000)")
    serve.add_argument("--width", type=int, help="canvas width (synthetic default 1920)")
    serve.add_argument("--height", type=int, help="canvas height (synthetic default 1080)")
    serve.add_argument("--cine-seconds", type=float,
                       help="synthetic demo: seconds of cine paging (default 4; <0 forever)")
    serve.add_argument("--log-level", help="DEBUG, INFO (default), WARNING, ...")
    serve.add_argument("--log-format", choices=["text", "json"], help="log format")
    serve.add_argument("--config", type=Path, help="TOML settings file (also HDX_CONFIG)")

    doctor = sub.add_parser("doctor", help="check what this machine offers hdx")
    doctor.add_argument("--json", action="store_true", help="print JSON instead of text")

    client = sub.add_parser("client", help="connect a headless viewer and report what it got")
    client.add_argument("url", help="server URL, e.g. http://127.0.0.1:8080/")
    client.add_argument("--frames", type=int, default=60, help="frames to receive (default 60)")
    client.add_argument("--timeout", type=float, default=15.0,
                        help="seconds to wait for a connection or a frame (default 15)")
    client.add_argument("--save", type=Path, help="write the last decoded frame as PNG")
    client.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "doctor":
            return _doctor(args)
        return _client(args)
    except HdxError as exc:
        print(f"hdx: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _serve(args: argparse.Namespace) -> int:
    from hdx.logs import configure_logging

    flags = {name: getattr(args, name) for name in (
        "source", "host", "port", "encoder", "fps", "bitrate_kbps", "width", "height",
        "cine_seconds", "log_level", "log_format")}
    config = load_config(flags, config_file=args.config)
    configure_logging(config.log_level, config.log_format)
    asyncio.run(_serve_until_signalled(config))
    return 0


async def _serve_until_signalled(config: Config) -> None:
    from hdx.server.server import HdxServer
    from hdx.sources.factory import open_source

    source = open_source(config.source, config.width, config.height, config.cine_seconds,
                         config.fps)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with HdxServer(source, config) as server:
        print(f"hdx: serving {config.source} at {server.url}", flush=True)
        await stop.wait()
        log.info("stopping: closing %d session(s)", len(server.sessions))


def _doctor(args: argparse.Namespace) -> int:
    from hdx.doctor import diagnose, render

    logging.basicConfig(level=logging.WARNING)
    report = diagnose()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def _client(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    report = asyncio.run(_run_client(args.url, args.frames, args.timeout, args.save))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        first = report["first_frame_s"]
        print(f"{report['frames']} frames from {report['url']} "
              f"({report['width']}x{report['height']}, encoder {report['encoder']}); "
              f"first frame after {first * 1000:.0f} ms; {report['fps']:.1f} fps")
        if args.save:
            print(f"last frame saved to {args.save}")
    return 0


async def _run_client(url: str, frames: int, wait_s: float, save: Path | None) -> dict[str, Any]:
    import cv2

    from hdx.client.viewer import ClientError, Viewer

    async with Viewer(url, connect_timeout_s=wait_s) as viewer:
        await viewer.receive(frames, timeout_s=wait_s)
        if save is not None and viewer.last_frame is not None:
            if not cv2.imwrite(str(save), viewer.last_frame):
                raise ClientError(f"could not write {save}")
        return viewer.report.as_json()


if __name__ == "__main__":
    sys.exit(main())
