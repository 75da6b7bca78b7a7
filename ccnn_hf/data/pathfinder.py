"""Pathfinder (Linsley et al. 2018; Long Range Arena, Tay et al. 2021), generated from scratch.

An image holds two long target "snakes" (chains of short dashes whose heading turns a little at
every step), a few short distractor snakes and two disc markers. Label 1 ("connected"): the markers
sit on the two ends of the same snake; label 0: one marker on each target snake. Strokes never touch:
each new dash must keep a clear margin from everything already drawn (its own predecessor aside).
The turn of each dash is drawn among the directions that are still free; a target snake with no free
direction backs up two dashes and regrows (after 20 back-ups both start over), and a distractor with
no free direction is redrawn elsewhere (at most 4 times, then skipped).

Geometry follows LRA's 32x32 settings, written here in units of 1/32 of the image side: dashes
2 long with gaps of 2, stroke width 1, margin 1, border 1, marker radius 1.5, target snakes starting
7 apart, turn angles drawn with density proportional to cos^2 (continuity 1, so at most 90 degrees),
``contour_length`` 14 dashes per target snake ("hard"; LRA's easy/intermediate use 6/9) and
``20 // (contour_length // 3)`` distractor snakes of ``contour_length // 3`` dashes. As in LRA's
generator the first target snake starts at least twice the seed distance away from the edges (in the
middle of the image). Unlike LRA's fixed PNG files, the geometry is stored in [0, 1] coordinates and
rasterised on a 4x supersampled canvas followed by a box filter, so the same samples can be rendered
at any resolution (``test_at(64)``); strokes keep their width relative to the image side.
"""

from __future__ import annotations

import math
import os
import random

import numpy as np
from tqdm.auto import tqdm

from .base import ArrayDataset, BuiltinDataset, Resolution, channel_stats, make_split, normalise
from .cache import cache_path, cached_arrays, split_keys

VERSION = "1"
LABEL_NAMES = ["disconnected", "connected"]

# Geometry in units of 1/32 of the image side (LRA's pixels at 32x32).
_UNIT = 32.0
_DASH = 2.0
_GAP = 2.0
_WIDTH = 1.0
_MARGIN = 1.0
_BORDER = 1.0
_MARKER_RADIUS = 1.5
_SEED_DISTANCE = 7.0
_CONTINUITY = 1.0
_TURNS = 16  # candidate heading changes per dash; a snake is stuck when none is free
_BACKTRACK = 2  # dashes removed when a target snake is stuck ...
_MAX_BACKTRACKS = 20  # ... at most this often before both target snakes start over
_DISTRACTOR_TRIES = 4  # restarts per distractor snake before it is skipped

_CELLS = 4  # occupancy-grid cells per unit
_GRID = int(_UNIT * _CELLS)
_CLEARANCE = _WIDTH + _MARGIN  # minimum distance between the centre lines of two dashes
_SUPERSAMPLE = 4
_TURN_STEP = math.pi / _CONTINUITY / _TURNS
_TURN_ANGLES = [(k + 0.5) * _TURN_STEP - math.pi / (2 * _CONTINUITY) for k in range(_TURNS)]
_TURN_INV_WEIGHTS = [1 / math.cos(_CONTINUITY * a) ** 2 for a in _TURN_ANGLES]


Dash = tuple[float, float, float, float]  # x0, y0, x1, y1


class _Canvas:
    """Occupancy grid of one image plus the newest ("pending") dash of each growing snake.

    Each grid cell counts the committed dashes whose clearance zone covers it, so a dash can be
    removed again exactly. A pending dash is checked exactly instead of through the grid and only
    committed once its snake grows further: a new dash is thus tested against everything except its
    own predecessor.
    """

    def __init__(self) -> None:
        self.grid = np.zeros((_GRID, _GRID), dtype=np.int16)
        self.pending: dict[int, Dash] = {}
        centres = (np.arange(_GRID) + 0.5) / _CELLS
        self.cx, self.cy = centres[None, :], centres[:, None]

    def is_free(self, dash: Dash, snake: int) -> bool:
        """True if the dash stays inside the border and clear of every dash but ``snake``'s pending one."""
        x0, y0, x1, y1 = dash
        lo, hi = _BORDER + _WIDTH / 2, _UNIT - _BORDER - _WIDTH / 2
        others = [d for key, d in self.pending.items() if key != snake]
        # Points 0.5 apart (finer than any clearance zone), far end first: it collides most often.
        for t in (1.0, 0.5, 0.75, 0.25, 0.0):
            x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            if not (lo <= x <= hi and lo <= y <= hi) or self.grid[int(y * _CELLS), int(x * _CELLS)]:
                return False
            for d in others:
                if _point_segment_distance(x, y, d) < _CLEARANCE:
                    return False
        return True

    def mark(self, dash: Dash, radius: float, count: int = 1) -> None:
        """Add ``count`` to every cell within ``radius`` of the segment."""
        x0, y0, x1, y1 = dash
        row0, col0 = (max(int((min(v0, v1) - radius) * _CELLS), 0) for v0, v1 in ((y0, y1), (x0, x1)))
        row1, col1 = (min(int((max(v0, v1) + radius) * _CELLS) + 1, _GRID) for v0, v1 in ((y0, y1), (x0, x1)))
        dx, dy = x1 - x0, y1 - y0
        px, py = self.cx[:, col0:col1] - x0, self.cy[row0:row1] - y0
        t = np.clip((px * dx + py * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
        self.grid[row0:row1, col0:col1] += count * ((px - t * dx) ** 2 + (py - t * dy) ** 2 <= radius**2)

    def push(self, dash: Dash, snake: int) -> None:
        """Make ``dash`` the pending dash of ``snake``, committing the one it replaces."""
        if snake in self.pending:
            self.mark(self.pending[snake], _CLEARANCE)
        self.pending[snake] = dash

    def pop(self, snake: int, previous: Dash | None) -> None:
        """Drop ``snake``'s pending dash; its committed ``previous`` dash (if any) becomes pending again."""
        del self.pending[snake]
        if previous is not None:
            self.mark(previous, _CLEARANCE, count=-1)
            self.pending[snake] = previous

    def commit(self) -> None:
        """Commit every pending dash (their snakes are finished)."""
        for dash in self.pending.values():
            self.mark(dash, _CLEARANCE)
        self.pending.clear()


def _point_segment_distance(x: float, y: float, dash: Dash) -> float:
    x0, y0, x1, y1 = dash
    dx, dy = x1 - x0, y1 - y0
    t = min(max(((x - x0) * dx + (y - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0), 1.0)
    return math.hypot(x - x0 - t * dx, y - y0 - t * dy)


def _turn_order(rnd: random.Random) -> list[float]:
    """Candidate heading changes, in the order to try them.

    ``_TURNS`` evenly spaced angles (shifted together by a random jitter) inside the allowed range,
    ordered by weighted sampling without replacement, weights cos^2(continuity * angle) taken at the
    un-jittered bin centres. Taking the first free one samples the turn from that density restricted
    to the free directions.
    """
    jitter = (rnd.random() - 0.5) * _TURN_STEP
    keys = [rnd.random() ** inv_weight for inv_weight in _TURN_INV_WEIGHTS]
    return [a + jitter for _, a in sorted(zip(keys, _TURN_ANGLES), reverse=True)]


class _Snake:
    """A chain of dashes growing from its origin tip; ``key`` identifies it on the canvas."""

    def __init__(self, canvas: _Canvas, key: int, x: float, y: float, heading: float) -> None:
        self.canvas, self.key = canvas, key
        self.dashes: list[Dash] = []
        self.headings: list[float] = []
        self.origin = (x, y)
        self.ok = self._place(x, y, heading)

    def _place(self, x: float, y: float, heading: float) -> bool:
        dash = (x, y, x + _DASH * math.cos(heading), y + _DASH * math.sin(heading))
        if not self.canvas.is_free(dash, self.key):
            return False
        self.canvas.push(dash, self.key)
        self.dashes.append(dash)
        self.headings.append(heading)
        return True

    def extend(self, rnd: random.Random) -> bool:
        """Add one dash after a turn at the middle of the gap; False if no heading fits."""
        _, _, x, y = self.dashes[-1]
        heading = self.headings[-1]
        px, py = x + _GAP / 2 * math.cos(heading), y + _GAP / 2 * math.sin(heading)
        for turn in _turn_order(rnd):
            new = heading + turn
            if self._place(px + _GAP / 2 * math.cos(new), py + _GAP / 2 * math.sin(new), new):
                return True
        return False

    def retract(self) -> None:
        """Remove the newest dash."""
        self.dashes.pop()
        self.headings.pop()
        self.canvas.pop(self.key, self.dashes[-1] if self.dashes else None)

    @property
    def terminal(self) -> tuple[float, float]:
        return self.dashes[-1][2], self.dashes[-1][3]


def _min_distance(point: tuple[float, float], dashes: list[Dash]) -> float:
    """Distance from a point to the nearest of the given dash centre lines."""
    seg = np.asarray(dashes)
    d = seg[:, 2:] - seg[:, :2]
    p = np.asarray(point) - seg[:, :2]
    t = np.clip((p * d).sum(1) / (d * d).sum(1), 0.0, 1.0)
    return float(np.sqrt(((p - t[:, None] * d) ** 2).sum(1)).min())


def _target_pair(rnd: random.Random, canvas: _Canvas, length: int) -> list[_Snake] | None:
    """Grow the two target snakes from origins SEED_DISTANCE apart; None on a dead end.

    The shorter snake grows next. When it is stuck, its last ``_BACKTRACK`` dashes are removed and
    regrown, at most ``_MAX_BACKTRACKS`` times per pair.
    """
    lo, hi = 2 * _SEED_DISTANCE, _UNIT - 2 * _SEED_DISTANCE
    x, y = lo + rnd.random() * (hi - lo), lo + rnd.random() * (hi - lo)
    angle = 2 * math.pi * rnd.random()
    origins = [(x, y), (x + _SEED_DISTANCE * math.cos(angle), y + _SEED_DISTANCE * math.sin(angle))]
    snakes = []
    for key, (ox, oy) in enumerate(origins):
        snakes.append(_Snake(canvas, key, ox, oy, 2 * math.pi * rnd.random()))
        if not snakes[-1].ok:
            return None
    backtracks = 0
    while min(len(s.dashes) for s in snakes) < length:
        snake = min(snakes, key=lambda s: len(s.dashes))
        if not snake.extend(rnd):
            backtracks += 1
            if backtracks > _MAX_BACKTRACKS or len(snake.dashes) <= _BACKTRACK:
                return None
            for _ in range(_BACKTRACK):
                snake.retract()
    canvas.commit()
    return snakes


def _sample_geometry(rnd: random.Random, label: int, length: int) -> tuple[list[Dash], list[tuple[float, float]]]:
    """Dashes and the two marker centres of one image, in units of 1/32 of the side."""
    while True:
        canvas = _Canvas()
        snakes = _target_pair(rnd, canvas, length)
        if snakes is None:
            continue
        first = rnd.randrange(2)
        owners = (first, first if label == 1 else 1 - first)
        markers = [snakes[owners[0]].origin, snakes[owners[1]].terminal]
        # A marker must keep clear of the target snake it does not belong to.
        limit = _MARKER_RADIUS + _WIDTH / 2 + _MARGIN / 2
        if all(_min_distance(m, snakes[1 - o].dashes) >= limit for m, o in zip(markers, owners)):
            break
    for mx, my in markers:
        canvas.mark((mx, my, mx, my), _MARKER_RADIUS + _WIDTH / 2 + _MARGIN)
    dashes = [d for s in snakes for d in s.dashes]
    distractor_length = max(length // 3, 1)
    lo, hi = _BORDER, _UNIT - _BORDER
    for _ in range(20 // distractor_length):
        for _ in range(_DISTRACTOR_TRIES):
            x, y = lo + rnd.random() * (hi - lo), lo + rnd.random() * (hi - lo)
            snake = _Snake(canvas, 2, x, y, 2 * math.pi * rnd.random())
            if snake.ok and all(snake.extend(rnd) for _ in range(distractor_length - 1)):
                canvas.commit()
                dashes.extend(snake.dashes)
                break
            while snake.dashes:
                snake.retract()
    return dashes, markers


def _stamp(canvas: np.ndarray, image: np.ndarray, seg: np.ndarray, half_width: float, round_caps: bool) -> None:
    """Set to 1 every sample of ``canvas`` ``[B, S, S]`` covered by a thick segment.

    ``seg`` holds ``[x0, y0, x1, y1]`` rows in sample units and ``image`` their image index in the
    batch. Flat caps draw dashes; round caps on zero-length segments draw discs.
    """
    size = canvas.shape[-1]
    patch = math.ceil(np.abs(seg[:, 2:] - seg[:, :2]).max(initial=0.0) + 2 * half_width) + 2
    origin = np.floor(np.minimum(seg[:, :2], seg[:, 2:]) - half_width).astype(np.int64)  # [M, 2] (x, y)
    offs = np.arange(patch)
    xs = origin[:, 0, None, None] + offs[None, None, :]  # [M, 1, P]
    ys = origin[:, 1, None, None] + offs[None, :, None]  # [M, P, 1]
    d = (seg[:, 2:] - seg[:, :2])[:, :, None, None]
    length = np.sqrt((d**2).sum(1))  # [M, 1, 1]
    px, py = xs + 0.5 - seg[:, 0, None, None], ys + 0.5 - seg[:, 1, None, None]
    along = (px * d[:, 0] + py * d[:, 1]) / np.maximum(length, 1e-12)  # distance along the segment
    if round_caps:
        clamped = np.clip(along, 0.0, length)
        inside = px**2 + py**2 - 2 * along * clamped + clamped**2 <= half_width**2
    else:
        across_sq = px**2 + py**2 - along**2
        inside = (along >= 0) & (along <= length) & (across_sq <= half_width**2)
    inside &= (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
    flat = (image[:, None, None] * size + ys) * size + xs
    canvas.reshape(-1)[flat[inside]] = 1


def render(dashes: np.ndarray, offsets: np.ndarray, markers: np.ndarray, resolution: int) -> np.ndarray:
    """Rasterise stored geometry (``[0, 1]`` coordinates) to uint8 images ``[N, resolution, resolution]``."""
    n = len(markers)
    size = resolution * _SUPERSAMPLE  # supersampled canvas side; also the scale from [0, 1] coordinates
    batch = max(1, 2**18 // resolution**2)  # images per vectorised pass, bounding the memory used
    out = np.empty((n, resolution, resolution), dtype=np.uint8)
    for start in tqdm(range(0, n, batch), desc=f"pathfinder render {resolution}px", delay=1.0, leave=False):
        stop = min(start + batch, n)
        canvas = np.zeros((stop - start, size, size), dtype=np.uint8)
        lo, hi = offsets[start], offsets[stop]
        image = np.repeat(np.arange(stop - start), np.diff(offsets[start : stop + 1]))
        _stamp(canvas, image, dashes[lo:hi] * size, _WIDTH / _UNIT * size / 2, round_caps=False)
        centres = markers[start:stop].reshape(-1, 2) * size
        _stamp(
            canvas,
            np.repeat(np.arange(stop - start), 2),
            np.concatenate([centres, centres], 1),
            _MARKER_RADIUS / _UNIT * size,
            round_caps=True,
        )
        cover = canvas.reshape(stop - start, resolution, _SUPERSAMPLE, resolution, _SUPERSAMPLE).mean((2, 4))
        out[start:stop] = np.round(cover * 255).astype(np.uint8)
    return out


def generate_geometry(n: int, seed: int, contour_length: int) -> dict[str, np.ndarray]:
    """Balanced labels and the geometry of ``n`` images: dashes, per-image dash offsets, markers."""
    rnd = random.Random(seed)
    labels = np.random.default_rng(seed).permutation(np.arange(n) % 2)
    dashes, counts, markers = [], [], []
    for label in tqdm(labels, desc="pathfinder geometry", delay=1.0, leave=False):
        d, m = _sample_geometry(rnd, int(label), contour_length)
        dashes.extend(d)
        counts.append(len(d))
        markers.append(m)
    return {
        "labels": labels.astype(np.int64),
        "dashes": np.asarray(dashes, dtype=np.float32) / _UNIT,
        "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "markers": np.asarray(markers, dtype=np.float32) / _UNIT,
    }


def _build(seed: int, n_train: int, n_test: int, resolution: int, contour_length: int) -> dict[str, np.ndarray]:
    arrays = {}
    for split, n, split_seed in (("train", n_train, 2 * seed), ("test", n_test, 2 * seed + 1)):
        geometry = generate_geometry(n, split_seed, contour_length)
        geometry["images"] = render(geometry["dashes"], geometry["offsets"], geometry["markers"], resolution)
        arrays.update({f"{split}_{key}": value for key, value in geometry.items()})
    return arrays


def load_pathfinder(
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    n_train: int = 4000,
    n_test: int = 1000,
    resolution: int = 32,
    contour_length: int = 14,
) -> BuiltinDataset:
    """``pathfinder``: ``[N, 1, resolution, resolution]`` images, balanced binary labels (1 = connected)."""
    options = {"n_train": n_train, "n_test": n_test, "resolution": resolution, "contour_length": contour_length}
    arrays = cached_arrays(
        cache_path(cache_dir, "pathfinder", VERSION, options, seed),
        lambda: _build(seed, n_train, n_test, resolution, contour_length),
        split_keys("labels", "dashes", "offsets", "markers", "images"),
    )
    train_raw = arrays["train_images"][:, None] / np.float32(255)
    mean, std = channel_stats(train_raw)

    def render_test(target: Resolution | None, _sampling_rate: float | None) -> ArrayDataset:
        if target[0] != target[1]:
            raise ValueError(f"pathfinder renders square images only, got {target}")
        images = render(arrays["test_dashes"], arrays["test_offsets"], arrays["test_markers"], target[0])
        return make_split(normalise(images[:, None] / np.float32(255), mean, std), arrays["test_labels"])

    return BuiltinDataset(
        name="pathfinder",
        modality="image",
        data_dim=2,
        num_classes=2,
        label_names=LABEL_NAMES,
        in_channels=1,
        base_resolution=(resolution, resolution),
        sampling_rate=None,
        train=make_split(normalise(train_raw, mean, std), arrays["train_labels"]),
        test=make_split(normalise(arrays["test_images"][:, None] / np.float32(255), mean, std), arrays["test_labels"]),
        mean=mean,
        std=std,
        render_test=render_test,
    )
