"""The tile lifecycle: lossy -> queued -> sent -> verified, and what a change does to each."""

from __future__ import annotations

import numpy as np
import pytest

from hdx.lossless.board import TileBoard, TileRect, TileState

pytestmark = pytest.mark.unit


def test_new_board_is_all_lossy_and_covers_partial_edge_tiles() -> None:
    board = TileBoard(130, 65)
    assert board.grid == (2, 3)
    assert board.counts().lossy == 6 and not board.all_verified
    assert TileRect(2, 1, 1, 1).pixels(130, 65) == (128, 64, 2, 1)


def test_tiles_refine_only_after_the_quiet_period() -> None:
    board = TileBoard(256, 128)
    changed = np.zeros(board.grid, np.bool_)
    changed[0, 1] = True
    board.changed(np.ones(board.grid, np.bool_), now=10.0)
    board.changed(changed, now=10.1)
    quiet = board.quiet(now=10.2, quiet_s=0.15)
    assert quiet.sum() == 7 and not quiet[0, 1]
    assert board.quiet(now=10.25, quiet_s=0.15).all()


def test_ack_verifies_only_tiles_unchanged_since_encoding() -> None:
    board = TileBoard(256, 128)
    rect = TileRect(0, 0, 4, 2)
    generations = board.mark_queued(rect)
    assert board.counts().queued == 8
    change = np.zeros(board.grid, np.bool_)
    change[1, 3] = True
    board.changed(change, now=1.0)  # changes while the rectangle is in flight
    board.mark_sent(rect, generations)
    assert board.state[1, 3] == TileState.LOSSY
    assert board.acknowledge(rect, generations, exact=True) == 7
    assert board.state[1, 3] == TileState.LOSSY
    assert board.counts().verified == 7


def test_wrong_hash_sends_tiles_back_to_lossy() -> None:
    board = TileBoard(128, 64)
    rect = TileRect(0, 0, 2, 1)
    generations = board.mark_queued(rect)
    board.mark_sent(rect, generations)
    assert board.acknowledge(rect, generations, exact=False) == 0
    assert (board.state == TileState.LOSSY).all()


def test_a_change_undoes_verification() -> None:
    board = TileBoard(128, 64)
    rect = TileRect(0, 0, 2, 1)
    board.acknowledge(rect, board.mark_queued(rect), exact=True)
    assert board.all_verified
    board.changed(np.array([[False, True]]), now=5.0)
    assert board.counts().verified == 1 and board.last_change == 5.0


def test_plan_covers_exactly_the_mask_with_bounded_rectangles() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        mask = rng.random((9, 13)) < 0.6
        board = TileBoard(13 * 64, 9 * 64)
        covered = np.zeros_like(mask, np.int32)
        for r in board.plan(mask, max_side=4):
            assert 1 <= r.tw <= 4 and 1 <= r.th <= 4
            covered[r.slices] += 1
        assert np.array_equal(covered, mask.astype(np.int32)), "each tile in exactly one rect"


def test_plan_puts_rectangles_near_the_focus_first() -> None:
    board = TileBoard(16 * 64, 16 * 64)
    mask = np.zeros(board.grid, np.bool_)
    mask[0, 0] = mask[15, 15] = mask[8, 8] = True
    rects = board.plan(mask, focus=(14, 14))
    assert (rects[0].tx, rects[0].ty) == (15, 15)
    assert (rects[-1].tx, rects[-1].ty) == (0, 0)


def test_change_map_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match"):
        TileBoard(128, 64).changed(np.ones((3, 3), np.bool_), now=0.0)


def test_image_areas_refine_before_the_pointer_neighbourhood() -> None:
    board = TileBoard(16 * 64, 16 * 64)
    mask = np.zeros(board.grid, np.bool_)
    mask[0, 0] = mask[15, 15] = mask[8, 8] = True
    images = np.zeros(board.grid, np.bool_)
    images[0, 0] = True
    rects = board.plan(mask, focus=(14, 14), images=images)
    assert [(r.tx, r.ty) for r in rects] == [(0, 0), (15, 15), (8, 8)]


def test_grey_detailed_tiles_count_as_images() -> None:
    from hdx.bench import content
    from hdx.lossless.refiner import image_tiles
    from hdx.server.capture import CapturedFrame

    frame = np.zeros((256, 320, 4), np.uint8)
    frame[..., 2] = 200  # a flat red UI
    frame[64:192, 128:256] = content.grey_to_bgra(
        content.grey8(content.ct_phantom(128, 12, seed=1), 12))
    captured = CapturedFrame(0, frame, np.ones((4, 5), np.bool_), 0.0, 0.0)
    expected = np.zeros((4, 5), np.bool_)
    expected[1:3, 2:4] = True
    found = image_tiles(captured, (4, 5), 64)
    assert not (found & ~expected).any(), "nothing outside the image"
    assert found.sum() >= 2, "most of the CT counts (its flat black corners may not)"
