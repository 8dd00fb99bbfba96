"""The ``hdx`` command: ``serve``, ``token``, ``doctor``, ``client`` and ``bench``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
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
    serve.add_argument("--lossless", choices=["on", "off"],
                       help="refine still regions to exact pixels (default on)")
    serve.add_argument("--lossless-quiet-ms", type=int, metavar="MS",
                       help="quiet time before a tile refines (default 150)")
    serve.add_argument("--lossless-budget", type=int, dest="lossless_budget_kbps",
                       metavar="KBPS", help="refinement ceiling while video moves "
                       "(default 4000 kbit/s)")
    serve.add_argument("--drain-timeout", type=float, dest="drain_timeout_s", metavar="S",
                       help="on SIGTERM/SIGINT, seconds to wait for viewers to leave before "
                       "closing them (default 5; a second signal stops at once)")
    serve.add_argument("--min-bitrate", type=int, dest="min_bitrate_kbps", metavar="KBPS",
                       help="floor under the browser's bandwidth estimate (default 500)")
    serve.add_argument("--max-offer-bytes", type=int, metavar="N",
                       help="largest accepted offer body (default 65536; larger gets 413)")
    serve.add_argument("--max-control-message-bytes", type=int, metavar="N",
                       help="largest accepted control message (default 4096)")
    serve.add_argument("--ice-host-addresses", metavar="ADDR,...",
                       help="ICE host candidates (default: loopback for a loopback --host, "
                       "else every non-loopback interface)")
    serve.add_argument("--connect-timeout", type=float, dest="connect_timeout_s", metavar="S",
                       help="close a peer not connected after this long (default 20)")
    serve.add_argument("--lossless-buffer-kb", type=int, metavar="KB",
                       help="tile bytes queued in the channel before the sender waits "
                       "(default 256)")
    security = serve.add_argument_group("access (see docs/security.md)")
    security.add_argument("--auth", choices=["auto", "token", "none"],
                          help="join tokens: auto (required beyond loopback; default), token "
                          "(always), none (never; beyond loopback only with --insecure)")
    security.add_argument("--state-dir", metavar="DIR", help="private folder for the token "
                          "secret, revocations and certificate (default ~/.local/state/hdx)")
    security.add_argument("--public-url", metavar="URL", help="address users reach hdx at "
                          "through a reverse proxy; join links use it")
    security.add_argument("--tls", choices=["auto", "on", "off"],
                          help="HTTPS: auto (on beyond loopback; default), on, off")
    security.add_argument("--tls-cert", metavar="PEM", help="certificate chain to serve "
                          "(default: a self-signed one, fingerprint printed)")
    security.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    security.add_argument("--insecure", action="store_true", default=None,
                          help="allow listening beyond loopback without TLS or tokens")
    security.add_argument("--single-controller", choices=["on", "off"],
                          help="one person drives at a time, with hand-over (default on)")
    security.add_argument("--watermark", choices=["on", "off"],
                          help="clients draw user and time over the screen (default off)")
    security.add_argument("--audit-log", metavar="FILE",
                          help="also write audit records to FILE as JSON lines")
    security.add_argument("--max-sessions", type=int, metavar="N",
                          help="viewers served at once (default 16; one more gets 503)")
    security.add_argument("--max-control-messages-per-s", type=int, metavar="N",
                          help="control messages per viewer per second (default 400)")
    security.add_argument("--max-pending-tiles", type=int, metavar="N",
                          help="unacknowledged lossless tiles per viewer (default 4096)")
    serve.add_argument("--telemetry-alert-after-s", type=float, metavar="S",
                       help="log one warning when a session's experience stays poor this "
                       "long (default 10; see docs/telemetry.md)")
    serve.add_argument("--log-level", help="DEBUG, INFO (default), WARNING, ...")
    serve.add_argument("--log-format", choices=["text", "json"], help="log format")
    serve.add_argument("--config", type=Path, help="TOML settings file (also HDX_CONFIG)")

    token = sub.add_parser(
        "token", help="mint a join link (or revoke a token)",
        description="Print a join link for the server these settings describe (same --config, "
        "HDX_* variables and flags as serve). The link carries a signed token: send it to one "
        "person, over a channel you trust.")
    token.add_argument("--role", choices=["view", "control", "admin"], default="view",
                       help="view: watch only (default); control: may also drive; admin: "
                       "reads the session list")
    token.add_argument("--ttl", default="8h", help="lifetime, e.g. 30m, 8h, 7d (default 8h)")
    token.add_argument("--user", default="guest",
                       help="who the link is for; the audit log names them (default guest)")
    token.add_argument("--revoke", metavar="ID", help="revoke the token with this id instead "
                       "(running servers close its sessions within about 2 s)")
    token.add_argument("--json", action="store_true", help="print JSON (url, id, expiry)")
    token.add_argument("--port", type=int, help="as for serve (--port)")
    for name in ("host", "public_url", "state_dir", "tls", "audit_log"):
        flag = "--" + name.replace("_", "-")
        token.add_argument(flag, dest=name, help=f"as for serve ({flag})")
    token.add_argument("--config", type=Path, help="TOML settings file (also HDX_CONFIG)")

    doctor = sub.add_parser("doctor", help="check what this machine offers hdx")
    doctor.add_argument("--json", action="store_true", help="print JSON instead of text")
    doctor.add_argument("--display", metavar=":N",
                        help="X display to check for x11 capture (default: $DISPLAY)")

    client = sub.add_parser("client", help="connect a headless viewer and report what it got")
    client.add_argument("url", help="server URL, e.g. http://127.0.0.1:8080/")
    client.add_argument("--frames", type=int, default=60, help="frames to receive (default 60)")
    client.add_argument("--timeout", type=float, default=15.0,
                        help="seconds to wait for a connection or a frame, or with "
                        "--until-lossless for everything to be verified (default 15)")
    client.add_argument("--until-lossless", action="store_true",
                        help="compose video and lossless tiles until the server has verified "
                        "every pixel; exit 0 only then (1 if not within --timeout)")
    client.add_argument("--save", type=Path, help="write what the client shows as PNG "
                        "(16-bit grey when the desktop's samples exceed 8 bits)")
    client.add_argument("--json", action="store_true", help="print the report as JSON")
    client.add_argument("--token", help="join token (default: the link's #token= or ?token=, or "
                        "$HDX_TOKEN)")
    client.add_argument("--tls-fingerprint", metavar="SHA256",
                        help="trust the server's certificate with this SHA-256 fingerprint "
                        "(as hdx serve prints it)")
    client.add_argument("--cafile", type=Path, help="trust certificates signed by this CA")

    from hdx.bench.cli import add_bench_parser

    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "token":
            return _token(args)
        if args.command == "bench":
            from hdx.bench.cli import run_bench

            return run_bench(args)
        return _client(args)
    except HdxError as exc:
        print(f"hdx: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _serve(args: argparse.Namespace) -> int:
    from hdx.logs import configure_logging

    # Every setting has a flag (tests check it); an unset flag is None and defers to the
    # environment, the file and the defaults.
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)}
    config = load_config(flags, config_file=args.config)
    configure_logging(config.log_level, config.log_format)
    asyncio.run(_serve_until_signalled(config))
    return 0


async def _serve_until_signalled(config: Config) -> None:
    """Serve until SIGTERM/SIGINT, then drain (viewers told, bounded wait) and stop; a second
    signal cuts the wait short, for an operator who means *now*."""
    from hdx.server.server import HdxServer
    from hdx.sources.factory import open_source

    source = open_source(config.source, config.width, config.height, config.cine_seconds,
                         config.fps)
    stop = asyncio.Event()
    hurry = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            hurry.set()
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)
    async with HdxServer(source, config) as server:
        access = ("tokens required: mint a link with hdx token" if server.exposure.tokens
                  else "no token needed on loopback")
        print(f"hdx: serving {config.source} at {server.url} ({access})", flush=True)
        if server.tls is not None:
            kind = "self-signed" if server.tls.self_signed else "from --tls-cert"
            print(f"hdx: TLS certificate ({kind}) SHA-256 fingerprint {server.tls.fingerprint}",
                  flush=True)
        await stop.wait()
        await server.drain(config.drain_timeout_s, cut_short=hurry)


def _token(args: argparse.Namespace) -> int:
    from hdx.security.join_links import mint_link, revoke_token
    from hdx.security.tokens import parse_ttl

    flags = {name: getattr(args, name) for name in
             ("host", "port", "public_url", "state_dir", "tls", "audit_log")}
    config = load_config(flags, config_file=args.config)
    if args.revoke:
        try:
            path = revoke_token(config, args.revoke)
        except ValueError as exc:
            print(f"hdx: error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({"revoked": args.revoke, "file": str(path)}) if args.json else
              f"revoked token {args.revoke} ({path}); running servers close its sessions")
        return 0
    link = mint_link(config, args.role, parse_ttl(args.ttl), args.user)
    if args.json:
        print(json.dumps(link.as_json()))
    else:
        facts = link.as_json()
        print(link.url)
        print(f"# {facts['role']} link for {facts['user']}, token id {facts['id']}, expires "
              f"{facts['expires_at']} (revoke: hdx token --revoke {facts['id']})",
              file=sys.stderr)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from hdx.doctor import diagnose, render

    logging.basicConfig(level=logging.WARNING)
    report = diagnose(x_display=args.display)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def _client(args: argparse.Namespace) -> int:
    from hdx.client.viewer import NotLossless

    logging.basicConfig(level=logging.WARNING)
    try:
        report = asyncio.run(_run_client(args.url, args.frames, args.timeout, args.save,
                                         args.until_lossless, _client_access(args)))
    except NotLossless as exc:
        print(f"hdx: not lossless: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        first = report["first_frame_s"]
        print(f"{report['frames']} frames from {report['url']} "
              f"({report['width']}x{report['height']}, encoder {report['encoder']}); "
              f"first frame after {first * 1000:.0f} ms; {report['fps']:.1f} fps")
        if report["lossless"]:
            print(f"LOSSLESS: every pixel verified after {report['time_to_lossless_s']:.2f} s "
                  f"({report['tiles_received']} tiles, {report['tile_bytes']} bytes)")
        if args.save:
            depth = "16-bit grey" if report["bits"] > 8 else "RGB"
            print(f"{'exact' if report['lossless'] else 'shown'} framebuffer saved to "
                  f"{args.save} ({depth})")
    return 0


def _client_access(args: argparse.Namespace) -> dict[str, Any]:
    import os

    return {"token": args.token or os.environ.get("HDX_TOKEN"),
            "tls_fingerprint": args.tls_fingerprint,
            "cafile": args.cafile}


async def _run_client(url: str, frames: int, wait_s: float, save: Path | None,
                      until_lossless: bool, access: dict[str, Any]) -> dict[str, Any]:
    import cv2

    from hdx.client.viewer import ClientError, Viewer

    async with Viewer(url, connect_timeout_s=wait_s, **access) as viewer:
        if until_lossless:
            await viewer.until_lossless(wait_s)
        else:
            await viewer.receive(frames, timeout_s=wait_s)
        if save is not None:
            shown = viewer.framebuffer()
            image = shown if shown.ndim == 2 else shown[..., ::-1]  # OpenCV writes BGR
            if not cv2.imwrite(str(save), image):
                raise ClientError(f"could not write {save}")
        return viewer.report.as_json()


if __name__ == "__main__":
    sys.exit(main())
