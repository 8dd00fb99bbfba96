"""Tile change detection: the C extension and its numpy twin give identical maps.

The numpy twin is the specification; it is itself checked against a plain loop over tiles on
small frames. The native backend must be built wherever a C compiler exists: its tests fail,
not skip, if ``hdx._damage_native`` is missing while ``cc`` is on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import hdx.damage as damage

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

Frame = npt.NDArray[np.uint8]
TileMap = npt.NDArray[np.bool_]
Impl = Callable[..., TileMap]

EDGE_SIZES = [(1, 1), (63, 65), (64, 64), (65, 129), (1081, 1921), (1, 200), (130, 1), (127, 191)]
CHANNELS = [None, 1, 3, 4]  # None: a 2-D (h, w) frame


def _native_or_skip() -> Impl:
    if damage.NATIVE_IMPORT_ERROR is not None and shutil.which("cc") is None:
        pytest.skip("no C compiler on PATH, so hdx._damage_native cannot have been built")
    if damage.NATIVE_IMPORT_ERROR is not None:
        pytest.fail(
            "a C compiler is on PATH but hdx._damage_native is not built "
            f"({damage.NATIVE_IMPORT_ERROR}); run `pip install -e .` or "
            "`python native/build_damage.py`"
        )
    return damage.tile_change_map_native


@pytest.fixture(params=["numpy", "native"])
def impl(request: pytest.FixtureRequest) -> Impl:
    if request.param == "native":
        return _native_or_skip()
    return damage.tile_change_map_numpy


@pytest.fixture
def native() -> Impl:
    return _native_or_skip()


def reference(prev: Frame, cur: Frame, tile: int = 64) -> TileMap:
    """The definition, spelled out tile by tile (slow; small frames only)."""
    h, w = prev.shape[:2]
    rows, cols = -(-h // tile), -(-w // tile)
    out = np.zeros((rows, cols), dtype=np.bool_)
    for ty in range(rows):
        for tx in range(cols):
            window = np.s_[ty * tile : (ty + 1) * tile, tx * tile : (tx + 1) * tile]
            out[ty, tx] = bool(np.any(prev[window] != cur[window]))
    return out


def shape_of(h: int, w: int, c: int | None) -> tuple[int, ...]:
    return (h, w) if c is None else (h, w, c)


def random_pair(
    rng: np.random.Generator, shape: tuple[int, ...], n_changes: int
) -> tuple[Frame, Frame]:
    prev = rng.integers(0, 256, size=shape, dtype=np.uint8)
    cur = prev.copy()
    flat = cur.reshape(-1)
    where = rng.integers(0, flat.size, size=n_changes)
    flat[where] ^= rng.integers(1, 256, size=n_changes, dtype=np.uint8)  # never a no-op
    return prev, cur


def check(impl: Impl, prev: Frame, cur: Frame, tile: int = 64) -> TileMap:
    got = impl(prev, cur, tile)
    want = reference(prev, cur, tile)
    assert got.dtype == np.bool_
    assert got.shape == want.shape == (-(-prev.shape[0] // tile), -(-prev.shape[1] // tile))
    np.testing.assert_array_equal(got, want)
    return got


# --- the spec, on both backends ---------------------------------------------------------------


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize(("h", "w"), EDGE_SIZES)
def test_random_sparse_changes(impl: Impl, h: int, w: int, c: int | None) -> None:
    rng = np.random.default_rng([h, w, c or 0])
    prev, cur = random_pair(rng, shape_of(h, w, c), n_changes=max(1, h * w // 5000))
    check(impl, prev, cur)


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize(("h", "w"), EDGE_SIZES)
def test_no_change_and_all_changed(impl: Impl, h: int, w: int, c: int | None) -> None:
    prev = np.random.default_rng(1).integers(0, 256, size=shape_of(h, w, c), dtype=np.uint8)
    assert not check(impl, prev, prev.copy()).any()
    assert check(impl, prev, prev ^ np.uint8(0x80)).all()


@pytest.mark.parametrize("c", [None, 1, 3, 4])
@pytest.mark.parametrize(("h", "w"), [(65, 129), (1081, 1921), (100, 70), (1, 1), (64, 64)])
def test_single_byte_at_tile_corners(impl: Impl, h: int, w: int, c: int | None) -> None:
    """One changed byte at each corner of each tile (the last byte of a partial edge tile too)."""
    prev = np.zeros(shape_of(h, w, c), dtype=np.uint8)
    cur = prev.copy()
    last_channel = (c or 1) - 1
    for y in _tile_edges(h):
        for x in _tile_edges(w):
            for ch in {0, last_channel}:
                index = (y, x) if c is None else (y, x, ch)
                cur[index] = 1
                got = impl(prev, cur)
                cur[index] = 0
                assert got.sum() == 1, (y, x, ch)
                assert got[y // 64, x // 64], (y, x, ch)


def _tile_edges(n: int) -> list[int]:
    """First and last index of the first two and the last two tiles along an axis of n."""
    last = (n - 1) // 64 * 64
    starts = [s for s in (0, 64, last - 64, last) if 0 <= s < n]
    return sorted({i for s in starts for i in (s, min(s + 63, n - 1))})


def test_last_byte_of_partial_edge_tile(impl: Impl) -> None:
    prev = np.zeros((1081, 1921, 4), dtype=np.uint8)
    cur = prev.copy()
    cur[-1, -1, -1] = 255
    got = impl(prev, cur)
    assert got.shape == (17, 31)
    assert np.argwhere(got).tolist() == [[16, 30]]


@pytest.mark.parametrize("tile", [1, 2, 7, 16, 63, 64, 65, 128, 1000])
def test_other_tile_sizes(impl: Impl, tile: int) -> None:
    rng = np.random.default_rng(tile)
    prev, cur = random_pair(rng, (130, 201, 4), n_changes=20)
    check(impl, prev, cur, tile)


def test_many_random_frames(impl: Impl) -> None:
    rng = np.random.default_rng(2024)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 300, size=2))
        c = [None, 1, 2, 3, 4, 8][int(rng.integers(0, 6))]
        tile = int(rng.choice([8, 16, 32, 64, 100]))
        prev, cur = random_pair(rng, shape_of(h, w, c), n_changes=int(rng.integers(0, 12)))
        check(impl, prev, cur, tile)


def test_strided_views(impl: Impl) -> None:
    rng = np.random.default_rng(7)
    big_prev, big_cur = random_pair(rng, (400, 600, 4), n_changes=300)
    views = {
        "crop": np.s_[7:300, 13:450],  # rows contiguous within a row, padded stride
        "crop_2d_rows": np.s_[1:399:3, 5:590],  # every third row
        "column_step": np.s_[3:200, ::2],  # pixels not adjacent: copied
        "channel_crop": np.s_[10:250, 20:500, :3],  # BGR of BGRA: copied
        "flipped": np.s_[::-1, ::-1],  # negative strides: copied
    }
    for name, view in views.items():
        prev, cur = big_prev[view], big_cur[view]
        assert not prev.flags.c_contiguous, name
        check(impl, prev, cur)
    # Two views with different strides compare too.
    prev = big_prev[50:250, 100:400]
    cur = np.ascontiguousarray(big_cur[50:250, 100:400])
    check(impl, prev, cur)


def test_read_only_frames(impl: Impl) -> None:
    rng = np.random.default_rng(3)
    prev, cur = random_pair(rng, (70, 90, 4), n_changes=10)
    prev = np.frombuffer(prev.tobytes(), dtype=np.uint8).reshape(prev.shape)
    cur.flags.writeable = False
    check(impl, prev, cur)


def test_empty_frames(impl: Impl) -> None:
    for shape in [(0, 10, 4), (10, 0), (0, 0), (5, 5, 0)]:
        frame = np.zeros(shape, dtype=np.uint8)
        got = impl(frame, frame.copy())
        assert got.shape == (-(-shape[0] // 64), -(-shape[1] // 64))
        assert not got.any()


# --- argument checks ------------------------------------------------------------------------


@pytest.fixture(params=["public", "native"])
def checked(request: pytest.FixtureRequest) -> Impl:
    if request.param == "native":
        return _native_or_skip()
    return damage.tile_change_map


@pytest.mark.parametrize(
    ("prev_shape", "cur_shape"),
    [((64, 64, 4), (64, 64, 3)), ((64, 64), (64, 65)), ((65, 64), (64, 64)), ((8, 8), (8, 8, 1))],
)
def test_mismatched_shapes_raise(
    checked: Impl, prev_shape: tuple[int, ...], cur_shape: tuple[int, ...]
) -> None:
    with pytest.raises(ValueError, match="shape"):
        checked(np.zeros(prev_shape, np.uint8), np.zeros(cur_shape, np.uint8))


def test_bad_arguments_raise(checked: Impl) -> None:
    ok = np.zeros((8, 8, 4), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        checked(ok.astype(np.uint16), ok.astype(np.uint16))
    with pytest.raises(ValueError, match="uint8"):
        checked(np.zeros((2, 2, 2, 2), np.uint8), np.zeros((2, 2, 2, 2), np.uint8))
    with pytest.raises(TypeError, match="numpy array"):
        checked(ok.tolist(), ok)
    for tile in (0, -64, True, 64.0):
        with pytest.raises(ValueError, match="tile"):
            checked(ok, ok.copy(), tile)


# --- the C entry point itself -----------------------------------------------------------------


def test_c_returns_count_and_rejects_bad_arguments(native: Impl) -> None:
    assert damage._native is not None
    ffi, lib = damage._native.ffi, damage._native.lib
    rng = np.random.default_rng(11)
    prev, cur = random_pair(rng, (200, 300, 4), n_changes=25)
    out = np.full(4 * 5, 0xAA, dtype=np.uint8)  # stale contents must be overwritten
    args = (ffi.from_buffer(prev), ffi.from_buffer(cur))
    dst = ffi.from_buffer(out)
    count = lib.hdx_tile_changes(*args, 300, 200, 1200, 1200, 4, 64, dst)
    np.testing.assert_array_equal(out.reshape(4, 5).astype(bool), reference(prev, cur))
    assert set(out.tolist()) <= {0, 1}
    assert count == int(out.sum()) > 0
    for bad in [
        (300, 200, 1199, 1200, 4, 64),  # stride shorter than a row
        (300, 200, 1200, 1199, 4, 64),
        (-1, 200, 1200, 1200, 4, 64),
        (300, -1, 1200, 1200, 4, 64),
        (300, 200, 1200, 1200, 0, 64),
        (300, 200, 1200, 1200, 4, 0),
    ]:
        assert lib.hdx_tile_changes(*args, *bad, dst) == -1, bad
    assert lib.hdx_tile_changes(ffi.NULL, args[1], 300, 200, 1200, 1200, 4, 64, dst) == -1
    assert lib.hdx_tile_changes(*args, 0, 200, 1200, 1200, 4, 64, ffi.NULL) == 0


# --- backend selection ------------------------------------------------------------------------


def _backend_in_subprocess(no_native: str | None) -> str:
    env = dict(os.environ)
    env.pop("HDX_NO_NATIVE", None)
    if no_native is not None:
        env["HDX_NO_NATIVE"] = no_native
    done = subprocess.run(
        [sys.executable, "-c", "import hdx.damage as d; print(d.backend)"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"importing hdx.damage failed:\n{done.stderr}"
    return done.stdout.strip()


def test_hdx_no_native_forces_numpy() -> None:
    assert _backend_in_subprocess("1") == "numpy"


def test_native_is_the_default_backend_when_built(native: Impl) -> None:
    assert _backend_in_subprocess(None) == "native"
    assert _backend_in_subprocess("0") == "native"


def test_public_function_uses_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    prev, cur = random_pair(rng, (300, 500, 4), n_changes=40)
    want = reference(prev, cur)
    for name in ("numpy", "native") if damage._native is not None else ("numpy",):
        monkeypatch.setattr(damage, "backend", name)
        np.testing.assert_array_equal(damage.tile_change_map(prev, cur), want)


def test_native_unavailable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(damage, "_native", None)
    monkeypatch.setattr(damage, "NATIVE_IMPORT_ERROR", ImportError("not built"))
    frame = np.zeros((8, 8), np.uint8)
    with pytest.raises(RuntimeError, match="not built"):
        damage.tile_change_map_native(frame, frame)
