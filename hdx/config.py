"""One frozen configuration object, built once and passed down.

Precedence, highest first: command-line flags > ``HDX_*`` environment variables > the TOML file
given with ``--config`` (or ``HDX_CONFIG``) > the defaults below. Nothing else in hdx reads the
environment or settings at import time; tests build exactly the :class:`Config` they want.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, cast, get_args

from hdx.errors import ConfigError

EncoderPreference = Literal["auto", "nvenc", "x264"]
LogFormat = Literal["text", "json"]
AuthMode = Literal["auto", "token", "none"]
TlsMode = Literal["auto", "on", "off"]
ENV_PREFIX = "HDX_"


@dataclass(frozen=True, slots=True)
class Config:
    """Every tunable of a server. Field docs double as the settings table in README.md."""

    source: str = "synthetic"
    """What to capture: ``synthetic``, ``image:PATH`` or ``x11:DISPLAY``."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8080
    """TCP port of the web client and signalling; 0 picks a free port (tests, embedding)."""
    encoder: EncoderPreference = "auto"
    """``auto`` tries NVENC and falls back to libx264; ``nvenc``/``x264`` insist."""
    fps: int = 30
    """Capture and encode rate ceiling (frames per second)."""
    bitrate_kbps: int = 8000
    """Ceiling for the video bitrate; the receiver's estimate (REMB) can only lower it."""
    min_bitrate_kbps: int = 500
    """Floor under the receiver's estimate, so text stays legible on a poor link."""
    width: int | None = None
    """Canvas width for ``synthetic`` (default 1920) and ``image`` (default: the image's)."""
    height: int | None = None
    """Canvas height for ``synthetic`` (default 1080) and ``image`` (default: the image's)."""
    cine_seconds: float = 4.0
    """Synthetic demo: seconds of cine paging after start and after each study selection."""
    max_offer_bytes: int = 65536
    """Largest accepted ``/api/offer`` body; larger gets 413."""
    max_control_message_bytes: int = 4096
    """Largest accepted control-channel message; larger is counted and dropped."""
    ice_host_addresses: tuple[str, ...] = ()
    """Local addresses offered as ICE host candidates; empty means: loopback only when
    ``host`` is a loopback address, otherwise every non-loopback interface."""
    connect_timeout_s: float = 20.0
    """A peer that has not connected after this many seconds is closed and freed."""
    drain_timeout_s: float = 5.0
    """On SIGTERM/SIGINT: seconds to wait for told viewers to leave before closing them (a
    second signal stops at once). Service managers must allow more than this to stop."""
    lossless: bool = True
    """Refine still regions to exact pixels over the ``tiles`` channel (build to lossless)."""
    lossless_quiet_ms: int = 150
    """A tile refines once it has not changed for this long (doubled while the tiles channel
    is backed up)."""
    lossless_budget_kbps: int = 4000
    """Ceiling for refinement bytes while video is moving, so tiles never starve interactive
    video (CPU and network); with nothing moving, flow control alone paces them."""
    lossless_buffer_kb: int = 256
    """Tile bytes allowed queued in the data channel before the sender waits (flow control);
    small keeps control messages (frame announcements, acks) prompt."""
    auth: AuthMode = "auto"
    """``auto``: join tokens are required beyond loopback (or with ``public_url``), optional
    on loopback (a token given is still checked); ``token``: always required; ``none``: never
    (beyond loopback only with ``insecure``)."""
    state_dir: str | None = None
    """Private folder for the token secret, revoked tokens and the self-signed certificate
    (default ``$XDG_STATE_HOME/hdx`` or ``~/.local/state/hdx``)."""
    public_url: str | None = None
    """The address users reach hdx at through a reverse proxy (``https://pacs-ws7.example/``):
    join links use it, its Host and Origin are accepted, and tokens are then required."""
    tls: TlsMode = "auto"
    """HTTPS for the page and signalling: ``auto`` is on beyond loopback, ``on`` always,
    ``off`` never (beyond loopback only with ``insecure``)."""
    tls_cert: str | None = None
    """PEM certificate (chain) to serve; without it hdx makes a self-signed one in
    ``state_dir`` and prints its SHA-256 fingerprint."""
    tls_key: str | None = None
    """PEM private key of ``tls_cert``."""
    insecure: bool = False
    """Allow listening beyond loopback without TLS or without tokens (logged loudly)."""
    single_controller: bool = True
    """One person drives at a time; others ask, and the holder hands control over."""
    watermark: bool = False
    """Clients draw the user's name and the time over the screen (an overlay: the exact
    pixels that ``snapshot()`` and lossless verification read are untouched)."""
    audit_log: str | None = None
    """Also write audit records (joins, leaves, refusals, control changes) to this file as
    JSON lines (mode 0600); they always go to the ``hdx.audit`` logger."""
    max_sessions: int = 16
    """Viewers served at once; one more gets 503."""
    max_control_messages_per_s: int = 400
    """Sustained control-channel messages per viewer (bursts of two seconds' worth pass);
    the excess is counted and dropped."""
    max_pending_tiles: int = 4096
    """Lossless tiles sent but not yet acknowledged, per viewer; beyond it the oldest is
    forgotten and refined again (a client that never acks cannot grow memory)."""
    telemetry_alert_after_s: float = 10.0
    """A session whose experience score stays below 60 this long logs one warning naming
    the likely cause (docs/telemetry.md)."""
    log_level: str = "INFO"
    """Python logging level name."""
    log_format: LogFormat = "text"
    """``text`` for people, ``json`` for log pipelines (one object per line)."""

    def __post_init__(self) -> None:
        _check(0 <= self.port <= 65535, "port", "must be 0..65535", self.port)
        _check(1 <= self.fps <= 240, "fps", "must be 1..240", self.fps)
        _check(self.bitrate_kbps >= 100, "bitrate_kbps", "must be at least 100", self.bitrate_kbps)
        _check(
            0 < self.min_bitrate_kbps <= self.bitrate_kbps,
            "min_bitrate_kbps",
            "must be positive and not above bitrate_kbps",
            self.min_bitrate_kbps,
        )
        _check(self.encoder in get_args(EncoderPreference), "encoder",
               "must be auto, nvenc or x264", self.encoder)
        _check(self.log_format in get_args(LogFormat), "log_format",
               "must be text or json", self.log_format)
        for name in ("width", "height"):
            value = getattr(self, name)
            _check(value is None or 16 <= value <= 16384, name, "must be 16..16384", value)
        _check(self.max_offer_bytes >= 1024, "max_offer_bytes", "must be >= 1024",
               self.max_offer_bytes)
        _check(self.max_control_message_bytes >= 256, "max_control_message_bytes",
               "must be >= 256", self.max_control_message_bytes)
        _check(10 <= self.lossless_quiet_ms <= 60000, "lossless_quiet_ms", "must be 10..60000",
               self.lossless_quiet_ms)
        _check(self.lossless_budget_kbps >= 100, "lossless_budget_kbps", "must be >= 100",
               self.lossless_budget_kbps)
        _check(16 <= self.lossless_buffer_kb <= 65536, "lossless_buffer_kb",
               "must be 16..65536", self.lossless_buffer_kb)
        _check(self.connect_timeout_s > 0, "connect_timeout_s", "must be positive",
               self.connect_timeout_s)
        _check(self.drain_timeout_s >= 0, "drain_timeout_s", "must be >= 0",
               self.drain_timeout_s)
        _check(self.auth in get_args(AuthMode), "auth", "must be auto, token or none", self.auth)
        _check(self.tls in get_args(TlsMode), "tls", "must be auto, on or off", self.tls)
        _check((self.tls_cert is None) == (self.tls_key is None), "tls_cert",
               "and tls_key must be given together", (self.tls_cert, self.tls_key))
        _check(self.tls_cert is None or self.tls != "off", "tls",
               "cannot be off when tls_cert is given", self.tls)
        _check(self.public_url is None or self.public_url.startswith(("http://", "https://")),
               "public_url", "must start with http:// or https://", self.public_url)
        _check(1 <= self.max_sessions <= 1024, "max_sessions", "must be 1..1024",
               self.max_sessions)
        _check(10 <= self.max_control_messages_per_s <= 100000, "max_control_messages_per_s",
               "must be 10..100000", self.max_control_messages_per_s)
        _check(16 <= self.max_pending_tiles <= 1 << 20, "max_pending_tiles",
               "must be 16..1048576", self.max_pending_tiles)
        _check(1 <= self.telemetry_alert_after_s <= 3600, "telemetry_alert_after_s",
               "must be 1..3600", self.telemetry_alert_after_s)

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated like a new one)."""
        return dataclasses.replace(self, **changes)

    @property
    def base_url(self) -> str:
        """The URL a browser on this machine opens (``http``; see HdxServer.url for the
        scheme actually served)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def state_path(self, environ: Mapping[str, str] | None = None) -> Path:
        """``state_dir``, or the default for this user."""
        from hdx.security.secret import default_state_dir

        if self.state_dir:
            return Path(self.state_dir).expanduser()
        return default_state_dir(os.environ if environ is None else environ)


def _check(ok: bool, name: str, rule: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"setting {name!r} {rule} (got {value!r})")


_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(Config)}


def _coerce(name: str, raw: object, origin: str) -> object:
    """Turn a raw TOML/env/flag value into the field's type, naming the origin on error."""
    kind = _FIELD_TYPES[name]
    try:
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError("booleans are not numbers")
            return int(cast(Any, raw))
        if kind == "int | None":
            return None if raw in (None, "", "none") else int(cast(Any, raw))
        if kind == "str | None":
            if isinstance(raw, (dict, list, bool)):
                raise ValueError("expected a single value")
            return None if raw in (None, "") else str(raw)
        if kind == "float":
            return float(cast(Any, raw))
        if kind == "bool":
            return _boolean(raw)
        if kind == "tuple[str, ...]":
            items = raw.split(",") if isinstance(raw, str) else list(cast(Any, raw))
            return tuple(str(i).strip() for i in items if str(i).strip())
        if isinstance(raw, (dict, list)):
            raise ValueError("expected a single value")
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r} from {origin}: cannot read {raw!r} ({exc})") from exc


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false, yes/no, on/off or 1/0")


def _from_mapping(values: Mapping[str, object], origin: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, raw in values.items():
        name = key.replace("-", "_")
        if name not in _FIELD_TYPES:
            known = ", ".join(sorted(_FIELD_TYPES))
            raise ConfigError(f"unknown setting {key!r} in {origin}; known settings: {known}")
        out[name] = _coerce(name, raw, origin)
    return out


def read_toml(path: Path) -> dict[str, object]:
    """Settings from a TOML file: top-level keys, or keys under an ``[hdx]`` table."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    table = data.get("hdx", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [hdx] must be a table")
    return _from_mapping(table, f"config file {path}")


_NOT_SETTINGS = ("HDX_CONFIG", "HDX_NO_NATIVE", "HDX_TOKEN_SECRET", "HDX_TOKEN")
"""``HDX_*`` variables that are not settings: the config file, the numpy-twin switch, the
token secret (a secret is never a setting: settings get printed, and flags show in ``ps``) and
the Python client's join token."""


def read_env(environ: Mapping[str, str]) -> dict[str, object]:
    """Settings from ``HDX_*`` variables (``HDX_BITRATE_KBPS=6000``); ``HDX_CONFIG`` is the file."""
    picked = {
        key[len(ENV_PREFIX):].lower(): value
        for key, value in environ.items()
        if key.startswith(ENV_PREFIX) and key not in _NOT_SETTINGS
    }
    return _from_mapping(picked, "the environment")


def load_config(
    flags: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Config:
    """Build the config: flags > environment > file > defaults. ``None`` flags are unset."""
    env = os.environ if environ is None else environ
    if config_file is None and env.get("HDX_CONFIG"):
        config_file = Path(env["HDX_CONFIG"])
    merged: dict[str, object] = {}
    if config_file is not None:
        merged.update(read_toml(config_file))
    merged.update(read_env(env))
    merged.update(_from_mapping({k: v for k, v in (flags or {}).items() if v is not None},
                                "the command line"))
    try:
        return Config(**cast(Any, merged))
    except TypeError as exc:  # pragma: no cover - guarded by _from_mapping
        raise ConfigError(str(exc)) from exc
