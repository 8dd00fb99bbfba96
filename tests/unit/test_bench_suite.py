"""``hdx bench``'s shared parts: scenarios, quality metrics, the numpy/CuPy kernels, progress,
``--compare``, and the encoders kind end to end on tiny content.

Nothing here checks a timing: runs are checked for their structure, their exactness and the
truth of what they report (an encoder that cannot open is listed with a reason, never dropped).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import hdx.damage as damage
from hdx.bench import cli, codecs, compare, gpu, quality, scenarios
from hdx.bench.progress import Progress
from hdx.video.encoder import bgra_to_i420

pytestmark = pytest.mark.unit


# -- scenarios ----------------------------------------------------------------------------

def test_default_manifest_has_every_issue_scenario() -> None:
    listed = scenarios.load_manifest(scenarios.DEFAULT_MANIFEST)
    kinds = {s.kind for s in listed}
    assert {"typing", "ct_cine", "grey_screen", "scroll", "noisy_video"} <= kinds
    grey = {s.bits for s in listed if s.kind == "grey_screen"}
    assert grey == {8, 10}
    assert any((s.width, s.height) == (2048, 2560) for s in listed)


@pytest.mark.parametrize("name", [s.name for s in scenarios.load_manifest(
    scenarios.DEFAULT_MANIFEST)])
def test_quick_scenarios_are_deterministic_and_move(name: str) -> None:
    scenario = scenarios.select(scenarios.load_manifest(scenarios.DEFAULT_MANIFEST),
                                [name])[0].quick()
    first, second = scenario.frame_list(), scenario.frame_list()
    assert len(first) == scenario.frames
    assert all(f.shape == (scenario.height, scenario.width, 4) and f.dtype == np.uint8
               for f in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert all((f[..., 3] == 255).all() for f in first)
    assert any(not np.array_equal(a, b) for a, b in itertools.pairwise(first))


def test_ten_bit_grey_screen_keeps_its_samples_and_video_gets_the_top_eight() -> None:
    scenario = scenarios.Scenario("g", "grey_screen", 128, 160, frames=1, bits=10)
    samples = scenario.high_bit_samples()
    assert samples is not None and samples.dtype == np.uint16 and samples.max() <= 1023
    assert samples.max() > 255  # really uses the two extra bits
    frame = scenario.frame_list()[0]
    assert np.array_equal(frame[..., 0], (samples >> 2).astype(np.uint8))
    assert np.array_equal(frame[..., 0], frame[..., 2])


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "a", "kind": "nope", "width": 64, "height": 64}, "kind 'nope'"),
    ({"name": "a", "kind": "scroll", "width": 65, "height": 64}, "even sizes"),
    ({"name": "a", "kind": "scroll", "width": 64}, "'height' is required"),
    ({"name": "a", "kind": "scroll", "width": 64, "height": 64, "colour": 1}, "unknown keys"),
    ({"name": "a b", "kind": "scroll", "width": 64, "height": 64}, "'name'"),
    ({"name": "a", "kind": "scroll", "width": 64, "height": 64, "frames": 0}, "'frames'"),
    ({"name": "a", "kind": "images", "width": 64, "height": 64}, "needs a 'path'"),
])
def test_bad_manifest_entries_say_what_is_wrong(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(scenarios.ScenarioError, match=message):
        scenarios.scenario_from(entry, "test", Path("."))


def test_manifest_file_errors(tmp_path: Path) -> None:
    with pytest.raises(scenarios.ScenarioError, match="not found"):
        scenarios.load_manifest(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[scenario]\n")
    with pytest.raises(scenarios.ScenarioError, match="not valid TOML"):
        scenarios.load_manifest(bad)
    twice = tmp_path / "twice.toml"
    twice.write_text('[[scenario]]\nname="a"\nkind="scroll"\nwidth=64\nheight=64\n' * 2)
    with pytest.raises(scenarios.ScenarioError, match="repeat"):
        scenarios.load_manifest(twice)
    with pytest.raises(scenarios.ScenarioError, match="no scenario named"):
        scenarios.select(scenarios.load_manifest(scenarios.DEFAULT_MANIFEST), ["nope"])


def test_user_images_png16_tiff_and_folder(tmp_path: Path) -> None:
    grey16 = (np.arange(100 * 130, dtype=np.uint16).reshape(100, 130) * 5) & 0x0FFF
    cv2.imwrite(str(tmp_path / "ct.png"), grey16)
    colour = np.random.default_rng(0).integers(0, 256, (90, 120, 3), np.uint8)
    folder = tmp_path / "series"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.tif"), colour)
    cv2.imwrite(str(folder / "b.png"), colour[::-1].copy())
    made = scenarios.user_scenarios([tmp_path / "ct.png", folder], frames=4)
    assert [(s.width, s.height, s.bits) for s in made] == [(130, 100, 16), (120, 90, 8)]
    still = made[0].frame_list()
    assert len(still) == 4 and all(np.array_equal(f, still[0]) for f in still)
    assert np.array_equal(still[0][..., 1], (grey16 >> 8).astype(np.uint8))
    show = made[1].frame_list()
    assert np.array_equal(show[0][..., :3], colour)
    assert np.array_equal(show[2][..., :3], colour[::-1])


def test_user_dicom_image(tmp_path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    samples = (np.arange(96 * 80, dtype=np.uint16).reshape(96, 80) * 7) & 0x0FFF
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Rows, ds.Columns = samples.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = samples.tobytes()
    path = tmp_path / "slice.dcm"
    ds.save_as(path, enforce_file_format=True)
    (made,) = scenarios.user_scenarios([path], frames=1)
    assert (made.width, made.height, made.bits) == (80, 96, 12)
    assert np.array_equal(made.frame_list()[0][..., 0], (samples >> 4).astype(np.uint8))


def test_unreadable_user_images_fail_early(tmp_path: Path) -> None:
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(scenarios.ScenarioError, match="not a readable"):
        scenarios.user_scenarios([tmp_path / "junk.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(scenarios.ScenarioError, match=r"no .* files"):
        scenarios.user_scenarios([tmp_path / "empty"])
    with pytest.raises(scenarios.ScenarioError, match="no such file"):
        scenarios.user_scenarios([tmp_path / "nothing.png"])


# -- quality ------------------------------------------------------------------------------

def test_quality_metrics() -> None:
    frame = scenarios.Scenario("t", "typing", 320, 192, frames=1).frame_list()[0]
    y = quality.luma(frame)
    assert y.shape == (192, 320)
    assert quality.psnr(y, y) == float("inf") and quality.ssim(y, y) == pytest.approx(1.0)
    blurred = cv2.GaussianBlur(y, (5, 5), 1.5)
    noisy = np.clip(y.astype(np.int16) + np.random.default_rng(0).integers(-3, 4, y.shape),
                    0, 255).astype(np.uint8)
    # Blur barely changes flat areas but ruins text: edge PSNR sees it, full-frame PSNR hides it.
    edge = quality.edge_psnr(y, blurred)
    assert edge is not None and edge < quality.psnr(y, blurred) - 3
    assert quality.ssim(y, blurred) < quality.ssim(y, noisy) < 1.0
    assert quality.edge_psnr(np.full((32, 32), 7, np.uint8), np.zeros((32, 32), np.uint8)) is None


# -- numpy / CuPy kernels -----------------------------------------------------------------

@pytest.mark.parametrize(("h", "w"), [(64, 128), (70, 97), (1, 1), (130, 66)])
def test_array_module_kernels_equal_hdx(h: int, w: int) -> None:
    rng = np.random.default_rng(h * w)
    prev = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    cur = prev.copy()
    cur[rng.integers(0, h, 5), rng.integers(0, w, 5), rng.integers(0, 4, 5)] ^= 0x10
    assert np.array_equal(gpu.tile_change_map_xp(prev, cur, 16, np),
                          damage.tile_change_map(prev, cur, 16))
    if h % 2 == 0 and w % 2 == 0:
        assert np.array_equal(gpu.bgra_to_i420_xp(cur, np), bgra_to_i420(cur))


def test_gpu_kind_reports_why_cupy_and_nvenc_are_missing(tmp_path: Path) -> None:
    code, result = _run_kind("gpu", tmp_path, "--repeats", "1")
    assert code == 0
    assert set(result["nvenc"]) == {"h264-nvenc", "hevc-nvenc", "av1-nvenc"}
    assert all(v == "available" or len(v) > 20 for v in result["nvenc"].values())
    assert result["numpy"] and result["numpy"][0]["change_map_gb_s"] > 0
    if "unavailable" in result["cupy"]:
        assert "CuPy" in result["cupy"]["unavailable"]


# -- progress -----------------------------------------------------------------------------

def test_progress_in_a_log_and_on_a_terminal() -> None:
    log = io.StringIO()
    with Progress(3, "t", stream=log, live=False) as p:
        for label in ("one", "two", "three"):
            p.step(label)
    lines = log.getvalue().splitlines()
    assert "0/3" in lines[0] and "one" in lines[0]
    assert "3/3" in lines[-1] and "done" in lines[-1]
    tty = io.StringIO()
    p = Progress(2, stream=tty, live=True)
    p.step("a")
    p.step("b")
    assert "1/2" in p.line() and " 50%" in p.line() and "eta" in p.line()
    p.close(failed=True)
    assert "\r\033[K" in tty.getvalue() and "stopped" in tty.getvalue()


# -- --compare ----------------------------------------------------------------------------

def _report(**figures: tuple[float, str]) -> dict[str, Any]:
    return {"benchmark": "k", "targets": [],
            "headline": {k: {"value": v, "better": b, "unit": ""} for k, (v, b) in
                         figures.items()}}


def test_compare_flags_regressions_in_either_direction() -> None:
    old = _report(ms=(10.0, "lower"), fps=(30.0, "higher"), kb=(100.0, "lower"))
    new = _report(ms=(12.0, "lower"), fps=(20.0, "higher"), kb=(80.0, "lower"), extra=(1, "lower"))
    rows = {r["figure"]: r for r in compare.compare(old, new, 0.15)}
    assert set(rows) == {"k/ms", "k/fps", "k/kb"}
    assert rows["k/ms"]["regression"] is True and rows["k/ms"]["change"] == pytest.approx(0.2)
    assert rows["k/fps"]["regression"] is True
    assert rows["k/kb"]["regression"] is False  # better
    assert not any(r["regression"] for r in compare.compare(old, new, 0.5)
                   if r["figure"] == "k/ms")


def test_compare_flags_a_target_that_stopped_passing(tmp_path: Path) -> None:
    old = {"reports": {"peers": {"headline": {}, "targets": [{"target": "x", "pass": True}]}}}
    new = {"reports": {"peers": {"headline": {}, "targets": [{"target": "x", "pass": False}]}}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    out = io.StringIO()
    assert compare.compare_files(tmp_path / "old.json", tmp_path / "new.json", 0.1, out) == 1
    assert "REGRESSION" in out.getvalue() and "peers/x" in out.getvalue()
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(compare.CompareError, match="not an hdx bench report"):
        compare.compare_files(tmp_path / "bad.json", tmp_path / "new.json", 0.1, out)


# -- encoders end to end ------------------------------------------------------------------

def _run_kind(kind: str, out: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="hdx")
    cli.add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", kind, "--quick", "--out", str(out), *extra])
    code = cli.run_bench(args)
    return code, json.loads((out / f"{kind}.json").read_text())


def test_encoders_quick_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = _run_kind("encoders", tmp_path, "--only", "desktop-text", "video-noisy")
    assert code == 0
    usable = {s.name for s in codecs.SPECS} - set(result["unavailable"])
    assert {"hdx-x264", "vp8-rt", "svtav1-p12", "x264-medium-zl"} <= usable
    rows = result["results"]
    assert {(r["scenario"], r["encoder"]) for r in rows} == {
        (s, e) for s in ("desktop-text", "video-noisy") for e in usable}
    for r in rows:
        assert r["decoded_ok"], r
        assert r["delay_frames"] == 0, r  # every candidate is configured for real-time
        assert 10 < r["psnr_y"] < 99 and 0 < r["ssim_y"] <= 1 and r["kbps"] > 0
    text = next(r for r in rows if r["scenario"] == "desktop-text" and r["encoder"] == "hdx-x264")
    assert text["edge_psnr_y"] is not None and text["edge_psnr_y"] < text["psnr_y"]
    for why in result["unavailable"].values():
        assert "nvenc" in why.lower() or "NVML" in why
    assert (tmp_path / "encoders_rd.png").stat().st_size > 1000
    assert (tmp_path / "encoders_latency_cdf.png").stat().st_size > 1000
    shown = capsys.readouterr()
    assert "## desktop-text" in shown.out and "encoders [" in shown.err
    assert result["headline"]["desktop-text/hdx-x264/psnr_y"]["better"] == "higher"


def test_compare_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "first"
    code, result = _run_kind("encoders", first, "--only", "scroll-doc", "--encoders",
                             "hdx-x264", "vp8-rt", "--no-plot")
    assert code == 0
    old = tmp_path / "old.json"
    for figure in result["headline"].values():  # an old run that was much better everywhere
        figure["value"] = figure["value"] * (0.5 if figure["better"] == "lower" else 2.0)
    old.write_text(json.dumps(result))
    code, _ = _run_kind("encoders", tmp_path / "second", "--only", "scroll-doc", "--encoders",
                        "hdx-x264", "--no-plot", "--compare", str(old))
    assert code == 3
    assert "REGRESSION" in capsys.readouterr().out


def test_bad_scenario_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="hdx")
    cli.add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "encoders", "--quick", "--only", "nope", "--out",
                              str(tmp_path)])
    assert cli.run_bench(args) == 2
    assert "no scenario named ['nope']" in capsys.readouterr().err


def test_default_results_folder_names_machine_and_commit() -> None:
    from hdx.bench import report

    name = report.run_folder_name()
    assert name.startswith(report.machine_slug() + "-")
    assert report.default_out(quick=True).name == name + "-quick"
    assert f"-{__import__('os').cpu_count()}c-" in name
