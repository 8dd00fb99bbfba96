"""``hdx bench lossless``: its test content and a quick run end to end.

The content generators are shared with other tests, so their contract is pinned here: same
arguments, same bytes; the documented dtypes, shapes and value ranges; grey content is really
R = G = B. The quick run checks the report's shape and exactness, never its timings.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from hdx.bench import cli, lossless
from hdx.bench import content as gen
from hdx.lossless.codec import is_grey

pytestmark = pytest.mark.unit

GENERATORS: dict[str, Callable[[], npt.NDArray[np.generic]]] = {
    "desktop_bgra": lambda: gen.desktop_bgra(320, 200),
    "text_screen_bgra": lambda: gen.text_screen_bgra(320, 200, seed=3),
    "ct_phantom": lambda: gen.ct_phantom(96, 12, seed=3),
    "mr_phantom": lambda: gen.mr_phantom(80, 12, seed=3),
    "noise_bgra": lambda: gen.noise_bgra(40, 24, seed=3),
    "random_rgb_bgra": lambda: gen.random_rgb_bgra(40, 24, seed=3),
}


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generators_are_deterministic(name: str) -> None:
    first, second = GENERATORS[name](), GENERATORS[name]()
    assert first is not second
    assert first.dtype == second.dtype and np.array_equal(first, second)


@pytest.mark.parametrize("make", [
    lambda seed: gen.text_screen_bgra(320, 200, seed=seed),
    lambda seed: gen.ct_phantom(64, 12, seed=seed),
    lambda seed: gen.mr_phantom(64, 12, seed=seed),
    lambda seed: gen.noise_bgra(16, 16, seed=seed),
])
def test_seed_changes_content(make: Callable[[int], npt.NDArray[np.generic]]) -> None:
    assert not np.array_equal(make(0), make(1))


def test_default_sizes() -> None:
    assert gen.desktop_bgra().shape == (1080, 1920, 4)
    assert gen.text_screen_bgra().shape == (720, 1280, 4)
    assert gen.ct_phantom().shape == (512, 512)
    assert gen.mr_phantom().shape == (256, 256)


@pytest.mark.parametrize("make", [
    lambda: gen.desktop_bgra(320, 200),
    lambda: gen.text_screen_bgra(320, 200),
    lambda: gen.noise_bgra(320, 200),
    lambda: gen.random_rgb_bgra(320, 200),
])
def test_bgra_images_are_opaque_colour(make: Callable[[], npt.NDArray[np.uint8]]) -> None:
    image = make()
    assert image.dtype == np.uint8 and image.shape == (200, 320, 4)
    assert (image[..., 3] == 255).all()
    assert not is_grey(image)  # colour content takes hdx's colour path


def test_text_screen_is_a_document() -> None:
    image = gen.text_screen_bgra(640, 400)
    white = (image[..., :3] == 255).all(axis=2).mean()
    dark = (image[..., :3] < 80).all(axis=2).mean()
    assert white > 0.5 and dark > 0.01  # mostly paper, plenty of ink
    assert len(np.unique(image.reshape(-1, 4), axis=0)) > 50  # anti-aliased text


def test_noise_is_uniform_random() -> None:
    rgb = gen.noise_bgra(256, 256)[..., :3]
    assert rgb.min() == 0 and rgb.max() == 255
    assert abs(float(rgb.mean()) - 127.5) < 2


@pytest.mark.parametrize("phantom", [gen.ct_phantom, gen.mr_phantom])
@pytest.mark.parametrize("bits", [8, 10, 12, 16])
def test_phantoms_fit_their_bit_depth(phantom: Callable[..., npt.NDArray[np.uint16]],
                                      bits: int) -> None:
    samples = phantom(64, bits)
    assert samples.dtype == np.uint16 and samples.shape == (64, 64)
    assert int(samples.max()) <= 2**bits - 1
    assert int(samples.max()) >= 2 ** (bits - 2)  # uses the range, not just its bottom
    assert len(np.unique(samples)) > 30  # noise and texture, not flat regions only


def test_ct_phantom_looks_like_ct() -> None:
    ct = gen.ct_phantom(256, 12).astype(np.int32)
    hu = ct - 1024
    assert ct[0, 0] == 0  # outside the reconstruction circle
    assert ((hu > -80) & (hu < 120)).mean() > 0.2  # soft tissue
    assert (hu > 700).any()  # bone
    assert ((hu < -700) & (ct > 0)).mean() > 0.1  # air inside the field of view


def test_mr_phantom_has_a_noisy_dark_background() -> None:
    mr = gen.mr_phantom(128, 12).astype(np.float64)
    assert mr[:8, :8].mean() > 0  # Rician noise: the background is not zero
    assert mr[:8, :8].mean() < 0.05 * mr.max()


def test_grey8_and_grey_to_bgra() -> None:
    ct = gen.ct_phantom(64, 12)
    grey = gen.grey8(ct, 12)
    assert grey.dtype == np.uint8 and grey.shape == (64, 64)
    assert np.array_equal(grey, (ct >> 4).astype(np.uint8))
    ct16 = gen.ct_phantom(64, 16)
    assert np.array_equal(gen.grey8(ct16, 16), (ct16 >> 8).astype(np.uint8))
    bgra = gen.grey_to_bgra(grey)
    assert bgra.dtype == np.uint8 and bgra.shape == (64, 64, 4)
    for channel in range(3):
        assert np.array_equal(bgra[..., channel], grey)
    assert (bgra[..., 3] == 255).all() and is_grey(bgra)


def test_benchmark_contents_are_what_they_say() -> None:
    contents = lossless.build_contents(quick=True)
    assert [c.name for c in contents] == list(lossless.CONTENT_NAMES)
    for c in contents:
        assert c.raw_bytes == c.width * c.height * c.channels * c.samples.dtype.itemsize
        if c.bgra is None:
            assert c.samples.dtype == np.uint16 and c.bits == 12
            continue
        assert (c.bgra[..., 3] == 255).all()
        assert is_grey(c.bgra) == (c.channels == 1)
        if c.channels == 1:
            assert np.array_equal(c.bgra[..., 0], c.samples)
        else:
            assert np.array_equal(c.bgra[..., 2::-1], c.samples)  # BGR -> RGB
    codecs = lossless.build_codecs()
    assert [k.name for k in codecs] == list(lossless.CODEC_NAMES)


def test_quick_run_writes_every_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="hdx")
    cli.add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "lossless", "--quick", "--no-plot", "--out",
                              str(tmp_path)])
    assert cli.run_bench(args) == 0
    report = json.loads((tmp_path / "lossless.json").read_text())
    assert (tmp_path / "lossless.md").read_text().startswith("# Lossless")
    assert report["quick"] is True and report["machine"]["imagecodecs"]
    rows = {(r["content"], r["codec"]): r for r in report["results"]}
    assert len(report["results"]) == len(rows)
    assert set(rows) == {(c, k) for c in lossless.CONTENT_NAMES for k in lossless.CODEC_NAMES}
    for (content, codec), row in rows.items():
        if codec in ("hdx", "hdx_tiles"):
            assert row["status"] == "ok" and row["exact"] is True, row
            assert row["bytes"] > 0 and row["ratio"] > 0
        if codec == "hdx":
            grey = content in ("ct8", "mr8", "ct16", "mr16")
            assert row["hdx_format"].split(",")[0] in (("jls", "raw") if grey else ("jxl", "zstd"))
        elif row["status"] == "ok":
            assert row["exact"] is True, row
        else:
            assert row["status"] == "n/a" and row["reason"], row
    for content in ("ct16", "mr16"):  # 8-bit-only codecs say so instead of failing
        assert rows[(content, "webp")]["status"] == "n/a"
        assert rows[(content, "qoi")]["status"] == "n/a"
    targets = {(t["target"], t["content"]) for t in report["targets"]}
    assert {c for _, c in targets} == {"ct8", "mr8", "desktop", "text", "ct16", "mr16"}
    out = capsys.readouterr()
    assert "| content |" in out.out
    assert f"lossless [{'#' * 24}] {len(rows)}/{len(rows)}" in out.err  # the bar finished
