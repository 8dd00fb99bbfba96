"""What an X display offers hdx, in plain words (``hdx doctor``): reachable or not and why,
depth, size, monitors, and each extension hdx uses with what it is used for."""

from __future__ import annotations

from typing import Any

from hdx.errors import SourceError

EXTENSIONS = {
    "MIT-SHM": "fast capture (shared memory); without it: XGetImage, slower",
    "DAMAGE": "compare only what was drawn; without it: whole-frame compares",
    "XFIXES": "cursor shape drawn by the client; without it: no remote cursor shape",
    "XTEST": "remote mouse and keyboard; without it: view only",
    "RANDR": "resize following and per-monitor streams; without it: one fixed screen",
}


def probe_display(name: str) -> dict[str, Any]:
    """JSON-ready facts about display ``name``; ``{"reachable": False, "why": ...}`` on error."""
    try:
        from hdx.sources.x11 import X11Screen, X11Source

        source = X11Source(X11Screen(name))
    except SourceError as exc:
        return {"display": name, "reachable": False, "why": str(exc)}
    try:
        d = source.display
        extensions = {ext: d.has_extension(ext) for ext in EXTENSIONS}
        width, height = source.size
        grabber = source.grabber_for_size()
        return {
            "display": name,
            "reachable": True,
            "size": [width, height],
            "depth": d.depth,
            "bits_per_channel": grabber.format.bits_per_channel,
            "extensions": extensions,
            "capture": source.capture_method,
            "shm_failure": grabber.shm_failure,
            "damage_failure": source.damage_failure,
            "monitors": [
                {"name": m.name, "geometry": f"{m.width}x{m.height}+{m.x}+{m.y}",
                 "primary": m.primary} for m in source.monitors()],
        }
    finally:
        source.close()


def render_display(report: dict[str, Any]) -> list[str]:
    """The X part of the doctor report as terminal lines."""
    if not report["reachable"]:
        return [f"X display   {report['display']}: not usable: {report['why']}"]
    lines = [f"X display   {report['display']}: {report['size'][0]}x{report['size'][1]}, "
             f"depth {report['depth']} ({report['bits_per_channel']} bits per channel), "
             f"capture via {report['capture']}"]
    for ext, use in EXTENSIONS.items():
        have = report["extensions"][ext]
        lines.append(f"  {ext:<9} {'yes' if have else 'NO '}  {use.split(';')[0] if have else use}")
    if report["shm_failure"]:
        lines.append(f"  MIT-SHM not usable: {report['shm_failure']}")
    if report["bits_per_channel"] > 8:
        lines.append("  depth 30: video and tiles carry the top 8 bits of each channel; the "
                     "client is told when 10-bit detail is on screen")
    monitors = ", ".join(f"{m['name']} {m['geometry']}{' (primary)' if m['primary'] else ''}"
                         for m in report["monitors"])
    lines.append(f"  monitors  {monitors}")
    return lines
