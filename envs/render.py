"""Fast vectorised numpy rasteriser for the 2D object scenes.

Conventions
-----------
* The arena is the square ``[0, arena_size]^2``. A position ``(x, y)`` maps to pixel coordinates
  ``(x, y) * image_size / arena_size``; ``x`` runs along image columns and ``y`` along image rows
  (``y`` grows downwards, like image rows). Pixel ``(row, col)`` has its centre at
  ``(col + 0.5, row + 0.5)`` in pixel coordinates.
* Shapes: ``0`` = circle (``size`` is the radius), ``1`` = square box (``size`` is the half side length),
  rotated by ``angle`` radians: a point ``p`` is mapped into the box frame by ``R(-angle) (p - c)``.
* Anti-aliasing: every shape has a signed distance ``sd`` (pixel units, negative inside) and the pixel
  coverage is ``alpha = clip(0.5 - sd, 0, 1)``. Objects are composited in index order (later index on
  top) with ``img = img * (1 - alpha) + colour * alpha``.
* Mask: pixel value ``i + 1`` where object ``i`` is the top-most object with ``alpha >= 0.5``, else 0.
* Springs are anti-aliased 1 px wide segments between object centres, drawn under all objects and never
  in the mask. A spring is drawn at frame ``t`` only if it is present and both its endpoints are present.

Implementation
--------------
All T frames are rendered at once; Python loops run over objects and springs only. The RGB canvas is a
``(T, H, W, 3)`` uint16 array in biased fixed point (``stored = 256 * value + 128``): blending is affine,
so it commutes with the bias, and the rounded 8-bit colour is ``stored >> 8`` (8 spare bits keep the
error of repeated blending far below one grey level). Each object is evaluated on a ``(T, P, P)`` window
around its centre (P = 2 ceil(extent) + 1, the extent of a box being its rotated half width); windows
are clamped into the image and the coverage is evaluated at the pixels they land on, so partly visible
objects need no padded canvas. A strided view of all P x P windows of the canvas turns the per-frame
gather / blend / scatter into one fancy-indexing operation over the frames. Springs are evaluated on a
band of 3 pixels across their major axis per pixel along it.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["CIRCLE", "BOX", "render", "render_frame"]

CIRCLE = 0
BOX = 1

_MAX_OBJECTS = 255  # mask is uint8 with 0 reserved for the background


def _colour3(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (3,):
        raise ValueError(f"{name} must be an RGB triple of shape (3,), got shape {arr.shape}")
    if not np.all((arr >= 0) & (arr <= 255)):
        raise ValueError(f"{name} values must lie in [0, 255], got {arr.tolist()}")
    return arr


def _check_shape(arr: np.ndarray, expected: tuple[int, ...], name: str, spec: str) -> None:
    if arr.shape != expected:
        raise ValueError(f"{name} must be {spec} = {expected}, got {arr.shape}")


def _validate(positions, sizes, colours, arena_size, image_size, shapes, angles, present, springs, spring_present):
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[-1] != 2:
        raise ValueError(f"positions must be (T, N, 2), got {positions.shape}")
    T, N = positions.shape[:2]
    if N > _MAX_OBJECTS:
        raise ValueError(f"at most {_MAX_OBJECTS} objects are supported (uint8 mask), got {N}")

    sizes = np.asarray(sizes, dtype=np.float64)
    _check_shape(sizes, (N,), "sizes", "(N,)")
    if not np.all(np.isfinite(sizes) & (sizes >= 0)):
        raise ValueError("sizes must be finite and non-negative")

    colours = np.asarray(colours)
    _check_shape(colours, (N, 3), "colours", "(N, 3)")
    colours = colours.astype(np.float64)
    if not np.all((colours >= 0) & (colours <= 255)):
        raise ValueError("colours values must lie in [0, 255]")

    try:
        arena = float(arena_size)
    except (TypeError, ValueError):
        arena = math.nan
    if not (math.isfinite(arena) and arena > 0):
        raise ValueError(f"arena_size must be a positive finite number, got {arena_size!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int | np.integer) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}")

    if shapes is None:
        shapes = np.zeros(N, dtype=np.int64)
    else:
        shapes = np.asarray(shapes)
        _check_shape(shapes, (N,), "shapes", "(N,)")
        if not np.all((shapes == CIRCLE) | (shapes == BOX)):
            raise ValueError("shapes values must be 0 (circle) or 1 (box)")
        shapes = shapes.astype(np.int64)

    if angles is None:
        angles = np.zeros((T, N), dtype=np.float64)
    else:
        angles = np.asarray(angles, dtype=np.float64)
        _check_shape(angles, (T, N), "angles", "(T, N)")

    if present is None:
        present = np.ones((T, N), dtype=bool)
    else:
        present = np.asarray(present)
        _check_shape(present, (T, N), "present", "(T, N)")
        present = present.astype(bool)

    if springs is None:
        springs = np.zeros((0, 2), dtype=np.int64)
    else:
        springs = np.asarray(springs)
        if springs.size == 0:
            springs = springs.reshape(0, 2)
        if springs.ndim != 2 or springs.shape[1] != 2:
            raise ValueError(f"springs must be (S, 2), got {springs.shape}")
        if not np.issubdtype(springs.dtype, np.integer):
            raise ValueError(f"springs must hold integer object indices, got dtype {springs.dtype}")
        if springs.size and (springs.min() < 0 or springs.max() >= N):
            raise ValueError(f"springs indices must lie in [0, {N}), got range [{springs.min()}, {springs.max()}]")
        springs = springs.astype(np.int64)
    S = springs.shape[0]
    if spring_present is None:
        spring_present = np.ones((T, S), dtype=bool)
    else:
        spring_present = np.asarray(spring_present)
        _check_shape(spring_present, (T, S), "spring_present", "(T, S)")
        spring_present = spring_present.astype(bool)

    return positions, sizes, colours, shapes, angles, present, springs, spring_present


_BAND = 3  # pixels across a spring's major axis that can be within 1 px of the segment
_POS_LIMIT = 1e6  # pixel coordinates are clipped to +-this to keep the arithmetic finite


def _spring_band(a_maj, a_min, b_maj, b_min, n_maj: int, n_min: int):
    """Pixels near segments a-b (one per frame) that run mostly along the `maj` axis (|d_maj| >= |d_min|).

    Coordinates are (Tk,) float64 pixel coordinates along the major/minor axis of an image with n_maj
    pixels along the major and n_min along the minor axis. A pixel centre within 1 px of the segment is
    less than sqrt(2) px across the major axis from the line (slope <= 1; clamped to the segment's extent
    along the major axis), so a band of _BAND = 3 pixels across it per pixel along it holds them all.
    Returns the pixel coordinates ``maj`` (Tk, L) along the major axis, ``first`` (Tk, L), the first pixel
    of each band across it, and the coverage ``alpha`` (Tk, B, L) of the pixels ``(maj, first + k)``; or
    None when nothing is visible. All pixels lie inside the image.
    """
    lo = np.minimum(a_maj, b_maj)
    hi = np.maximum(a_maj, b_maj)
    start = np.maximum(np.minimum(np.floor(lo - 1.5), n_maj), 0).astype(np.intp)  # (Tk,)
    stop = np.maximum(np.minimum(np.ceil(hi + 1.5), n_maj), 0).astype(np.intp)
    L = int((stop - start).max())
    if L <= 0:
        return None
    start = np.minimum(start, n_maj - L)  # window of L pixels, kept inside the image
    maj = start[:, None] + np.arange(L)  # (Tk, L)
    centre = maj + 0.5
    d_maj = b_maj - a_maj
    d_min = b_min - a_min
    slope = np.divide(d_min, d_maj, out=np.zeros_like(d_min), where=d_maj != 0)
    line = np.minimum(np.maximum(centre, lo[:, None]), hi[:, None])
    line -= a_maj[:, None]
    line *= slope[:, None]
    line += a_min[:, None]  # (Tk, L) minor coordinate of the segment, clamped to its ends
    # pixels k with |k + 0.5 - line| < sqrt(2): k in (line - 1.91, line + 0.91), at most 3 of them;
    # clamping the band into the image keeps all of its visible pixels
    first = np.floor(line - (0.5 + math.sqrt(2.0)))
    first += 1
    first = np.maximum(np.minimum(first, n_min - _BAND), 0).astype(np.intp)  # (Tk, L)

    e_maj = (centre - a_maj[:, None]).astype(np.float32)  # (Tk, L) pixel centre - a
    e_min = ((first + 0.5) - a_min[:, None]).astype(np.float32)  # (Tk, L) for the band's first pixel
    dd = d_maj * d_maj + d_min * d_min
    inv = np.divide(1.0, dd, out=np.zeros_like(dd), where=dd > 1e-12).astype(np.float32)[:, None]
    dm = d_maj.astype(np.float32)[:, None]  # (Tk, 1)
    dn = d_min.astype(np.float32)[:, None]
    kb = np.arange(_BAND, dtype=np.float32)[:, None]  # (B, 1)
    # projection onto the segment, (Tk, B, L)
    u = ((e_maj * dm + e_min * dn) * inv)[:, None, :] + (kb * (dn * inv)[:, None, :])
    np.minimum(np.maximum(u, 0.0, out=u), 1.0, out=u)
    q_maj = u * dm[:, :, None]
    np.subtract(e_maj[:, None, :], q_maj, out=q_maj)
    q_min = u * dn[:, :, None]
    np.subtract(e_min[:, None, :] + kb, q_min, out=q_min)
    q_maj *= q_maj
    q_min *= q_min
    q_min += q_maj
    dist = np.sqrt(q_min, out=q_min)
    # 1 px thick line: sd = dist - 0.5, alpha = clip(0.5 - sd, 0, 1)
    alpha = np.subtract(np.float32(1.0), dist, out=dist)
    np.minimum(np.maximum(alpha, 0.0, out=alpha), 1.0, out=alpha)
    return maj, first, alpha


def _blend_pixels(flat: np.ndarray, idx: np.ndarray, alpha: np.ndarray, colour_b: np.ndarray) -> None:
    """Blend `colour_b` (3,) with coverage `alpha` (Tk, ...) into the flat uint16 RGB canvas.

    idx (Tk, 3, ...) holds flat element indices, channel-planar, all distinct.
    """
    f = np.take(flat, idx).astype(np.float32)  # (Tk, 3, ...)
    new = colour_b.reshape(3, *([1] * (alpha.ndim - 1))) - f
    new *= alpha[:, None]
    new += f
    flat[idx] = new.astype(np.uint16)


def _circle_alpha(dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Coverage (Tk, P, P) of a circle of radius r at pixel offsets dx (Tk, P) (columns), dy (Tk, P) (rows)."""
    dx = dx * dx
    dy = dy * dy
    d = dx[:, None, :] + dy[:, :, None]  # (Tk, P, P) squared distance
    np.sqrt(d, out=d)
    alpha = np.subtract(np.float32(r + 0.5), d, out=d)  # 0.5 - (|p - c| - r)
    return np.minimum(np.maximum(alpha, 0.0, out=alpha), 1.0, out=alpha)


def _box_alpha(dx: np.ndarray, dy: np.ndarray, r: float, angle: np.ndarray) -> np.ndarray:
    """Coverage (Tk, P, P) of a square of half side r rotated by angle (Tk,), offsets as _circle_alpha."""
    cs = np.cos(angle).astype(np.float32)[:, None, None]  # (Tk, 1, 1)
    sn = np.sin(angle).astype(np.float32)[:, None, None]
    dx3 = dx[:, None, :]  # (Tk, 1, P)
    dy3 = dy[:, :, None]  # (Tk, P, 1)
    u = cs * dx3 + sn * dy3  # (Tk, P, P) coordinates in the box frame
    v = cs * dy3 - sn * dx3
    r = np.float32(r)
    np.abs(u, out=u)
    np.abs(v, out=v)
    u -= r
    v -= r
    # box SDF: |max(q, 0)| + min(max(qx, qy), 0) with q = |p| - r
    inside = np.maximum(u, v)
    np.minimum(inside, 0.0, out=inside)
    np.maximum(u, 0.0, out=u)
    np.maximum(v, 0.0, out=v)
    u *= u
    v *= v
    u += v
    sd = np.sqrt(u, out=u)
    sd += inside
    alpha = np.subtract(np.float32(0.5), sd, out=sd)
    return np.minimum(np.maximum(alpha, 0.0, out=alpha), 1.0, out=alpha)


def _windows(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Writeable view of all (h, w) windows of `arr` (T, H, W, ...): (T, H-h+1, W-w+1, h, w, ...)."""
    T, H, W = arr.shape[:3]
    h, w = shape
    st = arr.strides
    return as_strided(
        arr,
        shape=(T, H - h + 1, W - w + 1, h, w, *arr.shape[3:]),
        strides=(st[0], st[1], st[2], st[1], st[2], *st[3:]),
        writeable=True,
    )


def _composite(rgb_win, mask_win, index, alpha, colour_b, label: int) -> None:
    """Blend `colour_b` with coverage `alpha` into the canvas windows rgb_win[index] (alpha.shape + (3,)).

    `index` must not select overlapping windows (one window per frame for objects, disjoint columns of
    one frame for springs), so gather-blend-scatter is exact. mask_win[index] (alpha.shape) is raised
    to `label` where alpha >= 0.5 (labels increase with the drawing order, so this is "set"); skipped
    if mask_win is None.
    """
    px = rgb_win[index]  # gather, (..., 3) uint16
    for ch in range(3):
        f = px[..., ch].astype(np.float32)
        new = np.subtract(colour_b[ch], f)
        new *= alpha
        new += f
        px[..., ch] = new  # truncates: at most 1/256 of a grey level
    rgb_win[index] = px  # scatter
    if mask_win is not None:
        m = mask_win[index]
        np.maximum(m, (alpha >= 0.5).view(np.uint8) * np.uint8(label), out=m)
        mask_win[index] = m


def render(
    positions: np.ndarray,
    sizes: np.ndarray,
    colours: np.ndarray,
    *,
    arena_size: float,
    image_size: int = 64,
    shapes: np.ndarray | None = None,
    angles: np.ndarray | None = None,
    present: np.ndarray | None = None,
    springs: np.ndarray | None = None,
    spring_present: np.ndarray | None = None,
    spring_colour=(90, 90, 90),
    background=(0, 0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Render T frames of N objects.

    Args:
        positions: (T, N, 2) object centres in arena units, (x, y) = (column, row) direction.
        sizes: (N,) radius of circles / half side length of boxes, arena units.
        colours: (N, 3) RGB colours in [0, 255].
        arena_size: side length of the square arena.
        image_size: output height = width in pixels (>= 8).
        shapes: (N,) 0 = circle, 1 = box; None -> all circles.
        angles: (T, N) box rotations in radians (ignored for circles); None -> 0.
        present: (T, N) bool, absent objects are not drawn; None -> all present. Objects with
            non-finite positions are treated as absent.
        springs: (S, 2) pairs of object indices joined by a line under the objects.
        spring_present: (T, S) bool; None -> all springs present. A spring is only drawn in frames
            where both of its objects are present too.
        spring_colour: RGB of the spring lines.
        background: RGB of the background.

    Returns:
        rgb (T, H, W, 3) uint8 and masks (T, H, W) uint8 with 0 = background and i + 1 = object i.
    """
    positions, sizes, colours, shapes, angles, present, springs, spring_present = _validate(
        positions, sizes, colours, arena_size, image_size, shapes, angles, present, springs, spring_present
    )
    spring_b = (256.0 * _colour3(spring_colour, "spring_colour") + 128.0).astype(np.float32)
    bg_b = (256.0 * _colour3(background, "background") + 128.0).astype(np.uint16)

    T, N = positions.shape[:2]
    H = W = int(image_size)
    scale = H / float(arena_size)
    if T == 0:
        return np.zeros((0, H, W, 3), dtype=np.uint8), np.zeros((0, H, W), dtype=np.uint8)

    pos = positions * scale  # (T, N, 2) pixels
    present = present & np.isfinite(pos).all(axis=-1)
    pos = np.clip(np.where(present[..., None], pos, 0.0), -_POS_LIMIT, _POS_LIMIT)
    angles = np.where(np.isfinite(angles), angles, 0.0)

    # RGB canvas in biased fixed point: stored = 256 * value + 128, so round(value) = stored >> 8
    if bg_b[0] == bg_b[1] == bg_b[2]:
        canvas = np.full((T, H, W, 3), bg_b[0], dtype=np.uint16)
    else:
        canvas = np.empty((T, H, W * 3), dtype=np.uint16)
        canvas[...] = np.tile(bg_b, W)
        canvas = canvas.reshape(T, H, W, 3)
    masks = np.zeros((T, H, W), dtype=np.uint8)
    all_t = np.arange(T)

    if springs.shape[0]:
        valid = spring_present & present[:, springs[:, 0]] & present[:, springs[:, 1]]  # (T, S)
        flat = canvas.reshape(-1)
        chan = np.arange(3)[:, None]  # (3, 1)
        band_k = np.arange(_BAND)[None, :]  # (1, B)
        for s, (i, j) in enumerate(springs):
            tt = np.flatnonzero(valid[:, s])
            if tt.size == 0:
                continue
            a = pos[tt, i]  # (Tk, 2)
            b = pos[tt, j]
            # per frame, work along the segment's major axis: x (columns) or y (rows)
            x_major = np.abs(b[:, 0] - a[:, 0]) >= np.abs(b[:, 1] - a[:, 1])  # (Tk,)
            xm = x_major[:, None]
            a_mm = np.where(xm, a, a[:, ::-1])  # (Tk, 2) as (major, minor)
            b_mm = np.where(xm, b, b[:, ::-1])
            band = _spring_band(a_mm[:, 0], a_mm[:, 1], b_mm[:, 0], b_mm[:, 1], W, H)  # square image
            if band is None:
                continue
            maj, first, alpha = band  # (Tk, L), (Tk, L), (Tk, B, L)
            rows = np.where(xm, first, maj)  # (Tk, L) first pixel of each band
            cols = np.where(xm, maj, first)
            base = ((tt[:, None] * H + rows) * W + cols) * 3  # (Tk, L) flat index of its red channel
            step = np.where(x_major, 3 * W, 3)[:, None, None]  # (Tk, 1, 1) flat step along the band
            offset = chan + band_k * step  # (Tk, 3, B)
            _blend_pixels(flat, base[:, None, None, :] + offset[..., None], alpha, spring_b)

    # Each object is drawn on a (P, P) window per frame, P = 2 * half + 1 covering every pixel centre
    # within extent + 0.5 of its centre (alpha > 0 only there). Windows are clamped into the image and
    # the coverage is evaluated at the pixels the window actually lands on, so no padding is needed.
    rad = sizes * scale  # (N,) pixels
    extent = rad
    if (shapes == BOX).any():
        # half width of the axis-aligned bounding box of a rotated square: r (|cos| + |sin|) <= r sqrt(2)
        spread = np.where(present, np.abs(np.cos(angles)) + np.abs(np.sin(angles)), 0.0).max(axis=0)  # (N,)
        extent = np.where(shapes == BOX, rad * spread, rad)
    half = np.ceil(extent).astype(np.intp)  # (N,)
    patch = np.minimum(2 * half + 1, H)  # (N,) window side P
    fl = np.floor(pos)  # (T, N, 2)
    org = fl - half[:, None]  # (T, N, 2) unclamped window origin (col, row)
    visible = present & ((org > -(2 * half + 1)[:, None]) & (org < W)).all(axis=-1)  # (T, N)
    org = np.clip(org, 0, (H - patch)[:, None]).astype(np.intp)
    off = (org + 0.5 - pos).astype(np.float32)  # (T, N, 2) centre of the window's first pixel - centre
    colours_b = (256.0 * colours + 128.0).astype(np.float32)  # (N, 3)
    windows = {}
    for i in range(N):
        P = int(patch[i])
        if visible[:, i].all():
            tt, o, d0 = all_t, org[:, i], off[:, i]
        else:
            tt = np.flatnonzero(visible[:, i])
            if tt.size == 0:
                continue
            o, d0 = org[tt, i], off[tt, i]
        k = np.arange(P, dtype=np.float32)
        dx = d0[:, 0:1] + k  # (Tk, P) x offset of the window's pixel centres from the object centre
        dy = d0[:, 1:2] + k  # (Tk, P)
        if shapes[i] == BOX:
            alpha = _box_alpha(dx, dy, rad[i], angles[tt, i])
        else:
            alpha = _circle_alpha(dx, dy, rad[i])

        if P not in windows:
            windows[P] = (_windows(canvas, (P, P)), _windows(masks, (P, P)))
        rgb_win, mask_win = windows[P]  # (T, H-P+1, W-P+1, P, P[, 3])
        _composite(rgb_win, mask_win, (tt, o[:, 1], o[:, 0]), alpha, colours_b[i], i + 1)

    rgb = np.empty((T, H, W, 3), dtype=np.uint8)
    np.right_shift(canvas, 8, out=rgb, casting="unsafe")
    return rgb, masks


def render_frame(
    positions: np.ndarray,
    sizes: np.ndarray,
    colours: np.ndarray,
    *,
    arena_size: float,
    image_size: int = 64,
    shapes: np.ndarray | None = None,
    angles: np.ndarray | None = None,
    present: np.ndarray | None = None,
    springs: np.ndarray | None = None,
    spring_present: np.ndarray | None = None,
    spring_colour=(90, 90, 90),
    background=(0, 0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Render a single frame: positions (N, 2), angles (N,), present (N,), spring_present (S,).

    Returns rgb (H, W, 3) uint8 and mask (H, W) uint8; see :func:`render`.
    """
    positions = np.asarray(positions)
    if positions.ndim != 2 or positions.shape[-1] != 2:
        raise ValueError(f"positions must be (N, 2), got {positions.shape}")
    N = positions.shape[0]

    def _add_t(arr, name, spec_len):
        if arr is None:
            return None
        arr = np.asarray(arr)
        if arr.ndim != 1 or (spec_len is not None and arr.shape[0] != spec_len):
            raise ValueError(
                f"{name} must be 1-D of length {spec_len if spec_len is not None else 'S'}, got {arr.shape}"
            )
        return arr[None]

    S = None if springs is None or np.ndim(springs) == 0 else np.shape(springs)[0]
    rgb, masks = render(
        positions[None],
        sizes,
        colours,
        arena_size=arena_size,
        image_size=image_size,
        shapes=shapes,
        angles=_add_t(angles, "angles", N),
        present=_add_t(present, "present", N),
        springs=springs,
        spring_present=_add_t(spring_present, "spring_present", S),
        spring_colour=spring_colour,
        background=background,
    )
    return rgb[0], masks[0]


def _bench(episodes: int = 200, T: int = 50, N: int = 5, image_size: int = 64) -> None:
    rng = np.random.default_rng(0)
    arena = 10.0
    pos = rng.uniform(1, 9, size=(episodes, T, N, 2))
    vel = rng.normal(0, 0.05, size=(episodes, 1, N, 2))
    pos = pos[:, :1] + vel * np.arange(T)[None, :, None, None]
    sizes = rng.uniform(0.4, 0.9, size=N)
    colours = rng.integers(40, 256, size=(N, 3)).astype(np.uint8)
    shapes = np.arange(N) % 2
    angles = rng.uniform(0, np.pi, size=(episodes, T, N))
    springs = np.array([[0, 1], [1, 2], [3, 4]])
    for label, kw in (("no springs", {}), ("3 springs", {"springs": springs})):
        render(
            pos[0], sizes, colours, arena_size=arena, image_size=image_size, shapes=shapes, angles=angles[0], **kw
        )  # warm-up
        t0 = time.perf_counter()
        for e in range(episodes):
            render(
                pos[e], sizes, colours, arena_size=arena, image_size=image_size, shapes=shapes, angles=angles[e], **kw
            )
        dt = time.perf_counter() - t0
        print(
            f"{label:>10}: T={T} N={N} {image_size}x{image_size}: {episodes * T / dt:,.0f} frames/s "
            f"({dt / episodes * 1e3:.3f} ms/episode)"
        )


if __name__ == "__main__":
    _bench()
