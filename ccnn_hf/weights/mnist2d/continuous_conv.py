"""Separable continuous convolution (SeparableFlexConv of the official CCNN code).

``depthwise(x, generator(p) * gaussian_mask(p)) + bias`` followed by a 1x1 channel mixer. The
kernel, its band limits, sampling plans and caches are :class:`ccnn_hf.continuous_kernel.ContinuousKernel`,
which this class extends with the convolution: the choice of the direct or FFT path, the
mask-aware variants (see :mod:`ccnn_hf.masking`) and the channel mixer.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .continuous_kernel import ContinuousKernel
from .fftconv import (
    choose_conv_path,
    depthwise_conv_direct,
    depthwise_conv_fft,
    depthwise_conv_fft_official_1d,
)
from .kernel_nets import pointwise_conv
from .masking import MaskState, RowScales, complete
from .settings import CONV_IMPLS, MODES, check_settings, conv_options, defaults

__all__ = ["SeparableContinuousConv", "MODES", "CONV_IMPLS"]

_DEFAULTS = defaults()  # the keyword defaults below: the settings table's


class SeparableContinuousConv(ContinuousKernel):
    """Continuous depthwise convolution with a learned Gaussian mask, then a 1x1 mixer.

    Args:
        in_channels: channels of the input (and of the depthwise kernel).
        out_channels: channels after the 1x1 channel mixer.
        data_dim: number of spatial axes (1, 2 or 3).
        kernel_size: taps per axis of the kernel at the base resolution (before cropping).
        base_resolution: input grid size per axis at which one kernel step is one sample;
            an input of another size is sampled proportionally finer or coarser. None for
            rate-defined data (audio, tokens): then the scale must be given explicitly.
        causal: 1D only; output ``t`` depends on inputs up to ``t``.
        mode: ``"continuous"`` (kernel follows the input resolution, band-limited generator)
            or ``"reference"`` (the official behaviour: fixed grid whatever the input size).
        sine_band: continuous mode: how much of the base grid's band the generator's sines use and
            how its layers share it (``"last_layer"`` or ``"equal"``; see :mod:`ccnn_hf.continuous_kernel`).
        kernel_net: ``"magnet"`` or ``"siren"``.
        kernel_hidden: width of the generator.
        kernel_layers: hidden layers of the generator.
        omega_0: frequency scale of the generator's official initialisation.
        kernel_options: further generator keywords (the settings of :mod:`ccnn_hf.settings` with
            ``target="kernel_net"``, under the generator's names); they win over ``kernel_hidden``
            (``hidden_channels``) and ``omega_0``.
        mask_init: initial Gaussian mask width (sigma, in kernel coordinates).
        mask_threshold: mask value below which kernel taps are cropped away.
        conv_impl: continuous mode: ``"auto"`` (cost model, see
            :func:`~ccnn_hf.fftconv.choose_conv_path`), ``"fft"`` or ``"direct"``.
        use_fft: reference mode: the official switch (FFT iff set and every kernel axis is
            longer than ``fft_threshold`` taps).
        fft_threshold: see ``use_fft``.
        legacy_odd_fft: reference mode: reproduce the official odd-length ``irfft`` bug.

    The keyword defaults are those of the settings table (:mod:`ccnn_hf.settings`), and the values
    are checked by its rules: an invalid one is a ValueError naming it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        data_dim: int,
        kernel_size: Sequence[int],
        base_resolution: Sequence[int] | None = None,
        causal: bool = _DEFAULTS["causal"],
        mode: str = _DEFAULTS["mode"],
        sine_band: str = _DEFAULTS["sine_band"],
        kernel_net: str = _DEFAULTS["kernel_net"],
        kernel_hidden: int = _DEFAULTS["kernel_hidden"],
        kernel_layers: int = _DEFAULTS["kernel_layers"],
        omega_0: float = _DEFAULTS["omega_0"],
        mask_init: float = _DEFAULTS["mask_init"],
        mask_threshold: float = _DEFAULTS["mask_threshold"],
        conv_impl: str = _DEFAULTS["conv_impl"],
        use_fft: bool = _DEFAULTS["use_fft"],
        fft_threshold: int = _DEFAULTS["fft_threshold"],
        legacy_odd_fft: bool = _DEFAULTS["legacy_odd_fft"],
        kernel_options: Mapping[str, Any] | None = None,
    ) -> None:
        # The arguments that are settings, checked by the table's own rules.
        named = {**conv_options(locals()), "data_dim": data_dim, "kernel_hidden": kernel_hidden, "omega_0": omega_0}
        check_settings(named, type(self).__name__)
        kernel_size = tuple(int(k) for k in kernel_size)
        if len(kernel_size) != data_dim:
            raise ValueError(f"kernel_size needs {data_dim} entries, got {kernel_size}")
        if not causal and any(k % 2 == 0 for k in kernel_size):
            raise ValueError(f"centred (non-causal) kernels need odd sizes, got {kernel_size}")
        super().__init__(
            in_channels,
            data_dim=data_dim,
            kernel_size=kernel_size,
            base_resolution=base_resolution,
            causal=causal,
            mode=mode,
            sine_band=sine_band,
            kernel_net=kernel_net,
            kernel_hidden=kernel_hidden,
            kernel_layers=kernel_layers,
            omega_0=omega_0,
            mask_init=mask_init,
            mask_threshold=mask_threshold,
            kernel_options=kernel_options,
        )
        self.out_channels = out_channels
        self.conv_impl, self.use_fft, self.fft_threshold = conv_impl, use_fft, fft_threshold
        self.legacy_odd_fft = legacy_odd_fft
        self.channel_mixer = pointwise_conv(data_dim, in_channels, out_channels)
        nn.init.kaiming_normal_(self.channel_mixer.weight)
        nn.init.zeros_(self.channel_mixer.bias)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draw a fresh initialisation (the constructor's, before any base-resolution scaling)."""
        super().reset_parameters()
        nn.init.kaiming_normal_(self.channel_mixer.weight)
        nn.init.zeros_(self.channel_mixer.bias)

    # -- convolution -------------------------------------------------------------------
    def conv_path(self, x: torch.Tensor, kernel_shape: Sequence[int]) -> str:
        """Which depthwise implementation runs for this input and kernel."""
        if self.mode == "reference":
            if self.legacy_odd_fft and self.use_fft and all(k > self.fft_threshold for k in kernel_shape[1:]):
                return "official_fft"
            return "fft" if self.use_fft and all(k > self.fft_threshold for k in kernel_shape[1:]) else "direct"
        if self.conv_impl != "auto":
            return self.conv_impl
        if x.is_meta:  # shapes only: nothing to time, and both paths give the same shape
            return "direct"
        training = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        return choose_conv_path(x.shape, kernel_shape, self.causal, training=training)

    def depthwise(self, x: torch.Tensor, scale: Sequence[float] | None = None) -> torch.Tensor:
        """The continuous depthwise convolution plus its bias, before the channel mixer."""
        return self._convolve(x, self.kernel(self.input_scale(x) if scale is None else scale, x.shape[2:]))

    def depthwise_masked(
        self, x: torch.Tensor, scale: Sequence[float] | None, state: MaskState
    ) -> tuple[torch.Tensor, MaskState]:
        """:meth:`depthwise` of an input with padding and / or unobserved positions (see
        :mod:`ccnn_hf.masking`): unobserved positions are reconstructed by normalised averaging,
        padded ones are zero; returns the output and the state of its positions."""
        scale = tuple(self.input_scale(x) if scale is None else scale)
        kernel = self.kernel(scale, x.shape[2:])
        if state.certainty is not None:
            grid_scale = (1.0,) * self.data_dim if self.mode == "reference" else scale
            x, state = complete(x, kernel, state, grid_scale, self.causal)
        elif state.valid is not None:
            x = torch.where(state.valid, x, torch.zeros((), dtype=x.dtype, device=x.device))
        return self._convolve(x, kernel), state

    def depthwise_rows(self, x: torch.Tensor, scales: RowScales, state: MaskState) -> tuple[torch.Tensor, MaskState]:
        """:meth:`depthwise_masked` of a padded batch whose rows have their own scales (read as
        field of view, each at its real size): every group of rows through the kernel of its scale."""
        outputs, certainties = [], []
        for scale, rows in scales.groups:
            part = MaskState(*(None if m is None else m[rows] for m in (state.valid, state.certainty)))
            out, part_state = self.depthwise_masked(x[rows], scale, part)
            outputs.append(out)
            certainties.append(part_state.certainty)
        order = torch.argsort(torch.cat([rows for _, rows in scales.groups]))
        certainty = None
        if any(c is not None for c in certainties):  # a row without undefined positions: certain where real
            parts = zip(certainties, scales.groups)
            certainty = torch.cat([state.valid[rows].float() if c is None else c for c, (_, rows) in parts])[order]
        return torch.cat(outputs)[order], MaskState(state.valid, certainty)

    def _convolve(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        path = self.conv_path(x, kernel.shape)
        if path == "direct":
            return depthwise_conv_direct(x, kernel, self.bias, self.causal)
        if path == "fft":
            return depthwise_conv_fft(x, kernel, self.bias, self.causal, self._cached_spectrum(kernel, x))
        return depthwise_conv_fft_official_1d(x, kernel, self.bias, self.causal)

    def forward(
        self, x: torch.Tensor, scale: Sequence[float] | None = None, state: MaskState | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, MaskState]:
        """Convolve ``x [B, C, *L]``; ``scale`` (input / base resolution per axis) defaults to
        :meth:`input_scale`. With a :class:`~ccnn_hf.masking.MaskState` the convolution is
        mask-aware and returns ``(output, state of the output)``."""
        if state is None:
            return self.channel_mixer(self.depthwise(x, scale))
        if isinstance(scale, RowScales):
            out, state = self.depthwise_rows(x, scale, state)
        else:
            out, state = self.depthwise_masked(x, scale, state)
        return self.channel_mixer(out), state

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, data_dim={self.data_dim}, kernel_size={self.kernel_size}, "
            f"causal={self.causal}, mode={self.mode!r}"
        )
