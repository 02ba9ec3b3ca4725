"""Tests for envs.render: conventions, anti-aliasing, compositing order, springs and a slow reference."""

from __future__ import annotations

import numpy as np
import pytest

from envs.render import render, render_frame

ARENA = 10.0
RED = (255, 0, 0)
GREEN = (0, 255, 0)


def _one(pos, size, colour=RED, **kw):
    """Render a single object in a single frame."""
    return render_frame(
        np.array([pos], float),
        np.array([size], float),
        np.array([colour], np.uint8),
        arena_size=kw.pop("arena_size", ARENA),
        **kw,
    )


def _reference(
    positions,
    sizes,
    colours,
    *,
    arena_size,
    image_size=64,
    shapes=None,
    angles=None,
    present=None,
    springs=None,
    spring_present=None,
    spring_colour=(90, 90, 90),
    background=(0, 0, 0),
):
    """Naive full-frame float64 renderer, one frame and one object at a time."""
    T, N = positions.shape[:2]
    shapes = np.zeros(N, int) if shapes is None else shapes
    angles = np.zeros((T, N)) if angles is None else angles
    present = np.ones((T, N), bool) if present is None else present
    springs = np.zeros((0, 2), int) if springs is None else springs
    spring_present = np.ones((T, len(springs)), bool) if spring_present is None else spring_present
    H = W = image_size
    s = image_size / arena_size
    py, px = np.mgrid[0:H, 0:W] + 0.5  # pixel centres, (H, W)
    rgbs, masks = [], []
    for t in range(T):
        img = np.empty((H, W, 3))
        img[:] = background
        mask = np.zeros((H, W), np.uint8)
        for k, (i, j) in enumerate(springs):
            if not (spring_present[t, k] and present[t, i] and present[t, j]):
                continue
            a, b = positions[t, i] * s, positions[t, j] * s
            d = b - a
            dd = d @ d
            u = np.zeros_like(px) if dd == 0 else np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / dd, 0, 1)
            dist = np.hypot(px - a[0] - u * d[0], py - a[1] - u * d[1])
            alpha = np.clip(0.5 - (dist - 0.5), 0, 1)[..., None]
            img = img * (1 - alpha) + np.asarray(spring_colour, float) * alpha
        for i in range(N):
            if not present[t, i]:
                continue
            cx, cy = positions[t, i] * s
            r = sizes[i] * s
            dx, dy = px - cx, py - cy
            if shapes[i] == 1:
                c, sn = np.cos(angles[t, i]), np.sin(angles[t, i])
                qx = np.abs(c * dx + sn * dy) - r
                qy = np.abs(-sn * dx + c * dy) - r
                sd = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
            else:
                sd = np.hypot(dx, dy) - r
            alpha = np.clip(0.5 - sd, 0, 1)
            img = img * (1 - alpha[..., None]) + colours[i].astype(float) * alpha[..., None]
            mask[alpha >= 0.5] = i + 1
        rgbs.append(np.rint(img).astype(np.uint8))
        masks.append(mask)
    return np.stack(rgbs), np.stack(masks)


def _random_scene(rng, T, N, S=0):
    pos = rng.uniform(-1, ARENA + 1, size=(T, N, 2))
    sizes = rng.uniform(0.3, 1.5, size=N)
    colours = rng.integers(0, 256, size=(N, 3)).astype(np.uint8)
    shapes = rng.integers(0, 2, size=N)
    angles = rng.uniform(-np.pi, np.pi, size=(T, N))
    present = rng.random((T, N)) < 0.85
    kw = dict(shapes=shapes, angles=angles, present=present)
    if S:
        kw["springs"] = rng.integers(0, N, size=(S, 2))
        kw["spring_present"] = rng.random((T, S)) < 0.8
    return pos, sizes, colours, kw


def test_shapes_and_dtypes():
    rng = np.random.default_rng(0)
    pos, sizes, colours, kw = _random_scene(rng, 7, 4, S=2)
    rgb, masks = render(pos, sizes, colours, arena_size=ARENA, image_size=48, **kw)
    assert rgb.shape == (7, 48, 48, 3) and rgb.dtype == np.uint8
    assert masks.shape == (7, 48, 48) and masks.dtype == np.uint8
    assert rgb.flags["C_CONTIGUOUS"] and masks.flags["C_CONTIGUOUS"]
    assert masks.max() <= 4
    img, mask = render_frame(
        pos[0],
        sizes,
        colours,
        arena_size=ARENA,
        image_size=48,
        shapes=kw["shapes"],
        angles=kw["angles"][0],
        present=kw["present"][0],
    )
    assert img.shape == (48, 48, 3) and mask.shape == (48, 48)


def test_background_only_when_nothing_present():
    rng = np.random.default_rng(1)
    pos, sizes, colours, kw = _random_scene(rng, 3, 3, S=2)
    kw["present"] = np.zeros((3, 3), bool)
    rgb, masks = render(pos, sizes, colours, arena_size=ARENA, background=(10, 20, 30), **kw)
    assert (rgb == np.array([10, 20, 30], np.uint8)).all()
    assert (masks == 0).all()
    # no objects at all
    rgb, masks = render(np.zeros((2, 0, 2)), np.zeros(0), np.zeros((0, 3), np.uint8), arena_size=ARENA)
    assert rgb.shape == (2, 64, 64, 3) and not rgb.any() and not masks.any()


def test_lone_circle_centroid_and_area():
    pos, r = (3.7, 6.2), 1.3
    rgb, mask = _one(pos, r)
    rows, cols = np.nonzero(mask == 1)
    scale = 64 / ARENA
    assert abs(cols.mean() + 0.5 - pos[0] * scale) < 0.5
    assert abs(rows.mean() + 0.5 - pos[1] * scale) < 0.5
    area = np.pi * (r * scale) ** 2
    assert abs(rows.size - area) < 0.1 * area
    # full colour in the middle, background far away
    assert tuple(rgb[int(pos[1] * scale), int(pos[0] * scale)]) == RED
    assert tuple(rgb[0, 0]) == (0, 0, 0)
    assert set(np.unique(mask)) == {0, 1}


def test_rotated_box_area_and_orientation():
    h = 10 / 6.4  # 20 px side
    scale = 64 / ARENA
    _, m0 = _one((5, 5), h, shapes=np.array([1]), angles=np.array([0.0]))
    _, m45 = _one((5, 5), h, shapes=np.array([1]), angles=np.array([np.pi / 4]))
    _, m90 = _one((5, 5), h, shapes=np.array([1]), angles=np.array([np.pi / 2]))
    expected = (2 * h * scale) ** 2
    for m in (m0, m45):
        assert abs((m == 1).sum() - expected) < 0.08 * expected
    assert (m0 != m45).sum() > 20
    assert (m0 != m90).sum() <= 4  # a square rotated by 90 degrees is the same square
    # axis-aligned box: the corner pixel is covered, at 45 degrees it is not (it pokes out along the axes)
    c = int(5 * scale)
    d = int(h * scale) - 1
    assert m0[c - d, c - d] == 1 and m45[c - d, c - d] == 0
    assert m45[c, c + d + 3] == 1 and m0[c, c + d + 3] == 0


def test_edge_antialiasing_gives_intermediate_values():
    rgb, mask = _one((5.03, 5.0), 1.27)
    red = rgb[..., 0]
    partial = (red > 0) & (red < 255)
    assert partial.sum() > 10
    # the intermediate pixels form a ring around the solid disc, not inside it
    assert not (partial & (mask == 1) & (red < 128)).any()
    # a rotated box edge is anti-aliased too
    rgb, _ = _one((5.0, 5.0), 1.27, shapes=np.array([1]), angles=np.array([0.3]))
    red = rgb[..., 0]
    assert ((red > 0) & (red < 255)).sum() > 10


def test_overlap_order_later_on_top():
    pos = np.array([[5.0, 5.0], [5.5, 5.0]])
    sizes = np.array([1.5, 1.0])
    colours = np.array([RED, GREEN], np.uint8)
    rgb, mask = render_frame(pos, sizes, colours, arena_size=ARENA)
    scale = 64 / ARENA
    cy, cx = int(5.0 * scale), int(5.5 * scale)
    assert mask[cy, cx] == 2 and tuple(rgb[cy, cx]) == GREEN
    assert mask[cy, int(3.8 * scale)] == 1 and tuple(rgb[cy, int(3.8 * scale)]) == RED
    # swapping the order puts the big red disc on top, hiding the green one completely
    rgb2, mask2 = render_frame(pos[::-1], sizes[::-1], colours[::-1], arena_size=ARENA)
    assert mask2[cy, cx] == 2 and tuple(rgb2[cy, cx]) == RED
    assert not (mask2 == 1).any()


@pytest.mark.parametrize("pos", [(-3.0, 5.0), (5.0, 14.0), (1e9, -1e9), (-1e30, 1e30), (11.6, -1.6)])
def test_offscreen_objects_draw_nothing(pos):
    for shape in (0, 1):
        rgb, mask = _one(pos, 1.0, shapes=np.array([shape]), angles=np.array([0.7]), springs=np.array([[0, 0]]))
        assert not rgb.any() and not mask.any()


def test_partly_visible_object_is_clipped():
    rgb, mask = _one((0.0, 10.0), 1.0)  # centre on the bottom-left corner: a quarter disc is visible
    area = np.pi * (1.0 * 6.4) ** 2 / 4
    assert abs((mask == 1).sum() - area) < 0.15 * area
    assert mask[-1, 0] == 1 and mask[0, -1] == 0


def test_present_false_hides_object():
    pos = np.array([[[3.0, 3.0], [7.0, 7.0]]] * 2)
    sizes = np.array([1.0, 1.0])
    colours = np.array([RED, GREEN], np.uint8)
    present = np.array([[True, True], [True, False]])
    rgb, masks = render(pos, sizes, colours, arena_size=ARENA, present=present)
    assert (masks[0] == 2).any() and not (masks[1] == 2).any()
    assert (rgb[1, ..., 1] == 0).all() and (rgb[1, ..., 0] > 0).any()
    np.testing.assert_array_equal(masks[0] == 1, masks[1] == 1)
    # NaN positions count as absent
    pos[1, 1] = np.nan
    rgb2, masks2 = render(pos, sizes, colours, arena_size=ARENA)
    np.testing.assert_array_equal(rgb2[1], rgb[1])


def test_springs_draw_between_circles_but_not_in_mask():
    pos = np.array([[2.0, 3.0], [8.0, 6.0]])
    sizes = np.array([0.6, 0.6])
    colours = np.array([RED, GREEN], np.uint8)
    springs = np.array([[0, 1]])
    kw = dict(arena_size=ARENA, spring_colour=(0, 0, 200))
    rgb_s, mask_s = render_frame(pos, sizes, colours, springs=springs, **kw)
    rgb_n, mask_n = render_frame(pos, sizes, colours, **kw)
    np.testing.assert_array_equal(mask_s, mask_n)
    blue = rgb_s[..., 2] > 0
    assert not (rgb_n[..., 2] > 0).any()
    # the line passes through the midpoint and is roughly 1 px wide along its length
    scale = 64 / ARENA
    mid = (pos[0] + pos[1]) / 2 * scale
    assert blue[int(mid[1]) - 1 : int(mid[1]) + 2, int(mid[0]) - 1 : int(mid[0]) + 2].any()
    length = np.hypot(*(pos[1] - pos[0])) * scale - 2 * 0.6 * scale
    assert 0.7 * length < blue.sum() < 2.5 * length
    assert not (blue & (mask_s > 0) & (rgb_s[..., 0] == 255)).any()  # drawn under the objects
    # spring_present hides it
    rgb_h, _ = render_frame(pos, sizes, colours, springs=springs, spring_present=np.array([False]), **kw)
    np.testing.assert_array_equal(rgb_h, rgb_n)


def test_batch_equals_single_frames():
    rng = np.random.default_rng(2)
    T = 6
    pos, sizes, colours, kw = _random_scene(rng, T, 5, S=3)
    rgb, masks = render(pos, sizes, colours, arena_size=ARENA, **kw)
    for t in range(T):
        img, mask = render_frame(
            pos[t],
            sizes,
            colours,
            arena_size=ARENA,
            shapes=kw["shapes"],
            angles=kw["angles"][t],
            present=kw["present"][t],
            springs=kw["springs"],
            spring_present=kw["spring_present"][t],
        )
        np.testing.assert_array_equal(img, rgb[t])
        np.testing.assert_array_equal(mask, masks[t])


@pytest.mark.parametrize("image_size", [32, 64, 96])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_reference(image_size, seed):
    rng = np.random.default_rng(100 + seed)
    T, N, S = 4, 6, 3
    pos, sizes, colours, kw = _random_scene(rng, T, N, S)
    kw["background"] = tuple(int(v) for v in rng.integers(0, 256, 3))
    kw["spring_colour"] = tuple(int(v) for v in rng.integers(0, 256, 3))
    rgb, masks = render(pos, sizes, colours, arena_size=ARENA, image_size=image_size, **kw)
    ref_rgb, ref_masks = _reference(pos, sizes, colours, arena_size=ARENA, image_size=image_size, **kw)
    diff = np.abs(rgb.astype(int) - ref_rgb.astype(int))
    assert diff.max() <= 1, f"max channel difference {diff.max()}"
    assert (masks != ref_masks).mean() < 1e-3
    assert (masks > 0).any() and (rgb != np.array(kw["background"], np.uint8)).any()


def test_reference_agreement_with_heavy_overlap():
    rng = np.random.default_rng(7)
    T, N = 3, 10
    pos = rng.uniform(4.0, 6.0, size=(T, N, 2))  # everything piled up in the middle
    sizes = rng.uniform(0.5, 1.5, size=N)
    colours = rng.integers(0, 256, size=(N, 3)).astype(np.uint8)
    kw = dict(
        shapes=rng.integers(0, 2, N),
        angles=rng.uniform(0, 3, (T, N)),
        springs=np.array([[0, 9], [1, 8], [2, 2]]),
        background=(30, 60, 90),
    )
    rgb, masks = render(pos, sizes, colours, arena_size=ARENA, **kw)
    ref_rgb, ref_masks = _reference(pos, sizes, colours, arena_size=ARENA, **kw)
    assert np.abs(rgb.astype(int) - ref_rgb.astype(int)).max() <= 1
    assert (masks != ref_masks).mean() < 1e-3


def test_image_size_scales_geometry():
    for image_size in (32, 96):
        _, mask = _one((5.0, 5.0), 2.0, image_size=image_size)
        area = np.pi * (2.0 * image_size / ARENA) ** 2
        assert mask.shape == (image_size, image_size)
        assert abs((mask == 1).sum() - area) < 0.1 * area


def test_input_validation():
    pos = np.zeros((2, 3, 2))
    sizes = np.ones(3)
    colours = np.zeros((3, 3), np.uint8)
    with pytest.raises(ValueError, match=r"positions must be \(T, N, 2\), got \(3, 4\)"):
        render(np.zeros((3, 4)), sizes, colours, arena_size=ARENA)
    with pytest.raises(ValueError, match="sizes"):
        render(pos, np.ones(2), colours, arena_size=ARENA)
    with pytest.raises(ValueError, match="colours"):
        render(pos, sizes, np.zeros((3, 4)), arena_size=ARENA)
    with pytest.raises(ValueError, match="image_size"):
        render(pos, sizes, colours, arena_size=ARENA, image_size=4)
    with pytest.raises(ValueError, match="arena_size"):
        render(pos, sizes, colours, arena_size=0.0)
    with pytest.raises(ValueError, match="shapes"):
        render(pos, sizes, colours, arena_size=ARENA, shapes=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="angles"):
        render(pos, sizes, colours, arena_size=ARENA, angles=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="present"):
        render(pos, sizes, colours, arena_size=ARENA, present=np.ones(3, bool))
    with pytest.raises(ValueError, match="springs"):
        render(pos, sizes, colours, arena_size=ARENA, springs=np.array([[0, 3]]))
    with pytest.raises(ValueError, match="spring_present"):
        render(pos, sizes, colours, arena_size=ARENA, springs=np.array([[0, 1]]), spring_present=np.ones((2, 2)))
    with pytest.raises(ValueError, match="background"):
        render(pos, sizes, colours, arena_size=ARENA, background=(0, 0))
    with pytest.raises(ValueError, match=r"positions must be \(N, 2\)"):
        render_frame(pos, sizes, colours, arena_size=ARENA)


def test_objects_larger_than_the_image_match_reference():
    rng = np.random.default_rng(11)
    T, N = 5, 3
    pos = rng.uniform(-5, 15, size=(T, N, 2))
    sizes = rng.uniform(2.0, 9.0, size=N)  # radius up to ~7 px on an 8 px image
    colours = rng.integers(0, 256, size=(N, 3)).astype(np.uint8)
    kw = dict(shapes=np.array([0, 1, 1]), angles=rng.uniform(-4, 4, (T, N)), springs=np.array([[0, 1], [1, 2]]))
    rgb, masks = render(pos, sizes, colours, arena_size=ARENA, image_size=8, **kw)
    ref_rgb, ref_masks = _reference(pos, sizes, colours, arena_size=ARENA, image_size=8, **kw)
    assert np.abs(rgb.astype(int) - ref_rgb.astype(int)).max() <= 1
    assert (masks != ref_masks).sum() <= 1
    assert (masks > 0).mean() > 0.3


def test_zero_frames():
    rgb, masks = render(np.zeros((0, 2, 2)), np.ones(2), np.zeros((2, 3), np.uint8), arena_size=ARENA, image_size=16)
    assert rgb.shape == (0, 16, 16, 3) and masks.shape == (0, 16, 16)
