"""Kernel generator networks: map relative positions to depthwise kernel values.

A kernel generator takes a grid of positions ``[1, D, *K]`` (coordinates in [-1, 1],
channel ``d`` holding the coordinate along spatial axis ``d``) and returns kernel values
``[1, C, *K]``. Linear maps are 1x1 convolutions acting on the channel axis, exactly as in
the official CCNN code (github.com/david-knigge/ccnn, MIT), so that converted weights keep
their shapes and float32 rounding.

* :class:`MAGNet` - Multiplicative Anisotropic Gabor Network (Romero et al., FlexConv, 2022).
* :class:`SIREN` - sine MLP (Sitzmann et al., 2020), offered as an alternative generator.

Band limiting (continuous mode): when ``max_frequency`` is given (angular frequency per
spatial axis, in radians per coordinate unit), every sine frequency of a MAGNet layer is
squashed smoothly into ``(-B_l, B_l)``, the layers' bounds summing to ``max_frequency``: equal
(``max_frequency / (no_layers + 1)``), or with ``last_layer_share`` of it in the last layer, and when
``max_gamma`` is given every envelope's inverse width into ``(-G, G)``. A MAGNet output is
a sum of products of one Gabor term from each of its ``no_layers + 1`` layers: a Gaussian
(spectral width ``sqrt(sum gamma^2)``) centred on the frequency ``sum +-w``. Bounding both
bounds the spectrum of every product term, so the kernel carries (essentially) nothing the
base grid cannot represent.

Precision: generators are always created in float32 (:data:`GENERATOR_DTYPE`), whatever
``torch.get_default_dtype()`` says: their sine frequencies reach ~1e5 rad per unit, which half
precision would ruin (and the Gamma sampling of the envelopes has no half-precision kernel).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .settings import KERNEL_NETS

__all__ = ["GaborFilter", "MAGNet", "SIREN", "build_kernel_net", "KERNEL_NETS", "GENERATOR_DTYPE"]

GENERATOR_DTYPE = torch.float32


def pointwise_conv(
    data_dim: int, in_channels: int, out_channels: int, bias: bool = True, dtype: torch.dtype | None = None
) -> nn.Module:
    """A 1x1 convolution, i.e. a linear map over channels of a ``[B, C, *spatial]`` tensor
    (``dtype``: of its parameters; None: the default dtype)."""
    conv_cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[data_dim - 1]
    return conv_cls(in_channels, out_channels, kernel_size=1, bias=bias, dtype=dtype)


def _conv_nd(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return (F.conv1d, F.conv2d, F.conv3d)[x.ndim - 3](x, weight, bias)


class GaborFilter(nn.Module):
    """One anisotropic Gabor layer: ``exp(-0.5 * sum_d (gamma_d (x_d - mu_d))^2) * sin(W x + b)``.

    Args:
        data_dim: number of coordinate axes D.
        hidden_channels: number of Gabor filters (output channels).
        omega_0: frequency scale of the official initialisation (``W *= 2 pi omega_0 gamma``).
        alpha: shape of the Gamma distribution of ``gamma`` (the official code divides the
            base alpha by ``layer + 1``).
        beta: rate of that Gamma distribution.
        init_spatial_value: spread of the Gaussian centres ``mu`` at initialisation.
        causal: centres start near the causal end (+1) instead of around 0.
        max_frequency: per-axis bound on the sine frequencies (continuous mode), or None.
        max_gamma: per-axis bound on the envelope's inverse width (continuous mode), or None.
    """

    def __init__(
        self,
        data_dim: int,
        hidden_channels: int,
        omega_0: float,
        alpha: float,
        beta: float,
        init_spatial_value: float,
        causal: bool,
        max_frequency: Sequence[float] | None = None,
        max_gamma: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.data_dim = data_dim
        self.max_frequency = None if max_frequency is None else tuple(float(f) for f in max_frequency)
        self.max_gamma = None if max_gamma is None else tuple(float(g) for g in max_gamma)
        fp32 = dict(dtype=GENERATOR_DTYPE)
        if causal and init_spatial_value != 1.0:
            mu = 1.0 - init_spatial_value * torch.rand(hidden_channels, data_dim, **fp32)
        else:
            mu = init_spatial_value * (2 * torch.rand(hidden_channels, data_dim, **fp32) - 1)
        self.mu = nn.Parameter(mu)
        gamma = torch._standard_gamma(torch.full((hidden_channels, data_dim), float(alpha), **fp32)) / beta
        if self.max_gamma is not None:  # keep the initial widths inside the bound, away from saturation
            gamma = gamma * (torch.tensor(self.max_gamma, **fp32) / (2 * alpha / beta)).clamp(max=1.0)
        self.gamma = nn.Parameter(gamma)
        self.linear = pointwise_conv(data_dim, data_dim, hidden_channels, **fp32)
        with torch.no_grad():
            if self.max_frequency is None:
                self.linear.weight.mul_(2 * math.pi * omega_0 * self.gamma.view(*self.gamma.shape, *(1,) * data_dim))
            else:
                # Spread the initial frequencies over the whole allowed band (before squashing).
                bound = torch.tensor(self.max_frequency, **fp32).view(1, data_dim, *(1,) * data_dim)
                self.linear.weight.uniform_(-1.0, 1.0).mul_(bound)
            self.linear.bias.zero_()

    def frequencies(self) -> torch.Tensor:
        """Sine frequencies ``W`` ``[H, D, 1...]`` actually used (squashed when band-limited)."""
        weight = self.linear.weight
        if self.max_frequency is None:
            return weight
        bound = weight.new_tensor(self.max_frequency).view(1, self.data_dim, *(1,) * self.data_dim)
        return bound * torch.tanh(weight / bound)

    def inverse_widths(self) -> torch.Tensor:
        """Envelope inverse widths ``gamma`` ``[H, D]`` actually used (squashed when band-limited)."""
        if self.max_gamma is None:
            return self.gamma
        bound = self.gamma.new_tensor(self.max_gamma)
        return bound * torch.tanh(self.gamma / bound)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:  # [1, D, *K] -> [1, H, *K]
        shape = (1, *self.mu.shape, *(1,) * self.data_dim)  # [1, H, D, 1...]
        gamma = self.inverse_widths().view(shape)
        envelope = torch.exp(-0.5 * ((gamma * (positions.unsqueeze(1) - self.mu.view(shape))) ** 2).sum(2))
        return envelope * torch.sin(_conv_nd(positions, self.frequencies(), self.linear.bias))


class MAGNet(nn.Module):
    """Multiplicative Anisotropic Gabor Network, as in the official CCNN code.

    ``z_0 = g_0(x)``; ``z_i = g_i(x) * (A_i z_{i-1} + c_i)`` for ``i = 1..L``; output
    ``y = output_linear(z_L)``. ``L = no_layers`` hidden linears, ``L + 1`` Gabor filters.

    Args:
        data_dim: number of coordinate axes D.
        out_channels: kernel channels produced (the conv's input channels when separable).
        hidden_channels: width of the generator.
        no_layers: number of hidden linear layers L.
        omega_0: frequency scale of the official initialisation.
        alpha, beta: Gamma distribution of the Gaussian envelopes' inverse widths.
        init_spatial_value: spread of the envelope centres (1.667 x mask width in CCNN).
        causal: causal kernels (1D): envelope centres start near +1.
        max_frequency: per-axis bound on the total sine frequency (continuous mode) or None.
        max_gamma: per-axis bound on every envelope's inverse width (continuous mode) or None.
        last_layer_share: the share of ``max_frequency`` that bounds the last Gabor layer, the
            others sharing the rest equally; None: all layers share it equally. The last layer is a
            factor of every product term (the hidden layers' bias of 1 passes the shorter
            products on), so a large share lets the initial frequencies, spread over each
            layer's band, cover the whole band instead of piling up near zero.
    """

    def __init__(
        self,
        data_dim: int,
        out_channels: int,
        hidden_channels: int = 32,
        no_layers: int = 3,
        omega_0: float = 1.0,
        alpha: float = 6.0,
        beta: float = 1.0,
        init_spatial_value: float = 1.0,
        causal: bool = False,
        max_frequency: Sequence[float] | None = None,
        max_gamma: Sequence[float] | None = None,
        last_layer_share: float | None = None,
    ) -> None:
        super().__init__()
        # Creation order follows the official code so a seeded init draws the same numbers.
        self.linears = nn.ModuleList(
            pointwise_conv(data_dim, hidden_channels, hidden_channels, dtype=GENERATOR_DTYPE) for _ in range(no_layers)
        )
        self.output_linear = pointwise_conv(data_dim, hidden_channels, out_channels, dtype=GENERATOR_DTYPE)
        bounds = [None] * (no_layers + 1)  # per layer: its per-axis frequency bound
        if max_frequency is not None and last_layer_share is None:
            bounds = [[f / (no_layers + 1) for f in max_frequency]] * (no_layers + 1)
        elif max_frequency is not None:
            if not 0.0 < last_layer_share < 1.0:
                raise ValueError(f"last_layer_share must be in (0, 1), got {last_layer_share!r}")
            first = [f * (1.0 - last_layer_share) / no_layers for f in max_frequency]
            bounds = [first] * no_layers + [[f * last_layer_share for f in max_frequency]]
        self.filters = nn.ModuleList(
            GaborFilter(
                data_dim,
                hidden_channels,
                omega_0,
                alpha / (layer + 1),
                beta,
                init_spatial_value,
                causal,
                bound,
                max_gamma,
            )
            for layer, bound in enumerate(bounds)
        )
        for lin in self.linears:
            nn.init.kaiming_uniform_(lin.weight, nonlinearity="linear")
            nn.init.constant_(lin.bias, 1.0)
        nn.init.kaiming_uniform_(self.output_linear.weight, nonlinearity="linear")
        nn.init.zeros_(self.output_linear.bias)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:  # [1, D, *K] -> [1, C, *K]
        out = self.filters[0](positions)
        for gabor, linear in zip(self.filters[1:], self.linears):
            out = gabor(positions) * linear(out)
        return self.output_linear(out)


class SIREN(nn.Module):
    """Sine-activated MLP kernel generator (Sitzmann et al. 2020), with 1x1 convolutions.

    In continuous mode the first layer's frequencies are squashed into ``(-max_frequency,
    max_frequency)`` like MAGNet's; deeper sines can still create harmonics, so SIREN is
    only approximately band-limited.
    """

    def __init__(
        self,
        data_dim: int,
        out_channels: int,
        hidden_channels: int = 32,
        no_layers: int = 3,
        omega_0: float = 30.0,
        max_frequency: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.data_dim = data_dim
        self.omega_0 = float(omega_0)
        self.max_frequency = None if max_frequency is None else tuple(float(f) for f in max_frequency)
        self.first = pointwise_conv(data_dim, data_dim, hidden_channels, dtype=GENERATOR_DTYPE)
        self.linears = nn.ModuleList(
            pointwise_conv(data_dim, hidden_channels, hidden_channels, dtype=GENERATOR_DTYPE)
            for _ in range(no_layers - 1)
        )
        self.output_linear = pointwise_conv(data_dim, hidden_channels, out_channels, dtype=GENERATOR_DTYPE)
        with torch.no_grad():
            self.first.weight.uniform_(-1.0 / data_dim, 1.0 / data_dim)
            for lin in self.linears:
                bound = math.sqrt(6.0 / hidden_channels) / self.omega_0
                lin.weight.uniform_(-bound, bound)
            nn.init.kaiming_uniform_(self.output_linear.weight, nonlinearity="linear")
            for lin in (self.first, *self.linears, self.output_linear):
                lin.bias.zero_()

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        weight = self.omega_0 * self.first.weight
        if self.max_frequency is not None:
            bound = weight.new_tensor(self.max_frequency).view(1, self.data_dim, *(1,) * self.data_dim)
            weight = bound * torch.tanh(weight / bound)
        out = torch.sin(_conv_nd(positions, weight, self.omega_0 * self.first.bias))
        for lin in self.linears:
            out = torch.sin(self.omega_0 * lin(out))
        return self.output_linear(out)


_GENERATORS: dict[str, type[nn.Module]] = {"magnet": MAGNet, "siren": SIREN}  # keys: settings.KERNEL_NETS


def build_kernel_net(
    kind: str,
    *,
    data_dim: int,
    out_channels: int,
    no_layers: int,
    init_spatial_value: float,
    causal: bool,
    max_frequency: Sequence[float] | None,
    max_gamma: Sequence[float] | None,
    last_layer_share: float | None = None,
    **options: Any,
) -> nn.Module:
    """Instantiate a kernel generator by name (see :data:`KERNEL_NETS`).

    ``options``: the generator settings of :mod:`ccnn_hf.settings` (``target="kernel_net"``, e.g.
    ``hidden_channels``, ``omega_0``). Each generator takes the keywords its constructor names,
    of these and of the conv-derived ones (SIREN has no envelopes: no ``init_spatial_value``,
    ``causal``, ``max_gamma`` or ``last_layer_share``).
    """
    if kind not in _GENERATORS:
        raise ValueError(f"unknown kernel generator {kind!r}; choose one of {KERNEL_NETS}")
    generator = _GENERATORS[kind]
    given = dict(
        data_dim=data_dim,
        out_channels=out_channels,
        no_layers=no_layers,
        init_spatial_value=init_spatial_value,
        causal=causal,
        max_frequency=max_frequency,
        max_gamma=max_gamma,
        last_layer_share=last_layer_share,
        **options,
    )
    accepted = inspect.signature(generator).parameters
    return generator(**{key: value for key, value in given.items() if key in accepted})
