"""The continuous depthwise kernel: its parameters, and the plans and caches that sample it.

``generator(p) * gaussian_mask(p)``, a function of position sampled on the grid that the input's
resolution calls for (see :mod:`ccnn_hf.kernel_grid`), so the same parameters serve every
resolution, length and sampling rate. :class:`ContinuousKernel` holds the generator, the mask
width and the depthwise bias, decides the sampling grids on the host (kernel plans, kept per input
scale), samples the kernel and caches it in eval mode; the convolution that uses it is
:class:`ccnn_hf.continuous_conv.SeparableContinuousConv`.

Band limits of continuous mode. A kernel can only be resampled if it holds nothing above the
Nyquist frequency of the grid it was learned on, ``pi / h`` with ``h = 2 / (K - 1)`` the base
step. The kernel is a sum of terms ``Gaussian(p) * sin(w . p + b)`` whose spectrum is a
Gaussian of width ``sqrt(sum gamma_l^2 + 1 / sigma^2)`` (MAGNet envelopes and the mask)
centred on ``sum +-w_l`` (MAGNet sines). Continuous mode therefore bounds, smoothly (tanh)
and per axis:

* the sines of all layers together to ``SINE_BANDS_SPEC[sine_band][0]`` x Nyquist: the whole band with
  ``sine_band="last_layer"`` (the default; 70 % of it in the last Gabor layer, see
  :class:`ccnn_hf.kernel_nets.MAGNet`), 0.6 with ``"equal"`` (layers sharing it equally);
* each envelope's inverse width to ``ENVELOPE_BUDGET`` x Nyquist / sqrt(layers);
* the mask width from below, ``sigma_min = 1 / (MASK_BUDGET x Nyquist)``, and from above,
  ``sigma_max`` = the width whose crop radius reaches the edge of the kernel's domain:
  ``sigma_eff = sigma_max tanh(sqrt(sigma^2 + sigma_min^2) / sigma_max)``;

so that, with ``"equal"``, every term stays below Nyquist out to two spectral standard deviations.
``"last_layer"`` trades that margin for initial kernels that cover the band: with ``"equal"`` the
product of equally bounded sines puts over 70 % of a kernel's energy below 0.1 x Nyquist at
initialisation (a low-pass network that learns more slowly than the official one); the tails that
may now pass Nyquist are the envelopes' and the mask's. The mask is
also shifted to reach exactly zero at the crop threshold, ``max(m - t, 0) / (1 - t)``, and
the upper bound keeps that point inside the domain: the kernel is continuous and vanishes
before the grid ends, which Riemann sums on grids of different steps need to agree. Causal
kernels end abruptly at the present sample; their last tap gets half weight (trapezoid rule), so sums over grids of
different steps agree to second order.
"""

from __future__ import annotations

import math
import sys
from contextlib import nullcontext
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .fftconv import fft_sizes, kernel_spectrum
from .kernel_grid import (
    AxisGrid,
    CropRule,
    KernelPlan,
    axis_grid,
    crop_roots,
    crop_rule,
    gaussian_mask,
    grid_reach,
    kernel_plan,
)
from .kernel_nets import build_kernel_net

__all__ = ["ContinuousKernel", "refresh_kernel_plans"]

# sine_band -> (the share of Nyquist all sines together may use, the last Gabor layer's part of it; None: equal parts)
SINE_BANDS_SPEC: dict[str, tuple[float, float | None]] = {"last_layer": (1.0, 0.7), "equal": (0.6, None)}
ENVELOPE_BUDGET = 0.1
MASK_BUDGET = 0.3
RECOMPUTE_TAPS = 4096  # kernels with at least this many evaluated taps regenerate in the backward
_MAX_PLANS = 16  # kernel plans kept per conv (input scales x devices)


class _LastKernel:
    """The kernel a training forward sampled with gradients, its plan and the parameters' versions
    then (see :meth:`ContinuousKernel.penalty_kernel`). Never copied or pickled with its
    module: a copy starts empty (a tensor inside an autograd graph cannot be deep-copied)."""

    def __init__(self, plan: KernelPlan | None = None, versions: tuple = (), kernel: torch.Tensor | None = None):
        self.plan, self.versions, self.kernel = plan, versions, kernel

    def __deepcopy__(self, memo: dict) -> "_LastKernel":
        return _LastKernel()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


class ContinuousKernel(nn.Module):
    """The depthwise half of :class:`~ccnn_hf.continuous_conv.SeparableContinuousConv`: a kernel
    generator, a learned Gaussian mask and a per-channel bias, sampled for any input scale.

    Built through :class:`~ccnn_hf.continuous_conv.SeparableContinuousConv`, which checks the
    settings and documents the arguments. Parameters: ``kernel_net`` (the generator),
    ``bias`` (added after the depthwise convolution) and ``mask_width`` (sigma per axis).
    """

    def __init__(
        self,
        channels: int,
        *,
        data_dim: int,
        kernel_size: tuple[int, ...],
        base_resolution: Sequence[int] | None,
        causal: bool,
        mode: str,
        sine_band: str,
        kernel_net: str,
        kernel_hidden: int,
        kernel_layers: int,
        omega_0: float,
        mask_init: float,
        mask_threshold: float,
        kernel_options: Mapping[str, Any] | None,
    ) -> None:
        super().__init__()
        self.in_channels, self.data_dim = channels, data_dim
        self.kernel_size, self.causal, self.mode = kernel_size, causal, mode
        self.base_resolution = None if base_resolution is None else tuple(int(r) for r in base_resolution)
        self.mask_threshold = float(mask_threshold)

        continuous = mode == "continuous"
        nyquist = [math.pi * (k - 1) / 2.0 for k in kernel_size]  # rad per coordinate unit at the base step
        sine_budget, last_layer_share = SINE_BANDS_SPEC[sine_band]
        self.min_mask_width = tuple(1.0 / (MASK_BUDGET * n) for n in nyquist) if continuous else None
        # Largest width whose crop radius still fits the kernel's domain (2 long when causal).
        self.max_mask_width = (2.0 if causal else 1.0) / math.sqrt(-2.0 * math.log(mask_threshold))
        self.mask_init = float(mask_init)
        self._kernel_net_args = dict(
            kind=kernel_net,
            data_dim=data_dim,
            out_channels=channels,
            no_layers=kernel_layers,
            init_spatial_value=mask_init * 1.667,
            causal=causal,
            max_frequency=[sine_budget * n for n in nyquist] if continuous else None,
            last_layer_share=last_layer_share,
            max_gamma=[ENVELOPE_BUDGET * n / math.sqrt(kernel_layers + 1) for n in nyquist] if continuous else None,
            **{"hidden_channels": kernel_hidden, "omega_0": omega_0, **(kernel_options or {})},
        )
        self.kernel_net = build_kernel_net(**self._kernel_net_args)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.mask_width = nn.Parameter(torch.full((data_dim,), self.mask_init))
        self._kernel_cache: dict[tuple, torch.Tensor] = {}
        self._last_kernel = _LastKernel()  # the last training forward's kernel, for the penalty
        self._plans: dict[tuple, tuple[tuple, KernelPlan]] = {}  # (scale, reach, device) -> (mask state, plan)
        self.crops = True  # the kernel grid is cropped on the host (its shape follows the mask width)

    def set_static_kernel_shape(self, enable: bool = True) -> None:
        """Sample the kernel on its whole grid and zero the taps the mask crop would drop (a 0/1
        window computed on the device with the crop's own float32 arithmetic), instead of cropping
        the grid. The kernel is the cropped one, zero-padded (the same taps; values to float32
        rounding, as the generator and a coarse fold run on the whole grid); its shape no longer
        depends on the mask width, so a compiled graph is not recompiled as the width learns and no
        forward reads the width on the host. Costs the generator and the convolution on the whole grid."""
        self.crops = not enable
        self._plans.clear()
        self._kernel_cache.clear()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draw a fresh initialisation (the constructor's, before any base-resolution scaling)."""
        device = self.mask_width.device
        fresh = build_kernel_net(**self._kernel_net_args).to(device)
        for target, source in zip(self.kernel_net.parameters(), fresh.parameters()):
            target.copy_(source)
        self.bias.zero_()
        self.mask_width.fill_(self.mask_init)
        self._kernel_cache.clear()
        self._plans.clear()

    # -- kernel ------------------------------------------------------------------------
    @property
    def mask_mean(self) -> torch.Tensor:
        """Mask centre per axis: +1 (the current sample) for causal kernels, else 0."""
        return torch.full((self.data_dim,), 1.0 if self.causal else 0.0, device=self.mask_width.device)

    def effective_mask_width(self) -> torch.Tensor:
        """Mask width in use; in continuous mode bounded smoothly into ``[sigma_min, sigma_max]``
        (see the module docstring)."""
        if self.min_mask_width is None:
            return self.mask_width
        width = torch.sqrt(self.mask_width**2 + self.mask_width.new_tensor(self.min_mask_width) ** 2)
        return self.max_mask_width * torch.tanh(width / self.max_mask_width)

    def mask(self, positions: torch.Tensor) -> torch.Tensor:
        """The Gaussian mask ``[1, 1, *K]`` at ``positions`` (zero at the crop threshold in continuous mode)."""
        mask = gaussian_mask(positions, self.mask_mean.to(positions.dtype), self.effective_mask_width())
        if self.mode == "reference":
            return mask
        return torch.clamp(mask - self.mask_threshold, min=0.0) / (1.0 - self.mask_threshold)

    def sampling_plan(
        self,
        scale: Sequence[float],
        width: torch.Tensor | None = None,
        crop: bool | None = None,
        reach: Sequence[int | None] | None = None,
    ) -> list[AxisGrid]:
        """Per-axis grids for an input ``scale`` x the base resolution (crop included).

        ``width``: a host (CPU) copy of :meth:`effective_mask_width`; read from the parameters
        when None. The crop uses the official float32 arithmetic on that copy. ``crop``: whether
        to crop the grids (default: :attr:`crops`; static kernel shapes keep the whole grid).
        ``reach``: per axis, clip the grid to the taps that can touch the input (see :meth:`reach`).
        """
        reference = self.mode == "reference"
        reach = reach or (None,) * self.data_dim
        if self.mask_width.is_meta or not (self.crops if crop is None else crop):  # meta: no values to crop by
            return [
                axis_grid(k, 1.0 if reference else float(s), self.causal, None, reference, r)
                for k, s, r in zip(self.kernel_size, scale, reach)
            ]
        if width is None:
            with torch.no_grad():
                width = self.effective_mask_width().detach().float().cpu()
        mean = torch.full((self.data_dim,), 1.0 if self.causal else 0.0)
        roots = crop_roots(mean, width, self.mask_threshold, self.causal)
        return [
            axis_grid(
                k, 1.0 if reference else float(s), self.causal, roots[0] if self.causal else roots[d], reference, r
            )
            for d, (k, s, r) in enumerate(zip(self.kernel_size, scale, reach))
        ]

    def reach(self, scale: Sequence[float], size: Sequence[int] | None) -> tuple[int | None, ...] | None:
        """Per axis, how far (in taps) the kernel for an input of ``size`` samples at ``scale`` must
        reach: ``size - 1`` where the kernel is longer than that (its further taps can never touch
        the input, so they are neither sampled nor convolved: the cost follows the input, not the
        resolution it claims), else None; None when no axis needs clipping, when ``size`` is None,
        in reference mode (the official grid) and with static kernel shapes (fixed for compiling)."""
        if size is None or self.mode == "reference" or not self.crops:
            return None
        reach = tuple(
            n - 1 if grid_reach(k, float(s), self.causal, False) > n - 1 else None
            for k, s, n in zip(self.kernel_size, scale, size)
        )
        return None if all(r is None for r in reach) else reach

    # -- kernel plans: the grid decisions, made on the host outside the forward ----------------
    def _plan_key(self, scale: tuple[float, ...], reach: tuple[int | None, ...] | None = None) -> tuple:
        return (scale, reach, self.mask_width.device)

    def _mask_state(self) -> tuple:
        """Host-side identity of the mask parameter's current value (no device read): the
        parameter object, its storage and its in-place version counter."""
        return (id(self.mask_width), self.mask_width.data_ptr(), self.mask_width._version)

    def plan_is_current(self, scale: Sequence[float], size: Sequence[int] | None = None) -> bool:
        """Whether the stored plan for ``scale`` (and an input of ``size``, see :meth:`reach`) was
        made from the mask width as it is now."""
        scale = tuple(float(s) for s in scale)
        entry = self._plans.get(self._plan_key(scale, self.reach(scale, size)))
        return entry is not None and (not self.crops or entry[0] == self._mask_state())

    def planned_scales(self) -> list[tuple[float, ...]]:
        """The scales this conv holds a kernel plan for (on its current device)."""
        return list(dict.fromkeys(scale for scale, _ in self.planned_grids()))

    def planned_grids(self) -> list[tuple[tuple[float, ...], tuple[int | None, ...] | None]]:
        """``(scale, reach)`` of every kernel plan this conv holds (on its current device)."""
        device = self.mask_width.device
        return [key[:2] for key in self._plans if key[2] == device]

    def store_plan(
        self, scale: Sequence[float], width: torch.Tensor | None, reach: tuple[int | None, ...] | None = None
    ) -> KernelPlan:
        """Decide and store the kernel plan for ``scale`` (clipped to ``reach``, see :meth:`reach`)
        from ``width``, a host copy of :meth:`effective_mask_width`. An unchanged grid keeps its
        plan object (a compiled graph that guards on it stays valid)."""
        scale = tuple(float(s) for s in scale)
        key = self._plan_key(scale, reach)
        reference = self.mode == "reference"
        crop = (
            None if self.crops else [crop_rule(k, s, self.causal, reference) for k, s in zip(self.kernel_size, scale)]
        )
        plan = kernel_plan(self.sampling_plan(scale, width, reach=reach), self.mask_width.device, crop)
        previous = self._plans.get(key)
        if previous is None:
            while len(self._plans) >= _MAX_PLANS:
                self._plans.pop(next(iter(self._plans)))
        elif previous[1].signature == plan.signature:
            plan = previous[1]
        self._plans[key] = (self._mask_state(), plan)  # (an existing key keeps its place: compiled guards)
        return plan

    def kernel_plan(self, scale: Sequence[float], size: Sequence[int] | None = None) -> KernelPlan:
        """The kernel plan for ``scale`` (clipped to an input of ``size``, see :meth:`reach`),
        re-decided first if the mask width changed since it was made (eager mode). While compiling
        or exporting, the stored plan is used as it is (a graph cannot read parameter values on the
        host): call :func:`refresh_kernel_plans` (or ``CCNN.refresh_kernel_plan``) after every
        optimizer step of a compiled model."""
        scale = tuple(float(s) for s in scale)
        reach = self.reach(scale, size)
        entry = self._plans.get(self._plan_key(scale, reach))
        if torch.compiler.is_compiling():
            if entry is not None:
                return entry[1]
            if torch.compiler.is_exporting():
                raise RuntimeError(
                    f"no kernel plan for input scale {scale}: run the model once in eager mode at this input "
                    "size, or call model.refresh_kernel_plan(scale), before exporting it"
                )
            return _plan_outside_graph(self, scale, size)  # a graph break (an error under fullgraph=True)
        if entry is None or (self.crops and entry[0] != self._mask_state()):
            refresh_kernel_plans([self], [scale], size)
        return self._plans[self._plan_key(scale, reach)][1]

    def kernel(self, scale: Sequence[float] | None = None, size: Sequence[int] | None = None) -> torch.Tensor:
        """The masked depthwise kernel ``[C, *K]`` (float32) for an input at ``scale``; with the
        input's spatial ``size``, only the taps that can touch it (see :meth:`reach`).

        In eval mode the result is cached per scale and device, and dropped when any
        parameter changes (in-place updates bump their version counters) or on ``train()``.
        The cache is bypassed while compiling or exporting (the kernel is part of the graph).
        """
        scale = tuple(float(s) for s in (scale or (1.0,) * self.data_dim))
        plan = self.kernel_plan(scale, size)
        if torch.compiler.is_compiling():  # (the compiler's partitioner decides what to recompute)
            return self._sample_kernel(plan)
        if (
            torch.is_grad_enabled()
            and plan.positions[0, 0].numel() >= RECOMPUTE_TAPS
            and any(p.requires_grad for p in self.parameters())
        ):
            # Many taps (fine resolutions): the generator's intermediates (hidden x taps, per
            # layer) are recomputed in the backward instead of kept.
            return self._remember(
                plan, checkpoint(self._sample_kernel, plan, use_reentrant=False, preserve_rng_state=False)
            )
        if self.training:
            return self._remember(plan, self._sample_kernel(plan))
        key = (
            scale,
            self.reach(scale, size),
            self.mask_width.device,
            tuple((p.data_ptr(), p._version) for p in self.parameters()),
        )
        cached = self._kernel_cache.get(key)
        if cached is None:
            self._kernel_cache.clear()
            cached = self._kernel_cache[key] = self._sample_kernel(plan)
        return cached

    def _versions(self) -> tuple:
        """Host-side identity of every parameter's current value (storage and in-place version)."""
        return tuple((p.data_ptr(), p._version) for p in self.parameters())

    def _remember(self, plan: KernelPlan, kernel: torch.Tensor) -> torch.Tensor:
        """Keep a kernel sampled with gradients for :meth:`penalty_kernel`; returns it."""
        self._last_kernel = _LastKernel(plan, self._versions(), kernel) if kernel.requires_grad else _LastKernel()
        return kernel

    def penalty_kernel(self) -> torch.Tensor:
        """The masked kernel on the base grid, every tap (:meth:`kernel` at scale 1), for the official
        L2 penalty: the very tensor the last training forward sampled when that forward ran on the
        base grid and no parameter changed since, as the official code reuses it (one kernel sample
        less per step; the same value and gradients); else sampled afresh. Sampled afresh while
        compiling (the kernel is part of the graph)."""
        if torch.compiler.is_compiling():
            return self.kernel()
        last, self._last_kernel = self._last_kernel, _LastKernel()  # used once: nothing outlives the step
        reusable = last.kernel is not None and torch.is_grad_enabled() and last.versions == self._versions()
        if reusable and last.plan is self.kernel_plan((1.0,) * self.data_dim):
            return last.kernel
        return self.kernel()

    def _sample_kernel(self, plan: KernelPlan) -> torch.Tensor:
        device = self.mask_width.device
        no_autocast = torch.autocast(device_type=device.type, enabled=False) if device.type != "meta" else nullcontext()
        with no_autocast:  # (the meta device has no autocast)
            dtype = next(self.kernel_net.parameters()).dtype
            positions = plan.positions.to(dtype)  # [1, D, *K]
            kernel = self.kernel_net(positions).view(-1, self.in_channels, *positions.shape[2:])
            kernel = (self.mask(positions) * kernel)[0].float()
            if self.causal and self.mode == "continuous":
                # Trapezoid rule at the present sample, where a causal kernel is cut off:
                # half weight keeps Riemann sums on grids of any step consistent (O(h^2)).
                kernel = torch.cat([kernel[..., :-1], 0.5 * kernel[..., -1:]], dim=-1)
            for axis, resample in enumerate(plan.resample):
                if resample is not None:  # tent-integrate onto the coarse axis
                    kernel = torch.movedim(torch.movedim(kernel, axis + 1, -1) @ resample.T, -1, axis + 1)
            if plan.crop is not None:
                kernel = kernel * self._crop_window(plan.crop)
            return kernel * plan.riemann if plan.riemann != 1.0 else kernel

    def _crop_window(self, rules: tuple[CropRule | None, ...]) -> torch.Tensor:
        """The static plan's crop as a 0/1 ``[*K]`` window, from the mask width on the device."""
        with torch.no_grad():
            width = self.effective_mask_width().detach().float()
            roots = crop_roots(self.mask_mean, width, self.mask_threshold, self.causal)
        window = torch.ones((), device=width.device)
        for axis, rule in enumerate(rules):
            if rule is not None:
                axis_window = rule.window(roots[0] if self.causal else roots[axis])
                window = window.unsqueeze(-1) * axis_window
            else:
                window = window.unsqueeze(-1)
        return window

    def _cached_spectrum(self, kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """The kernel's FFT for this input size, cached next to a cached kernel (eval, no grad)."""
        if (
            self.training
            or kernel.requires_grad
            or torch.compiler.is_compiling()
            or not any(v is kernel for v in self._kernel_cache.values())
        ):
            return None
        sizes = tuple(fft_sizes(x.shape[2:], kernel.shape[1:], self.causal))
        key = ("spectrum", id(kernel), sizes)
        if key not in self._kernel_cache:
            self._kernel_cache[key] = kernel_spectrum(kernel, sizes, self.causal)
        return self._kernel_cache[key]

    def clear_kernel_cache(self) -> None:
        self._kernel_cache.clear()

    def base_taps(self) -> int:
        """Number of kernel taps at the base resolution after the mask crop (also with static
        kernel shapes, whose windowed kernel has the cropped one's nonzero taps)."""
        return math.prod(g.taps for g in self.sampling_plan((1.0,) * self.data_dim, crop=True))

    def train(self, mode: bool = True) -> "ContinuousKernel":
        self._kernel_cache.clear()
        self._last_kernel = _LastKernel()
        return super().train(mode)

    def input_scale(self, x: torch.Tensor) -> tuple[float, ...]:
        """Resolution of ``x`` relative to the base grid, read from its shape (1 if rate-defined)."""
        if self.mode == "reference" or self.base_resolution is None:
            return (1.0,) * self.data_dim
        return tuple(n / b for n, b in zip(x.shape[2:], self.base_resolution))


def _plan_outside_graph(conv: ContinuousKernel, scale: tuple[float, ...], size: Sequence[int] | None) -> KernelPlan:
    """Decide a missing kernel plan eagerly, outside a graph being compiled."""
    refresh_kernel_plans([conv], [scale], size)
    return conv._plans[conv._plan_key(scale, conv.reach(scale, size))][1]


def keep_plans_out_of_graphs() -> None:
    """Make :func:`_plan_outside_graph` a graph break for the compiler (``torch.compiler.disable``).

    Importing the compiler costs seconds and ~150 MB, so this runs once ``torch._dynamo`` is imported
    (``import ccnn_hf`` watches for it, see :mod:`ccnn_hf.integrations.import_hooks`), or at once if it already is.
    """
    global _plan_outside_graph
    if not hasattr(_plan_outside_graph, "__wrapped__"):
        _plan_outside_graph = torch.compiler.disable(
            _plan_outside_graph,
            reason="kernel plans read mask widths on the host: run the model once eagerly at this "
            "input size, or call model.refresh_kernel_plan(scale), before compiling it",
        )


if "torch._dynamo" in sys.modules:
    keep_plans_out_of_graphs()


def refresh_kernel_plans(
    convs: Sequence[ContinuousKernel],
    scales: Sequence[Sequence[float]] | None = None,
    size: Sequence[int] | None = None,
) -> None:
    """Re-decide the kernel plans of ``convs`` from their current mask widths, with one host read
    for all of them: for ``scales`` (and inputs of spatial ``size``, see
    :meth:`ContinuousKernel.reach`), or for every plan each conv already holds."""
    convs = list(convs)
    if not convs:
        return
    device = convs[0].mask_width.device
    cropping = [c for c in convs if c.crops]
    widths: dict[int, torch.Tensor | None] = {id(c): None for c in convs}  # None: uncropped, or meta (no values)
    if cropping and device.type != "meta":
        with torch.no_grad():
            read = torch.cat([c.effective_mask_width().detach().float().to(device) for c in cropping]).cpu()
        widths.update(zip(map(id, cropping), read.split([c.data_dim for c in cropping])))
    for conv in convs:
        width = widths[id(conv)]
        if scales is None:
            grids = conv.planned_grids()
        else:
            grids = [(tuple(float(s) for s in scale), None) for scale in scales]
            grids = [(scale, conv.reach(scale, size)) for scale, _ in grids]
        for scale, reach in grids:
            conv.store_plan(scale, width, reach)
