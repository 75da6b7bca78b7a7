"""Padding, missing values and irregular timestamps: what the masks mean and how a layer uses them.

Three optional forward arguments of :class:`ccnn_hf.CCNN` (and of every transformers head):

``attention_mask`` ``[B, *spatial]`` (1 = real, 0 = padding; the transformers convention)
    A padded position lies *outside* the sample, exactly like the zeros a convolution sees
    beyond the ends of an unpadded input: its value is replaced by zero before every
    convolution and never reconstructed, BatchNorm batch statistics (train mode) and the
    global pooling skip it, and returned features are zero there. A padded sample therefore
    gives the logits it gives alone in a batch of one (up to float roundoff between conv
    paths), whichever side it is padded on, and whatever the padded length: a model that reads
    lengths as duration keeps the base step, and one that reads them as field of view reads each
    row at its real size (the extent of its real positions, :func:`real_size_scales`; rows of
    different sizes run through their own kernels), unless ``resolution=`` / ``sampling_rate=``
    set one step for the batch.
    A 0 between 1s is a hole of zeros, not a missing value: use ``observed_mask`` for those.
``observed_mask`` ``[B, *spatial]`` or ``[B, C, *spatial]`` (1 = observed)
    A position that exists but whose value is missing (per channel or for all channels). Its
    value never enters any computation (``torch.where``, so NaN or garbage there gives
    bit-identical outputs). With ``nan_is_missing=True`` (a model setting) NaN input values are
    unobserved as well. A channel without any observation in a row reads as zero.
``timestamps`` ``[B, L]`` (1D only; float, in samples of the base rate)
    When each observation was taken; strictly increasing over a row's real positions. The
    observations are binned onto a regular grid of step ``1 / r`` base samples starting at each
    row's first timestamp, ``r`` = the input scale that ``sampling_rate=`` / ``resolution=``
    give (default 1: the base grid). A bin with several observations holds their mean; empty
    bins are unobserved; bins after a row's last observation are padding. The network then
    runs on that grid with the kernels sampled at step ``1 / r`` (the continuous kernel at the
    actual time differences, rounded to the grid), through the same direct or FFT paths.
    Timestamps ``0, 1, ..., L - 1`` (any ``L``) reproduce the regular series at the base step
    (a duration model's plain call; ``resolution=`` the base size for field of view). Cost: the grid has
    ``r x span + 1`` points per row (``span`` = last - first timestamp in base samples), so
    time and memory grow with the span and ``r``, not with the number of observations; a
    larger ``r`` keeps more timing precision (rounding error <= ``1 / (2 r)`` base samples).
    Reference-mode models (fixed kernel grid) always bin at ``r = 1``.

Mask-aware convolution (``missing_values="normalized"``, the default). Normalised convolution
(Knutsson & Westin, 1993) divides a filter's response to the observed points by the filter's
response to the observation mask. That needs a non-negative filter (an *applicability*):
the continuous kernels are signed, so their weighted count of observed points can vanish or
change sign, and even ``|k|`` as the count leaves zero-mean (derivative-like) kernels biased on
a locally constant signal. Each layer therefore splits the job in two:

1. Reconstruction by normalised convolution with a fixed positive applicability
   ``a(d) = (1 + |d|^2)^(-(D + 5) / 2)``, ``d`` the offset in base samples (so the same at any
   input scale), within :data:`APPLICABILITY_RADIUS` base samples (one-sided, past and present
   only, for causal models). At an unobserved position the signal is estimated by the local
   fit weighted by ``a x c`` (``c`` the certainty, 1 = observed): on centred axes a linear
   fit (basis ``1, d_1 .. d_D``; its intercept is the estimate, close to linear
   interpolation between the nearest observations) wherever it is well posed, i.e. the
   observations surround the position (``det(G) > WELL_POSED x prod(diag G)``, ``G`` the
   weighted Gram matrix); elsewhere, and always for causal models (no extrapolated trends), the
   constant fit, i.e. normalised averaging ``(a * (c x)) / (a * c)``. Observed values are kept
   exactly. A position with no observation within the radius stays undefined (zero,
   certainty 0). These mask convolutions run on the direct path, which gives exact zeros
   where nothing is observed.
2. The layer's own signed continuous kernel convolves the completed signal, through the
   usual direct or FFT path.

The certainty carried to the next layer is the ``|k|``-weighted fraction (``|k|`` averaged
over channels) of the layer's completed input that rests on data, reconstructed positions
counting with their applicability-weighted observed fraction ``(a * c) / (a * 1)``:
``c_out = (|k| * c_hat) / (|k| * 1)``, floored at :data:`MIN_SUPPORT` where the output is
defined, i.e. where at least that fraction of ``|k|`` falls on defined inputs (and 0
elsewhere). Defined values are never altered by later layers; the
certainty weights the reconstruction of positions that are still undefined (a gap wider than
the applicability), which fills in from layer to layer. Once every real position is defined
(usually after the first layer), the next layers run the plain convolution and only skip the
padding. Cost, per layer that still has missing values: ``(D + 1)`` depthwise correlations
of the input and ``(D + 1)(D + 2) / 2 + 1`` of the mask with the applicability (``(2 R r + 1)^D``
taps, direct path), ``D + 1`` small determinants per position and channel, and two
single-channel correlations with ``|k|``; in practice the first layer only, whose input has
few channels.

``missing_values="zero_fill"`` is the usual baseline: unobserved values are set to zero and
the fraction of observed channels is appended to the input as one extra channel (1 where
fully observed, 0 on padding), and the network is otherwise the plain one.

BatchNorm in train mode with an ``attention_mask``: the batch mean and (biased) variance are
taken over the real positions only and normalise every position; the running statistics are
updated from them as PyTorch does (unbiased variance, ``momentum``). In eval mode BatchNorm is
a per-channel affine map and needs no mask.

With none of the three arguments given (and no NaN when ``nan_is_missing``), the model runs
exactly the computation it runs without this module; so it does when the masks mark every
position real and observed. FX-traced graphs hold that mask-free computation and refuse masks
at run time (:func:`ccnn_hf.ccnn.refuse_masks_in_graph`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .fftconv import choose_conv_path, depthwise_conv_direct, depthwise_conv_fft

__all__ = [
    "APPLICABILITY_RADIUS",
    "MIN_SUPPORT",
    "WELL_POSED",
    "MAX_GRID_POINTS",
    "MaskState",
    "RowScales",
    "real_size_scales",
    "prepare_masks",
    "bin_timestamps",
    "applicability",
    "complete",
    "masked_batch_norm",
    "masked_pool",
    "zero_fill_input",
]

APPLICABILITY_RADIUS = {1: 16.0, 2: 4.0, 3: 2.0}  # base samples, per number of spatial axes
MIN_SUPPORT = 1e-5  # |k|-weighted defined fraction below which a layer output is undefined; certainty floor
WELL_POSED = 0.1  # local linear fit used where det(Gram) > this x the product of its diagonal
MAX_GRID_POINTS = 2**24  # timestamps: largest batch x grid length binned onto


@dataclass(frozen=True)
class RowScales:
    """Input scales per row of a padded batch read as field of view (each row at its real size).

    Attributes:
        groups: ``(scale, rows)`` pairs: the rows (indices ``[n]`` on the input's device) that share
            one scale per axis.
    """

    groups: tuple[tuple[tuple[float, ...], torch.Tensor], ...]


def real_size_scales(valid: torch.Tensor, base_resolution: Sequence[int]) -> tuple[float, ...] | RowScales:
    """The scale of every row of ``valid [B, 1, *S]`` read as field of view: per axis, the extent of
    its real positions (first to last, holes included) over the base size. One tuple when every row
    shares it, else :class:`RowScales` (one host read)."""
    extents = []
    for axis in range(2, valid.ndim):
        n = valid.shape[axis]
        present = valid.any(dim=tuple(d for d in range(1, valid.ndim) if d != axis))  # [B, n]
        index = torch.arange(n, device=valid.device)
        first = torch.where(present, index, n).amin(1)
        last = torch.where(present, index, -1).amax(1)
        extents.append(last - first + 1)
    unique, inverse = torch.unique(torch.stack(extents, 1).cpu(), dim=0, return_inverse=True)
    scales = [tuple(n / b for n, b in zip(row, base_resolution)) for row in unique.tolist()]
    if len(scales) == 1:
        return scales[0]
    rows = [torch.nonzero(inverse == i).flatten().to(valid.device) for i in range(len(scales))]
    return RowScales(tuple(zip(scales, rows)))


@dataclass
class MaskState:
    """What the layers know about their input positions.

    Attributes:
        valid: ``[B, 1, *spatial]`` bool, real positions (None: all are real).
        certainty: ``[B, 1 or C, *spatial]`` float in [0, 1], 0 = unobserved or undefined
            (None: every real position holds a defined value).
    """

    valid: torch.Tensor | None = None
    certainty: torch.Tensor | None = None

    @property
    def active(self) -> bool:
        return self.valid is not None or self.certainty is not None


# -- masks given to a forward call ------------------------------------------------------------


def _binary(name: str, mask: object, shapes: Sequence[tuple[int, ...]], device: torch.device) -> torch.Tensor:
    """A 0/1 mask of one of ``shapes`` as a bool tensor on ``device``, or a ValueError/TypeError."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) not in shapes:
        wanted = " or ".join(str(list(s)) for s in shapes)
        raise ValueError(f"{name} must have shape {wanted} for this input, got {list(mask.shape)}")
    if mask.is_complex():
        raise TypeError(f"{name} must hold 0 and 1 (bool, integer or float), got dtype {mask.dtype}")
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(
                f"{name} must hold only 0 and 1 (1 = {'real' if name == 'attention_mask' else 'observed'}),"
                f" got other values"
            )
        mask = mask != 0
    return mask.to(device)


def _rows(flags: torch.Tensor) -> str:
    rows = torch.nonzero(flags).flatten().tolist()
    return ", ".join(str(r) for r in rows[:8]) + (" ..." if len(rows) > 8 else "")


def prepare_masks(
    x: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    observed_mask: torch.Tensor | None = None,
    timestamps: torch.Tensor | None = None,
    *,
    nan_is_missing: bool = False,
    check_finite: bool = False,
    grid_rate: float = 1.0,
) -> tuple[torch.Tensor, MaskState]:
    """Check the masks of a forward call and return the input to run and its :class:`MaskState`.

    ``x [B, C, *spatial]`` comes back with zeros at padded and unobserved positions (binned onto
    the timestamp grid when ``timestamps`` are given, at ``grid_rate`` bins per base sample).
    Raises a ValueError naming the problem for wrong shapes, values other than 0/1, rows without
    any real or observed position, and timestamps that are not finite or not strictly increasing.
    """
    batch, channels, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:])
    valid = None if attention_mask is None else _binary("attention_mask", attention_mask, [(batch, *spatial)], x.device)
    observed = None
    if observed_mask is not None:
        observed = _binary("observed_mask", observed_mask, [(batch, *spatial), (batch, channels, *spatial)], x.device)
        observed = observed.unsqueeze(1) if observed.ndim == x.ndim - 1 else observed
    if nan_is_missing:
        nan = torch.isnan(x)
        if bool(nan.any()):
            observed = ~nan if observed is None else observed & ~nan
    if valid is not None:
        valid = valid.unsqueeze(1)
        empty = ~valid.flatten(1).any(1)
        if bool(empty.any()):
            raise ValueError(f"attention_mask marks no real position in row(s) {_rows(empty)}")
        observed = valid if observed is None else observed & valid
    if observed is not None:
        empty = ~observed.flatten(1).any(1)
        if bool(empty.any()):
            raise ValueError(
                f"row(s) {_rows(empty)} have no observed value at a real position "
                "(observed_mask / attention_mask / NaN): nothing to compute from"
            )
        x = torch.where(observed, x, torch.zeros((), dtype=x.dtype, device=x.device))
    if check_finite and not bool(torch.isfinite(x).all()):
        raise ValueError("input contains NaN or infinite values at observed positions")
    if timestamps is not None:
        x, valid, observed = bin_timestamps(x, valid, observed, timestamps, grid_rate)
    if valid is not None and bool(valid.all()):
        valid = None
    if observed is not None:
        full = observed.all(1, keepdim=True) if valid is None else (observed | ~valid).all(1, keepdim=True)
        if bool(full.all()):
            observed = None
    return x, MaskState(valid, None if observed is None else observed.to(torch.float32))


def bin_timestamps(
    x: torch.Tensor,
    valid: torch.Tensor | None,
    observed: torch.Tensor | None,
    timestamps: torch.Tensor,
    rate: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bin ``x [B, C, L]`` observed at ``timestamps [B, L]`` onto a grid of ``rate`` bins per base
    sample: ``(values [B, C, G], valid [B, 1, G], observed [B, 1 or C, G])`` (see the module
    docstring). ``valid`` / ``observed`` (``[B, 1, L]`` / ``[B, 1 or C, L]`` bool, None = all)
    select the real positions and the observed values; ``x`` is zero elsewhere."""
    if x.ndim != 3:
        raise ValueError(f"timestamps are defined for 1D inputs [B, C, L] only, got an input of shape {list(x.shape)}")
    batch, channels, length = x.shape
    if not isinstance(timestamps, torch.Tensor):
        raise TypeError(f"timestamps must be a torch.Tensor, got {type(timestamps).__name__}")
    if tuple(timestamps.shape) != (batch, length):
        raise ValueError(
            f"timestamps must have shape [{batch}, {length}] (one per input position), got {list(timestamps.shape)}"
        )
    if not timestamps.is_floating_point():
        timestamps = timestamps.double()
    real = torch.ones(batch, length, dtype=torch.bool, device=x.device) if valid is None else valid[:, 0]
    t = timestamps.to(device=x.device, dtype=torch.float64)
    bad = real & ~torch.isfinite(t)
    if bool(bad.any()):
        raise ValueError(f"timestamps must be finite at real positions; row(s) {_rows(bad.any(1))} hold NaN or inf")
    neg_inf = torch.tensor(-math.inf, dtype=t.dtype, device=t.device)
    previous = torch.cummax(torch.where(real, t, neg_inf), dim=1).values
    previous = torch.cat([torch.full_like(previous[:, :1], -math.inf), previous[:, :-1]], dim=1)
    bad = real & (t <= previous)
    if bool(bad.any()):
        row, col = (int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(
            f"timestamps must increase strictly over each row's real positions; row {row} has "
            f"{t[row, col].item():g} at position {col} after {previous[row, col].item():g} "
            f"(rows with this problem: {_rows(bad.any(1))})"
        )
    first = torch.where(real, t, torch.tensor(math.inf, dtype=t.dtype, device=t.device)).amin(1, keepdim=True)
    index = torch.where(real, torch.round((t - first) * rate), torch.zeros_like(t)).long()  # [B, L]
    last = index.amax(1)
    size = int(last.max()) + 1
    if batch * size > MAX_GRID_POINTS:
        raise ValueError(
            f"timestamps span {int(last.max()) / rate:g} base samples; at {rate:g} bins per sample that is "
            f"{size} grid points per row, over the limit of {MAX_GRID_POINTS // batch} for a batch of "
            f"{batch} (shift or split long series, or use a lower sampling_rate=/resolution=)"
        )
    taken = real.unsqueeze(1) if observed is None else observed & real.unsqueeze(1)  # [B, 1 or C, L]
    values = torch.where(taken, x, torch.zeros((), dtype=x.dtype, device=x.device))
    sums = x.new_zeros(batch, channels, size).scatter_add_(2, index.unsqueeze(1).expand(-1, channels, -1), values)
    counts = x.new_zeros(batch, taken.shape[1], size).scatter_add_(
        2, index.unsqueeze(1).expand(-1, taken.shape[1], -1), taken.to(x.dtype)
    )
    grid_observed = counts > 0
    values = torch.where(grid_observed, sums / counts.clamp_min(1), torch.zeros((), dtype=x.dtype, device=x.device))
    grid_valid = (torch.arange(size, device=x.device) <= last.unsqueeze(1)).unsqueeze(1)
    return values, grid_valid, grid_observed & grid_valid


# -- the mask-aware layer ---------------------------------------------------------------------


def applicability(
    scale: Sequence[float], causal: bool, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The positive reconstruction weights ``[1, *A]`` for an input at ``scale`` x the base rate,
    ``(1 + |d|^2)^(-(D + 5) / 2)``, and the offsets ``d [D, *A]`` of their taps in base samples,
    within :data:`APPLICABILITY_RADIUS` (past and present only when ``causal``). Taps line up as
    in :func:`ccnn_hf.fftconv.depthwise_conv_direct`."""
    data_dim = len(scale)
    radius = APPLICABILITY_RADIUS[data_dim]
    axes = []
    for s in scale:
        reach = int(math.floor(radius * float(s) + 1e-9))
        axes.append(torch.arange(-reach, 1 if causal else reach + 1, dtype=torch.float32) / float(s))
    offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    weights = torch.pow(1.0 + offsets.pow(2).sum(0), -(data_dim + 5) / 2.0).unsqueeze(0)
    return weights.to(device), offsets.to(device)


def _moments(x: torch.Tensor, kernels: torch.Tensor, causal: bool) -> torch.Tensor:
    """Correlations of every channel of ``x [B, C, *S]`` with each of ``kernels [n, *A]``:
    ``[B, C, n, *S]``, float32, on the direct path (non-negative kernels on non-negative masks
    then give exact zeros where nothing is observed)."""
    count = kernels.shape[0]
    weight = kernels.repeat(x.shape[1], *(1,) * (kernels.ndim - 1))
    out = depthwise_conv_direct(x.float().repeat_interleave(count, dim=1), weight, None, causal)
    return out.view(x.shape[0], x.shape[1], count, *x.shape[2:])


def _correlate(x: torch.Tensor, kernel: torch.Tensor, causal: bool) -> torch.Tensor:
    """Depthwise correlation of ``x [B, C, *S]`` with ``kernel [1, *K]`` (shared by every channel),
    float32, through the cheaper path."""
    kernel = kernel.expand(x.shape[1], *kernel.shape[1:])
    if choose_conv_path(x.shape, kernel.shape, causal) == "fft":
        return depthwise_conv_fft(x.float(), kernel, None, causal)
    return depthwise_conv_direct(x.float(), kernel, None, causal)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor, defined: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator`` where ``defined``, else 0 (no division by zero in either branch,
    so no NaN gradient either)."""
    safe = torch.where(defined, denominator, torch.ones_like(denominator))
    return torch.where(defined, numerator / safe, torch.zeros_like(numerator))


def _reconstruct(
    values: torch.Tensor, certainty: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor, causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised-convolution estimate of the signal at every position from ``values`` (``c x``,
    zero where unobserved) and ``certainty`` ``c``: the intercept of the local linear fit
    weighted by ``weights x c`` where that fit is well posed (centred axes, observations on
    more than one side), else the weighted mean. Returns ``(estimate, support = weights * c)``."""
    linear = not causal
    basis = [torch.ones_like(offsets[0])] + (list(offsets) if linear else [])
    count = len(basis)
    moments = _moments(values, torch.stack([weights[0] * b for b in basis]), causal)  # [B, C, n, *S]
    pairs = [(i, j) for i in range(count) for j in range(i, count)]
    gram_pairs = _moments(certainty, torch.stack([weights[0] * basis[i] * basis[j] for i, j in pairs]), causal)
    support = gram_pairs[:, :, 0]
    mean = _ratio(moments[:, :, 0], support, support > 0)
    if not linear:
        return mean, support
    gram = gram_pairs.new_empty(*gram_pairs.shape[:2], *gram_pairs.shape[3:], count, count)
    for k, (i, j) in enumerate(pairs):
        gram[..., i, j] = gram[..., j, i] = gram_pairs[:, :, k]
    keep = [list(range(0, i)) + list(range(i + 1, count)) for i in range(count)]
    cofactors = torch.stack([(-1) ** i * torch.linalg.det(gram[..., keep[i], 1:]) for i in range(count)], dim=-1)
    determinant = (gram[..., :, 0] * cofactors).sum(-1)
    diagonal = torch.diagonal(gram, dim1=-2, dim2=-1).prod(-1)
    well_posed = (support > 0) & (determinant > WELL_POSED * diagonal)
    intercept = _ratio((torch.movedim(moments, 2, -1) * cofactors).sum(-1), determinant, well_posed)
    return torch.where(well_posed, intercept, mean), support


def complete(
    x: torch.Tensor, kernel: torch.Tensor, state: MaskState, scale: Sequence[float], causal: bool
) -> tuple[torch.Tensor, MaskState]:
    """Reconstruct the unobserved positions of a layer input ``x [B, C, *S]`` by normalised
    convolution, and the certainty of the layer's output (see the module docstring).

    ``kernel [C, *K]``: the layer's depthwise kernel at this ``scale`` (its ``|k|`` weighs the
    output certainty). Returns the completed input (zero on padding; observed values kept
    exactly) and the state for the next layer (certainty None once every real position is defined).
    """
    certainty, valid = state.certainty, state.valid
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    real = torch.ones_like(certainty[:, :1]) if valid is None else valid.to(certainty.dtype)
    known = certainty > 0
    weights, offsets = applicability(scale, causal, x.device)
    values = torch.where(known, x, zero).float() * certainty
    estimate, support = _reconstruct(values, certainty, weights, offsets, causal)
    reachable = _moments(real, weights, causal)[:, :, 0]
    fraction = _ratio(support, reachable, support > 0)
    completed = torch.where(known, x, estimate.to(x.dtype))
    filled = torch.where(known, certainty, fraction).mean(1, keepdim=True)
    defined = (known | (support > 0)).float().mean(1, keepdim=True)
    if valid is not None:
        completed = torch.where(valid, completed, zero)
        filled, defined = filled * real, defined * real
    magnitude = kernel.detach().abs().float().mean(0, keepdim=True)
    total = _correlate(real, magnitude, causal)
    resting = _correlate(defined, magnitude, causal) > MIN_SUPPORT * total  # (a threshold: FFT roundoff)
    if valid is not None:
        resting = resting & valid
    out = _ratio(_correlate(filled, magnitude, causal), total, resting).clamp(MIN_SUPPORT, 1.0)
    out = torch.where(resting, out, torch.zeros_like(out))
    everywhere = resting if valid is None else resting | ~valid
    return completed, MaskState(valid, None if bool(everywhere.all()) else out)


# -- norms, pooling and the zero-fill baseline ---------------------------------------------------


def masked_batch_norm(norm: nn.Module, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """``norm(x)`` for a BatchNorm whose train-mode batch statistics come from the real
    positions only (``valid [B, 1, *S]``); eval mode and ``valid=None`` call ``norm`` itself."""
    if (
        valid is None
        or not isinstance(norm, nn.modules.batchnorm._BatchNorm)
        or not (norm.training or norm.running_mean is None)
    ):
        return norm(x)
    x = x.float()  # statistics in float32, as BatchNorm under autocast
    dims = (0, *range(2, x.ndim))
    count = valid.sum(dtype=torch.float32)
    if float(count) < 2:
        raise ValueError("BatchNorm in train mode needs at least 2 real positions in the batch")
    real = torch.where(valid, x, torch.zeros((), device=x.device))
    mean = real.sum(dims) / count
    var = (real.pow(2).sum(dims) / count - mean.pow(2)).clamp_min(0.0)  # one pass over the data
    if norm.training and norm.track_running_stats and norm.running_mean is not None:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = (1.0 / float(norm.num_batches_tracked)) if norm.momentum is None else norm.momentum
            norm.running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
            norm.running_var.mul_(1 - momentum).add_(var.detach() * (count / (count - 1)) * momentum)
    shape = (1, -1, *(1,) * (x.ndim - 2))
    scale = torch.rsqrt(var + norm.eps) * (norm.weight if norm.affine else 1.0)
    shift = (norm.bias if norm.affine else 0.0) - mean * scale
    return torch.addcmul(shift.view(shape), x, scale.view(shape))


def masked_pool(x: torch.Tensor, valid: torch.Tensor | None, pool_type: str) -> torch.Tensor:
    """Global ``"avg"`` / ``"max"`` pooling of ``x [B, C, *S]`` over the real positions (``""``:
    no pooling, padded positions zeroed)."""
    dims = tuple(range(2, x.ndim))
    if valid is None:
        return x.mean(dim=dims) if pool_type == "avg" else x.amax(dim=dims) if pool_type == "max" else x
    if pool_type == "avg":
        return torch.where(valid, x, torch.zeros_like(x)).sum(dims) / valid.sum(dims).to(x.dtype)
    if pool_type == "max":
        return torch.where(valid, x, torch.full_like(x, -math.inf)).amax(dim=dims)
    return torch.where(valid, x, torch.zeros_like(x))


def zero_fill_input(x: torch.Tensor, state: MaskState) -> tuple[torch.Tensor, MaskState]:
    """The zero-fill baseline's input: ``x`` (already zero where unobserved) with the observed
    fraction of its channels appended as one channel; the state keeps the padding only."""
    if state.certainty is not None:
        channel = state.certainty.mean(1, keepdim=True)
    elif state.valid is not None:
        channel = state.valid.float()
    else:
        channel = torch.ones_like(x[:, :1], dtype=torch.float32)
    return torch.cat([x, channel.to(x.dtype)], dim=1), MaskState(state.valid, None)
