"""Where a continuous kernel is sampled: grids, the Gaussian mask and its dynamic crop.

Coordinates: a kernel lives on [-1, 1] along every axis. At the base resolution an axis of
``n`` taps is sampled with step ``h = 2 / (n - 1)``; one step is one input sample.

* Reference mode reproduces the official code bit for bit: ``linspace(-1, 1, n)`` per axis,
  cropped by the official float32 floor/ceil arithmetic, whatever the input size.
* Continuous mode samples the same function with step ``h / s`` when the input is ``s``
  times finer than the base grid. Finer grids (``s >= 1``) evaluate the generator at the
  finer positions (it is band-limited, so nothing aliases) and weight each tap by ``1 / s``
  (a Riemann sum over ``s`` times more samples).
  Coarser grids (``s < 1``) cannot carry the kernel's highest frequencies. There the kernel
  is evaluated at the base step and folded onto the coarse taps with an interpolation
  kernel ``W``: ``k_c(q_j) = sum_i k(p_i) W((q_j - p_i) / H)``, ``H = h / s``. This is
  exactly the base-resolution convolution applied to the coarse input interpolated by
  ``W``, so the coarse layer approximates the base one as well as ``W`` interpolates, and
  ``W``'s low-pass response removes what the coarse grid cannot represent. ``W`` is the Keys
  cubic (Catmull-Rom) kernel for centred axes and the tent (linear) kernel for causal ones,
  whose interpolation between the two newest samples needs no future input.

The crop drops the taps where the mask is below its threshold. It is decided on the host from
the mask width, so the kernel's shape follows a learned parameter. A static plan (what compiled
training uses) keeps every tap instead and multiplies the kernel by a 0/1 window computed on the
device with the same float32 arithmetic (:class:`CropRule`): the same taps, zero-padded (their
values agree to float32 rounding: the generator and the coarse fold run on the larger grid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "AxisGrid",
    "CropRule",
    "KernelPlan",
    "axis_grid",
    "crop_roots",
    "crop_rule",
    "gaussian_mask",
    "grid_reach",
    "kernel_plan",
    "threshold_radius",
]


def threshold_radius(threshold: float) -> torch.Tensor:
    """``sqrt(-2 ln t)``: distance in widths at which a unit Gaussian falls to ``t`` (float32)."""
    return torch.sqrt(-2.0 * torch.log(torch.tensor([threshold], dtype=torch.float32)))


def crop_roots(mean: torch.Tensor, width: torch.Tensor, threshold: float, causal: bool) -> torch.Tensor:
    """Per-axis position beyond which the mask is below ``threshold`` (official arithmetic).

    Causal kernels return one scalar (the lowest root, ``mu - a``); centred kernels return
    ``max(|mu - a|, |mu + a|)`` per axis, with ``a = width * sqrt(-2 ln threshold)``.
    """
    aux = width.detach().float() * threshold_radius(threshold).to(width.device)
    roots = torch.stack([mean - aux, mean + aux], dim=1)  # [D, 2]
    if causal:
        return torch.min(roots).reshape(1)
    return torch.max(torch.abs(roots), dim=1).values


def gaussian_mask(positions: torch.Tensor, mean: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """``exp(-0.5 sum_d (p_d - mu_d)^2 / (sigma_d^2 + 1e-8))`` on a grid ``[1, D, *K]`` -> ``[1, 1, *K]``."""
    shape = (1, -1, *(1,) * (positions.ndim - 2))
    inv_var = 1.0 / (width.view(shape) ** 2 + 1e-8)
    return torch.exp(-0.5 * (inv_var * (positions - mean.view(shape)) ** 2).sum(1, keepdim=True))


@dataclass(frozen=True)
class AxisGrid:
    """Sampling plan of one kernel axis.

    Attributes:
        positions: float32 coordinates where the generator is evaluated.
        resample: ``[n_out, n_eval]`` tent matrix mapping evaluated taps to output taps
            (coarse axes only), else None.
        riemann: factor the kernel is multiplied by along this axis (``1 / s`` on finer axes).
    """

    positions: torch.Tensor
    resample: torch.Tensor | None
    riemann: float

    @property
    def taps(self) -> int:
        return self.positions.numel() if self.resample is None else self.resample.shape[0]


@dataclass(frozen=True)
class CropRule:
    """The crop of one uncropped axis of ``taps`` output taps with float32 ``step``, as a rule
    evaluated on the device: centred axes keep the taps within a radius of the middle one, causal
    axes the taps from the first position at or after the root (``start``: the first position)."""

    taps: int
    step: float
    causal: bool
    start: float

    def window(self, root: torch.Tensor) -> torch.Tensor:
        """0/1 float32 ``[taps]``: the taps the host crop of :func:`axis_grid` keeps for ``root``."""
        index = torch.arange(self.taps, device=root.device)
        if self.causal:
            first = torch.floor((root - self.start) / self.step).clamp_min(0.0)
            keep = index >= first
        else:
            reach = torch.ceil(root / self.step + 1e-8)
            keep = (index - self.taps // 2).abs() <= reach - 1
        return (keep | (root.abs() >= 1.0)).float()


def crop_rule(taps: int, scale: float, causal: bool, reference: bool) -> CropRule | None:
    """The :class:`CropRule` of the axis :func:`axis_grid` samples for these arguments (no crop
    root), or None for a single-tap axis."""
    if taps < 2:
        return None
    if reference or scale == 1.0:
        return CropRule(taps, float(_official_step(taps)), causal, -1.0)
    out_step = 2.0 / (taps - 1) / scale
    out = _scaled_positions(out_step, causal)
    return CropRule(out.numel(), float(torch.tensor(out_step, dtype=torch.float32)), causal, float(out[0]))


@dataclass(frozen=True)
class KernelPlan:
    """Everything a kernel's shape depends on, decided on the host, ready on the device.

    Attributes:
        positions: ``[1, D, *K]`` meshgrid of the evaluation positions (float32, on the device).
        resample: per axis, the ``[n_out, n_eval]`` fold onto a coarse axis (on the device), or None.
        riemann: factor the kernel is multiplied by (``prod 1 / s`` over finer axes).
        signature: per axis ``(evaluated taps, first position, output taps)``: equal signatures
            mean equal grids (the plan can be kept, and a compiled graph stays valid).
        crop: per axis the :class:`CropRule` of a static (uncropped) plan, else None (the grid
            is cropped already, or static without a crop).
    """

    positions: torch.Tensor
    resample: tuple[torch.Tensor | None, ...]
    riemann: float
    signature: tuple
    crop: tuple[CropRule | None, ...] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape of the kernel this plan produces."""
        return tuple(s[2] for s in self.signature)


def kernel_plan(
    grids: list[AxisGrid], device: torch.device, crop: Sequence[CropRule | None] | None = None
) -> KernelPlan:
    """Bundle host-side axis grids (and, for a static plan, their crop rules) into a
    :class:`KernelPlan` on ``device``."""
    axes = [g.positions.to(device) for g in grids]
    positions = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0).unsqueeze(0)
    resample = tuple(None if g.resample is None else g.resample.to(device) for g in grids)
    riemann = math.prod(g.riemann for g in grids)
    signature = tuple((g.positions.numel(), float(g.positions[0]), g.taps) for g in grids)
    return KernelPlan(positions, resample, riemann, signature, None if crop is None else tuple(crop))


def _crop_centered(n: int, step: torch.Tensor, root: torch.Tensor) -> slice:
    if not bool(torch.abs(root) < 1.0):
        return slice(None)
    index = int(torch.ceil((root - 0.0) / step + 1e-8).int())
    mid = n // 2
    return slice(mid - (index - 1), mid + index)


def _crop_causal(start: float, step: torch.Tensor, root: torch.Tensor) -> slice:
    if bool(torch.abs(root) >= 1.0):
        return slice(None)
    index = int(torch.floor((root - start) / step).int())
    return slice(max(index, 0), None)


def _official_step(n: int) -> torch.Tensor:
    # 2.0 / int32 tensor: the official code's float32 step (== float32(2 / (n - 1))).
    return torch.tensor(2.0 / (n - 1), dtype=torch.float32)


def grid_reach(taps: int, scale: float, causal: bool, reference: bool) -> int:
    """How many taps the uncropped kernel of :func:`axis_grid` reaches from the present sample
    (causal) or from its centre: offsets ``-reach..0`` or ``-reach..reach``, in output taps."""
    if taps < 2:
        return 0
    if reference or scale == 1.0:
        return taps - 1 if causal else taps // 2
    step = 2.0 / (taps - 1) / scale
    return int(math.floor((2.0 if causal else 1.0) / step + 1e-6))


def _clip(positions: torch.Tensor, reach: int | None, causal: bool) -> torch.Tensor:
    """The taps of a (possibly cropped) axis within ``reach`` taps of the present sample (causal:
    the last ones) or of the centre; all of them when ``reach`` is None."""
    if reach is None:
        return positions
    if causal:
        return positions[-(reach + 1) :]
    mid = positions.numel() // 2
    return positions[max(mid - reach, 0) : mid + reach + 1]


def axis_grid(
    taps: int, scale: float, causal: bool, root: torch.Tensor | None, reference: bool, reach: int | None = None
) -> AxisGrid:
    """Sampling plan of one axis with ``taps`` base taps, for an input ``scale`` x the base rate.

    Args:
        taps: number of taps of the uncropped kernel at the base resolution.
        scale: input resolution / base resolution along this axis (1 in reference mode).
        causal: kernel ends at +1 (the current sample) instead of being centred on 0.
        root: mask crop root for this axis (see :func:`crop_roots`), or None for no crop.
        reference: use the official grid (``linspace(-1, 1, taps)``) and ignore ``scale``.
        reach: keep only the taps at most this many steps from the present sample (causal) or the
            centre: the ones that can touch an input of ``reach + 1`` samples (None: all). The
            kernel is then neither evaluated nor convolved where it cannot meet the input.
    """
    if taps < 2:
        positions = torch.zeros(1)
        return AxisGrid(positions, None, 1.0)
    if reference or scale == 1.0:
        positions = torch.linspace(-1.0, 1.0, taps)
        step = _official_step(taps)
        if root is not None:
            positions = positions[_crop_causal(-1.0, step, root) if causal else _crop_centered(taps, step, root)]
        return AxisGrid(_clip(positions, reach, causal), None, 1.0)

    base_step = 2.0 / (taps - 1)
    out_step = base_step / scale
    out = _scaled_positions(out_step, causal)
    step32 = torch.tensor(out_step, dtype=torch.float32)
    if root is not None:
        out = out[_crop_causal(float(out[0]), step32, root) if causal else _crop_centered(out.numel(), step32, root)]
    out = _clip(out, reach, causal)
    if scale > 1.0:
        return AxisGrid(out, None, 1.0 / scale)
    # Coarse axis: evaluate at the base step around the output taps, then fold onto them.
    support = 1.0 if causal else 2.0
    base = _scaled_positions(base_step, causal)
    lo, hi = float(out.min()) - support * out_step, float(out.max()) + support * out_step
    base = base[(base > lo) & (base < hi)]
    distance = (out[:, None].double() - base[None, :].double()) / out_step
    weights = _tent(distance) if causal else _keys_cubic(distance)
    return AxisGrid(base, weights.float(), 1.0)


def _tent(u: torch.Tensor) -> torch.Tensor:
    return torch.clamp(1.0 - u.abs(), min=0.0)


def _keys_cubic(u: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel (Catmull-Rom for a = -0.5), support (-2, 2)."""
    u = u.abs()
    near = ((a + 2) * u - (a + 3)) * u * u + 1
    far = ((a * u - 5 * a) * u + 8 * a) * u - 4 * a
    return torch.where(u <= 1, near, torch.where(u < 2, far, torch.zeros_like(u)))


def _scaled_positions(step: float, causal: bool) -> torch.Tensor:
    """All grid points with spacing ``step`` inside [-1, 1]: ending at +1 (causal) or centred on 0."""
    if causal:
        count = int(math.floor(2.0 / step + 1e-6))
        return torch.linspace(1.0 - count * step, 1.0, count + 1)
    half = int(math.floor(1.0 / step + 1e-6))
    return torch.linspace(-half * step, half * step, 2 * half + 1)
