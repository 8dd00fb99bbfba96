"""The client's compositing rules (hdx/client/compositor.py), one rule at a time."""

from __future__ import annotations

import numpy as np
import pytest

from hdx.client.compositor import Compositor, later
from hdx.lossless import codec
from hdx.lossless.protocol import TileHeader, TileMessage

pytestmark = pytest.mark.unit
ORIGIN = 1000
RNG = np.random.default_rng(3)


def tile(tile_id: int, x: int, y: int, base: int, rgb: np.ndarray) -> TileMessage:
    h, w = rgb.shape[:2]
    payload = codec.encode_bgra(np.dstack([rgb[..., ::-1], np.full((h, w), 255, np.uint8)]),
                                codec.ALWAYS_DECODABLE)
    return TileMessage(TileHeader(tile_id, x, y, w, h, base, int(payload.fmt), 8,
                                  payload.channels, len(payload.payload)), payload.payload)


def dirty(*cells: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((2, 2), np.bool_)
    for row, col in cells:
        mask[row, col] = True
    return mask


def shown(comp: Compositor, pts: int) -> int | None:
    return comp.show_video(ORIGIN + pts, np.zeros((128, 128, 3), np.uint8))


@pytest.fixture
def comp() -> Compositor:
    c = Compositor(128, 128)
    c.set_origin(ORIGIN)
    c.announce(10, np.ones((2, 2), np.bool_))
    assert shown(c, 10) == 10
    return c


def test_pts_compare_as_serial_numbers() -> None:
    assert later(5, 2**32 - 5) and not later(2**32 - 5, 5)
    assert not later(7, 7)
    assert list(later(np.array([1, 3]), 2)) == [False, True]


def test_a_frame_never_announced_is_unknown_and_drops_every_overlay(comp: Compositor) -> None:
    assert comp.add_tile(tile(1, 0, 0, 10, RNG.integers(0, 256, (64, 64, 3), np.uint8)))["t"] \
        == "ack"
    assert (comp.overlay_base >= 0).sum() == 1
    assert shown(comp, 99) is None  # 99 was never announced
    assert (comp.overlay_base < 0).all() and comp.shown_pts is None
    reply = comp.add_tile(tile(2, 0, 0, 10, RNG.integers(0, 256, (64, 64, 3), np.uint8)))
    assert reply == {"t": "nack", "id": 2, "reason": "stale"}, "no tile over unknown video"


def test_a_change_drops_the_overlay_when_its_frame_is_shown_not_before(comp: Compositor) -> None:
    comp.add_tile(tile(1, 64, 0, 10, RNG.integers(0, 256, (64, 64, 3), np.uint8)))
    comp.announce(20, dirty((0, 1)))
    assert comp.overlay_base[0, 1] == 10, "the video on screen still shows the old content"
    assert not comp.lossless
    shown(comp, 20)
    assert comp.overlay_base[0, 1] < 0 and comp.stats.invalidated == 1


def test_a_change_the_tile_already_contains_keeps_it(comp: Compositor) -> None:
    comp.announce(20, dirty((0, 0)))
    comp.add_tile(tile(1, 0, 0, 30, RNG.integers(0, 256, (64, 64, 3), np.uint8)))
    shown(comp, 20)  # the video catches up with a change older than the tile's content
    assert comp.overlay_base[0, 0] == 30


def test_an_outdated_tile_is_refused(comp: Compositor) -> None:
    comp.announce(20, dirty((1, 1)))
    reply = comp.add_tile(tile(4, 64, 64, 15, RNG.integers(0, 256, (64, 64, 3), np.uint8)))
    assert reply == {"t": "nack", "id": 4, "reason": "stale"}
    assert comp.overlay_base[1, 1] < 0


def test_lossless_needs_every_tile_verified_and_nothing_pending(comp: Compositor) -> None:
    picture = RNG.integers(0, 256, (128, 128, 3), np.uint8)
    for i, (x, y) in enumerate([(0, 0), (64, 0), (0, 64), (64, 64)]):
        reply = comp.add_tile(tile(i + 1, x, y, 10, picture[y:y + 64, x:x + 64]))
        assert reply["t"] == "ack" and reply["hash"] == codec.rgba_digest(
            np.dstack([picture[y:y + 64, x:x + 64], np.full((64, 64), 255, np.uint8)]))
        assert not comp.lossless
        comp.confirm(i + 1, 1)
    assert comp.lossless and np.array_equal(comp.framebuffer(), picture)
    comp.announce(11, None)  # a repeat of the same picture changes nothing
    assert comp.lossless
    comp.announce(12, dirty((0, 0)))
    assert not comp.lossless, "a change is on its way"
    assert not comp.overdue(after_s=10.0) and comp.overdue(after_s=0.0)


def test_a_rejected_hash_leaves_the_tile_unverified(comp: Compositor) -> None:
    comp.add_tile(tile(7, 0, 0, 10, RNG.integers(0, 256, (64, 64, 3), np.uint8)))
    comp.confirm(7, 0)
    assert not comp.verified.any()


def test_tiles_outside_the_grid_or_undecodable_are_refused(comp: Compositor) -> None:
    bad_place = tile(8, 96, 0, 10, RNG.integers(0, 256, (64, 64, 3), np.uint8))
    assert comp.add_tile(bad_place)["reason"] == "size"
    good = tile(9, 0, 0, 10, RNG.integers(0, 256, (64, 64, 3), np.uint8))
    broken = TileMessage(good.header, b"\x89PNG garbage")
    assert comp.add_tile(broken)["reason"] == "decode"
    assert comp.stats.tiles_broken == 2
