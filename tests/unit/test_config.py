"""Config precedence (flags > env > file > defaults) and validation messages."""

from pathlib import Path

import pytest

from hdx.config import Config, load_config
from hdx.errors import ConfigError

pytestmark = pytest.mark.unit


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hdx.toml"
    path.write_text(text)
    return path


def test_defaults_without_any_input() -> None:
    config = load_config({}, environ={})
    assert config == Config()
    assert config.source == "synthetic" and config.host == "127.0.0.1" and config.port == 8080


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    file = write(tmp_path, 'port = 9000\nfps = 20\nbitrate_kbps = 3000\nsource = "image:/x.png"\n')
    env = {"HDX_FPS": "25", "HDX_BITRATE_KBPS": "4000"}
    config = load_config({"bitrate_kbps": 5000, "port": None}, environ=env, config_file=file)
    assert config.port == 9000  # file (flag was None = unset)
    assert config.fps == 25  # env beats file
    assert config.bitrate_kbps == 5000  # flag beats env
    assert config.source == "image:/x.png"
    assert config.encoder == "auto"  # default


def test_hdx_table_and_hdx_config_env(tmp_path: Path) -> None:
    file = write(tmp_path, '[hdx]\nencoder = "x264"\nice_host_addresses = ["127.0.0.1"]\n')
    config = load_config({}, environ={"HDX_CONFIG": str(file)})
    assert config.encoder == "x264"
    assert config.ice_host_addresses == ("127.0.0.1",)


def test_env_list_and_optional_int() -> None:
    config = load_config({}, environ={"HDX_ICE_HOST_ADDRESSES": "127.0.0.1, ::1",
                                      "HDX_WIDTH": "1280", "HDX_HEIGHT": ""})
    assert config.ice_host_addresses == ("127.0.0.1", "::1")
    assert config.width == 1280 and config.height is None


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        ({"port": 70000}, "'port' must be 0..65535"),
        ({"fps": 0}, "'fps' must be 1..240"),
        ({"encoder": "vp8"}, "'encoder' must be auto, nvenc or x264"),
        ({"min_bitrate_kbps": 9000}, "'min_bitrate_kbps'"),
        ({"width": 8}, "'width' must be 16..16384"),
        ({"drain_timeout_s": -1}, r"'drain_timeout_s' must be >= 0 \(got -1.0\)"),
        ({"drain_timeout_s": "nan"}, "'drain_timeout_s' must be >= 0"),
    ],
)
def test_invalid_values_name_the_setting(flags: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(flags, environ={})


def test_unknown_and_malformed_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'colour'.*known settings"):
        load_config({}, environ={}, config_file=write(tmp_path, "colour = 1\n"))
    with pytest.raises(ConfigError, match="from the environment: cannot read 'fast'"):
        load_config({}, environ={"HDX_FPS": "fast"})
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config({}, environ={}, config_file=write(tmp_path, "port = \n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({}, environ={}, config_file=tmp_path / "missing.toml")


def test_config_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError):
        Config(port=-1)


def test_no_native_flag_is_not_a_setting() -> None:
    assert load_config({}, environ={"HDX_NO_NATIVE": "1"}) == Config()


def test_drain_timeout_from_every_origin(tmp_path: Path) -> None:
    assert Config().drain_timeout_s == 5.0
    assert Config(drain_timeout_s=0).drain_timeout_s == 0  # 0: close viewers at once
    file = write(tmp_path, "drain_timeout_s = 7\n")
    assert load_config({}, environ={}, config_file=file).drain_timeout_s == 7.0
    env = {"HDX_DRAIN_TIMEOUT_S": "2.5"}
    assert load_config({}, environ=env, config_file=file).drain_timeout_s == 2.5
    assert load_config({"drain_timeout_s": 1.0}, environ=env).drain_timeout_s == 1.0
    with pytest.raises(ConfigError, match="cannot read 'soon'"):
        load_config({}, environ={"HDX_DRAIN_TIMEOUT_S": "soon"})


def test_drain_timeout_flag() -> None:
    from hdx.cli import _parser

    args = _parser().parse_args(["serve", "--drain-timeout", "12.5"])
    assert args.drain_timeout_s == 12.5
    assert _parser().parse_args(["serve"]).drain_timeout_s is None  # unset: file/env/default


def test_every_setting_has_a_serve_flag_and_a_row_in_the_readme() -> None:
    import dataclasses

    from hdx.cli import _parser

    args = vars(_parser().parse_args(["serve"]))
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for field in dataclasses.fields(Config):
        assert field.name in args and args[field.name] is None, field.name
        assert f"`{field.name}`" in readme, field.name
