"""CCNN: the Continuous Convolutional Neural Network, in plain PyTorch.

Papers:
    D. W. Romero, D. M. Knigge, A. Gu, E. J. Bekkers, E. Gavves, J. M. Tomczak, M. Hoogendoorn.
    "Towards a General Purpose CNN for Long Range Dependencies in ND." ICML 2022 workshop /
    arXiv:2206.03398.
    D. M. Knigge, D. W. Romero, A. Gu, E. Gavves, E. J. Bekkers, J. M. Tomczak, M. Hoogendoorn,
    J.-J. Sonke. "Modelling Long Range Dependencies in ND: From Task-Specific to a General
    Purpose CNN." ICLR 2023 / arXiv:2301.10540.
Official code: github.com/david-knigge/ccnn (MIT). This is an independent re-implementation.

Layout (no downsampling, any number of spatial axes)::

    x -> Dropout(dropout_in) -> stem: SeparableContinuousConv(C_in -> H) -> BatchNorm -> GELU
      -> blocks: N x [x + GELU(Linear(Dropout(GELU(SeparableContinuousConv(BatchNorm(x))))))]
      -> norm: BatchNorm -> head: global mean over all positions -> Linear(H -> classes)

The module follows timm's model API (``forward_features``, ``forward_head``,
``reset_classifier``, ``num_features``, ``feature_info``, ``set_grad_checkpointing``)
without importing timm.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, Iterator, NamedTuple, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .continuous_conv import SeparableContinuousConv
from .continuous_kernel import refresh_kernel_plans
from .kernel_nets import pointwise_conv
from .masking import (
    MaskState,
    RowScales,
    masked_batch_norm,
    masked_pool,
    prepare_masks,
    real_size_scales,
    zero_fill_input,
)
from .presets import preset_model_kwargs
from .settings import (
    DROPOUT_TYPES,
    GLOBAL_POOLS,
    INIT_SCHEMES,
    check_settings,
    conv_options,
    kernel_options,
    model_settings,
    read_as_duration,
    resolve,
    signature,
)
from .checkpointing import updates_stats_once
from .validation import (
    call_scale,
    check_input,
    dtype_problems,
    refuse_checkpoint,
    resolve_kernel_size,
    value_problems,
)

__all__ = ["CCNN", "build_ccnn", "CCNNBlock", "CCNNStem", "CCNNHead", "INIT_SCHEMES", "MaskedFeatures", "Sampling"]

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CHANNEL_DROPOUTS = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def _dropout(data_dim: int, rate: float, kind: str) -> nn.Module:
    if kind == "channel":  # official Dropout2d (channel-wise; Dropout1d semantics on sequences)
        return _CHANNEL_DROPOUTS[data_dim - 1](rate)
    if kind == "element":
        return nn.Dropout(rate)
    raise ValueError(f"dropout_type must be one of {DROPOUT_TYPES}, got {kind!r}")


class CCNNStem(nn.Module):
    """Input layer: continuous conv ``C_in -> H``, BatchNorm, GELU."""

    def __init__(self, in_chans: int, channels: int, data_dim: int, conv_kwargs: dict) -> None:
        super().__init__()
        self.conv = SeparableContinuousConv(in_chans, channels, data_dim=data_dim, **conv_kwargs)
        self.norm = _BATCH_NORMS[data_dim - 1](channels)
        self.act = nn.GELU()

    def forward(
        self, x: torch.Tensor, scale: Sequence[float] | None = None, state: MaskState | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, MaskState]:
        """``state``: mask-aware mode (see :mod:`ccnn_hf.masking`); returns ``(output, state)`` then."""
        if state is None:
            return self.act(self.norm(self.conv(x, scale)))
        h, out_state = self.conv(x, scale, state)
        return self.act(masked_batch_norm(self.norm, h, state.valid)), out_state


class CCNNBlock(nn.Module):
    """S4-style pre-norm residual block of the official code.

    ``out = x + GELU(linear(dropout(GELU(conv(norm(x))))))`` - note the second GELU sits
    before the residual sum, exactly as in the official ``S4Block``.
    """

    def __init__(self, channels: int, data_dim: int, conv_kwargs: dict, dropout: float, dropout_type: str) -> None:
        super().__init__()
        self.norm = _BATCH_NORMS[data_dim - 1](channels)
        self.conv = SeparableContinuousConv(channels, channels, data_dim=data_dim, **conv_kwargs)
        self.act1 = nn.GELU()
        self.drop = _dropout(data_dim, dropout, dropout_type)
        self.linear = pointwise_conv(data_dim, channels, channels)
        self.act2 = nn.GELU()
        nn.init.kaiming_normal_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(
        self, x: torch.Tensor, scale: Sequence[float] | None = None, state: MaskState | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, MaskState]:
        """``state``: mask-aware mode (see :mod:`ccnn_hf.masking`); returns ``(output, state)`` then."""
        if state is None:
            h = self.act1(self.conv(self.norm(x), scale))
            return x + self.act2(self.linear(self.drop(h)))
        h, out_state = self.conv(masked_batch_norm(self.norm, x, state.valid), scale, state)
        return x + self.act2(self.linear(self.drop(self.act1(h)))), out_state


class CCNNHead(nn.Module):
    """Global pooling over every spatial position, then a linear classifier.

    ``pool_type``: ``"avg"`` (official), ``"max"``, or ``""`` (no pooling: the classifier is
    applied at every position and the output keeps its spatial axes).
    """

    def __init__(self, in_features: int, num_classes: int, pool_type: str = "avg") -> None:
        super().__init__()
        if pool_type not in GLOBAL_POOLS:
            raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got {pool_type!r}")
        self.pool_type = pool_type
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.kaiming_normal_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def pool(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Pool over every position, or over the real ones of ``valid [B, 1, *spatial]`` (bool)."""
        return masked_pool(x, valid, self.pool_type)

    def forward(self, x: torch.Tensor, pre_logits: bool = False, valid: torch.Tensor | None = None) -> torch.Tensor:
        x = self.pool(x, valid)
        if pre_logits:
            return x
        if x.ndim == 2:
            return self.fc(x)
        return torch.movedim(self.fc(torch.movedim(x, 1, -1)), -1, 1)  # per-position classifier


def _probe(batch: int, channels: int, size: Sequence[int]) -> torch.Tensor:
    """Fixed standard-normal probe: half white noise, half noise band-limited to half the Nyquist
    frequency (a smooth field). Smooth kernels answer smooth inputs with more gain than white
    ones; calibrating on both keeps either kind near unit variance. Own RNG: seeds stay untouched."""
    generator = torch.Generator().manual_seed(0)
    white = torch.randn(batch - batch // 2, channels, *size, dtype=torch.float32, generator=generator)
    spectrum = torch.randn(batch // 2, channels, *size, dtype=torch.complex64, generator=generator)
    for axis, n in enumerate(size):
        keep = torch.fft.fftfreq(n).abs() <= 0.25
        spectrum = spectrum * keep.view(*(1,) * (axis + 2), n, *(1,) * (len(size) - axis - 1))
    smooth = torch.fft.ifftn(spectrum, dim=tuple(range(2, 2 + len(size)))).real
    smooth = smooth / smooth.flatten(1).std(dim=1).clamp_min(1e-12).view(-1, *(1,) * (smooth.ndim - 1))
    return torch.cat([white, smooth])


@contextmanager
def _measured_in_float32(*modules: nn.Module) -> Iterator[None]:
    """Run the initialisation measurements in float32 and give every tensor its own dtype back
    (a model built under ``torch.set_default_dtype(torch.float16)`` is calibrated exactly, and
    FFTs have no half-precision CPU kernels)."""
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
    dtypes = [t.dtype for t in tensors]
    for t in tensors:
        t.data = t.data.float()
    try:
        yield
    finally:
        for t, dtype in zip(tensors, dtypes):
            t.data = t.data.to(dtype)


# Bounds of the initialisation probe (:meth:`CCNN._probe_batch`): probe samples x positions, and
# probe samples x positions x block width (the work of one 1x1 layer). Below both, eight samples.
PROBE_POSITIONS = 2**18
PROBE_WORK = 2**23


def _calibrate_classifier(fc: nn.Linear, pooled: torch.Tensor) -> None:
    """Scale ``fc`` so that the white and the smooth halves of the probe end equally far from
    unit logit RMS (their geometric mean is one)."""
    logits = fc(pooled) - fc.bias
    half = len(pooled) - len(pooled) // 2
    white, smooth = logits[:half].pow(2).mean().sqrt(), logits[half:].pow(2).mean().sqrt()
    fc.weight.div_((white * smooth).sqrt().clamp_min(1e-12))


def _channel_rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=(0, *range(2, x.ndim))).sqrt().clamp_min(1e-12)


def _calibrate_conv(conv: SeparableContinuousConv, x: torch.Tensor) -> torch.Tensor:
    """Scale kernel channels, then the channel mixer, to unit output RMS on ``x``; return the output.

    At initialisation the depthwise and mixer biases are zero, so outputs scale with the weights.
    """
    last = conv.kernel_net.output_linear
    depthwise = conv.depthwise(x)
    rms = _channel_rms(depthwise)
    last.weight.div_(rms.view(-1, *(1,) * (last.weight.ndim - 1)))
    last.bias.div_(rms)
    return _calibrate_linear(conv.channel_mixer, depthwise / rms.view(1, -1, *(1,) * (x.ndim - 2)))


def _calibrate_linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Scale a layer whose bias is zero (at initialisation) to unit output RMS on ``x``; return its output."""
    out = layer(x)
    rms = out.pow(2).mean().sqrt().clamp_min(1e-12)
    layer.weight.div_(rms)
    return out / rms


def resolve_input_scale(
    mode: str,
    data_dim: int,
    base_resolution: Sequence[int],
    base_sampling_rate: float | None,
    resolution: int | Sequence[int] | None = None,
    sampling_rate: float | None = None,
) -> tuple[float, ...] | None:
    """:meth:`CCNN.input_scale` as a plain function of the model's settings.

    A module-level function so that FX tracing can treat it as a leaf (timm's
    ``register_notrace_function``): ``resolution`` / ``sampling_rate`` are graph inputs then,
    and a traced model still honours them at run time.

    Both arguments are checked in every mode (see :func:`ccnn_hf.validation.call_scale`: numbers > 0
    within :data:`ccnn_hf.validation.MAX_SCALE` of the base, not both); reference mode then ignores them.
    """
    scale = call_scale(resolution, sampling_rate, base_resolution, base_sampling_rate)
    return None if mode == "reference" else scale


def refuse_masks_in_graph(
    x: torch.Tensor,
    attention_mask: torch.Tensor | None,
    observed_mask: torch.Tensor | None,
    timestamps: torch.Tensor | None,
) -> torch.Tensor:
    """Run time check of FX-traced CCNN graphs (a leaf of the trace; returns ``x`` so that the
    graph keeps it): they hold the mask-free computation (mask handling has data-dependent
    shapes and branches), so masks given to one are refused instead of ignored.
    ``nan_is_missing`` is not traced either."""
    given = [
        name
        for name, m in (
            ("attention_mask", attention_mask),
            ("observed_mask", observed_mask),
            ("timestamps", timestamps),
        )
        if m is not None
    ]
    if given:
        raise ValueError(
            f"this FX-traced CCNN graph was traced without masks and cannot take {', '.join(given)}; "
            "run the eager model for padded, partially observed or irregularly sampled inputs"
        )
    return x


torch.fx.wrap("refuse_masks_in_graph")


@dataclass(frozen=True)
class Sampling:
    """How an input was sampled: the forward arguments every entry point of :class:`CCNN` shares.

    ``resolution`` / ``sampling_rate``: the grid the input lies on, when its shape does not say it
    (see :meth:`CCNN.input_scale`); ``attention_mask``, ``observed_mask``, ``timestamps``: padding,
    missing values and irregular times (see :mod:`ccnn_hf.masking`). All None: a plain input on
    the grid its shape implies.
    """

    resolution: int | Sequence[int] | None = None
    sampling_rate: float | torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    observed_mask: torch.Tensor | None = None
    timestamps: torch.Tensor | None = None

    @property
    def masks(self) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        return self.attention_mask, self.observed_mask, self.timestamps

    def as_kwargs(self) -> dict[str, Any]:
        """The fields as forward keywords (tensors shared, not copied as ``dataclasses.asdict`` would)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class MaskedFeatures(NamedTuple):
    """:meth:`CCNN.encode_masked`: features, intermediates, and the real positions (None: all)."""

    features: torch.Tensor
    intermediates: list[torch.Tensor]
    valid: torch.Tensor | None


class CCNN(nn.Module):
    """Continuous CNN for inputs ``[B, C, *spatial]`` with 1, 2 or 3 spatial axes.

    Args:
        data_dim: number of spatial axes.
        in_chans: input channels.
        num_classes: classifier outputs (1 for binary tasks; 0 for no classifier).
        hidden_channels: width H of every block.
        num_blocks: number of residual blocks.
        kernel_net: kernel generator, ``"magnet"`` or ``"siren"``.
        kernel_hidden: generator width.
        kernel_layers: generator hidden layers.
        omega_0: generator frequency scale of the official initialisation (reference mode);
            in continuous mode MAGNet frequencies are instead spread over the band below the
            base grid's Nyquist frequency.
        kernel_size: kernel taps at the base resolution: ``"same"`` (as long as the base
            input, rounded up to odd for centred kernels), an int, or one int per axis.
        base_resolution: input size per axis the model is native at (training size).
        base_sampling_rate: for rate-defined data (audio: Hz; tokens: 1.0): inputs of any
            length are assumed at this rate unless ``sampling_rate=`` says otherwise.
        length_semantics: what an input's size means without ``resolution=``: ``"duration"``
            (the base step whatever the length), ``"field_of_view"`` (the input spans the base
            field: a larger one is finer; padded rows are read at their real size) or ``"auto"``
            (duration in 1D, field of view for images and volumes). :attr:`reads_duration` holds
            the outcome (always true for rate-defined models).
        causal: causal kernels (1D only).
        mode: ``"continuous"`` (default: kernels follow the input resolution) or
            ``"reference"`` (official behaviour, for converted weights).
        sine_band: continuous mode: ``"last_layer"`` (default: the generator's sines may use the
            base grid's whole band, most of it in the last Gabor layer, so initial kernels cover it)
            or ``"equal"`` (60 % of it shared equally: low-pass initial kernels; weights saved before
            this setting existed were trained so); see :mod:`ccnn_hf.continuous_kernel`.
        mask_init: initial Gaussian mask width.
        mask_threshold: crop threshold of the mask.
        dropout: dropout inside the blocks; ``dropout_type`` ``"channel"`` or ``"element"``.
        dropout_in: element-wise dropout on the raw input.
        conv_impl: continuous mode path selection: ``"auto"`` (cost model), ``"fft"``, ``"direct"``.
        use_fft: reference mode: the official FFT switch (kernels longer than ``fft_threshold``).
        fft_threshold: see ``use_fft``.
        legacy_odd_fft: reference mode: reproduce the official odd-length irfft behaviour.
        global_pool: ``"avg"``, ``"max"`` or ``""``.
        init_scheme: ``"unit_variance"`` (default; each conv's kernel is normalised on its
            base grid so that it preserves the variance of white input) or ``"official"``
            (the official Chang re-weighting by ``sqrt(1 / kernel_taps)`` only).
        check_finite: raise on NaN/inf inputs (costs one reduction per forward). Without it,
            a NaN/inf sample gives NaN logits for that sample only in eval mode; in train mode
            BatchNorm spreads it over the batch and into its running statistics. With masks,
            only the real, observed values are checked.
        missing_values: how unobserved values are handled (see :mod:`ccnn_hf.masking`):
            ``"normalized"`` (default; mask-aware normalised convolution) or ``"zero_fill"``
            (the baseline: zero-filled values plus the observed fraction as one extra input
            channel; the stem then has ``in_chans + 1`` input channels).
        nan_is_missing: treat NaN input values as unobserved (as if ``observed_mask`` said so).

    Padding, missing values and irregular sampling: every forward method takes the keyword
    arguments ``attention_mask`` (``[B, *spatial]``, 1 = real), ``observed_mask``
    (``[B, *spatial]`` or ``[B, C, *spatial]``, 1 = observed) and ``timestamps`` (``[B, L]``,
    in base-rate samples); their semantics and cost are in :mod:`ccnn_hf.masking`. Without them
    the computation is exactly the plain one.

    The arguments, their defaults and their rules are the table :data:`ccnn_hf.settings.SETTINGS`
    (shared with :class:`ccnn_hf.CCNNConfig`, :func:`ccnn_hf.build_ccnn`, timm and ``ccnn-train``):
    one ValueError lists each bad or unknown argument with its value; ``model.settings`` holds them all.

    Gradient checkpointing: :meth:`set_grad_checkpointing` (timm's switch) checkpoints every
    block in training. A subclass may instead build its blocks from a ``block_class`` that
    checkpoints itself (the transformers models use one that is a ``GradientCheckpointingLayer``).
    """

    block_class: type[CCNNBlock] = CCNNBlock  # subclasses may build their blocks from a subclass

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        settings = resolve(settings, "CCNN")  # defaults, then every rule of ccnn_hf.settings by name
        self.settings = settings  # every argument as resolved (a plain dict: models pickle and deepcopy)
        data_dim, hidden_channels = settings["data_dim"], settings["hidden_channels"]
        num_blocks = settings["num_blocks"]
        base_resolution, causal, base_sampling_rate = (
            settings["base_resolution"],
            settings["causal"],
            settings["base_sampling_rate"],
        )

        self.data_dim, self.in_chans, self.num_classes = data_dim, settings["in_chans"], settings["num_classes"]
        self.base_resolution, self.base_sampling_rate = base_resolution, base_sampling_rate
        self.mode, self.causal, self.check_finite = settings["mode"], causal, settings["check_finite"]
        self.missing_values, self.nan_is_missing = settings["missing_values"], settings["nan_is_missing"]
        self.length_semantics = settings["length_semantics"]
        # Duration: every layer reads an input at the base step (resolution= / sampling_rate= say otherwise).
        self.reads_duration = read_as_duration(data_dim, base_sampling_rate, self.length_semantics)
        self.num_features = self.head_hidden_size = hidden_channels
        self.drop_rate = settings["dropout"]
        self.grad_checkpointing = False
        self.kernel_size = resolve_kernel_size(settings["kernel_size"], base_resolution, causal)
        conv_kwargs = dict(
            kernel_size=self.kernel_size,
            base_resolution=None if self.reads_duration else base_resolution,
            kernel_options=kernel_options(settings),
            **conv_options(settings),
        )
        self.drop_in = nn.Dropout(settings["dropout_in"])
        self.stem = CCNNStem(
            self.in_chans + (self.missing_values == "zero_fill"), hidden_channels, data_dim, conv_kwargs
        )
        self.blocks = nn.Sequential(
            *(
                self.block_class(hidden_channels, data_dim, conv_kwargs, settings["dropout"], settings["dropout_type"])
                for _ in range(num_blocks)
            )
        )
        self.norm = _BATCH_NORMS[data_dim - 1](hidden_channels)
        self.head = CCNNHead(hidden_channels, self.num_classes, settings["global_pool"])
        self.feature_info = [dict(num_chs=hidden_channels, reduction=1, module="stem")] + [
            dict(num_chs=hidden_channels, reduction=1, module=f"blocks.{i}") for i in range(num_blocks)
        ]
        self.init_kernels(settings["init_scheme"])

    # -- initialisation ------------------------------------------------------------------
    def continuous_convs(self) -> list[SeparableContinuousConv]:
        return [m for m in self.modules() if isinstance(m, SeparableContinuousConv)]

    @torch.no_grad()
    def init_kernels(self, scheme: str = "unit_variance") -> None:
        """Explicit initialisation for the base resolution (no first-forward side effects).

        ``"official"``: multiply every generator's last layer by ``sqrt(1 / F)``, F = taps
        of the cropped base kernel (Chang et al. 2020; the official code does this lazily in
        the first forward). It assumes generator outputs of unit variance, but MAGNet's
        narrow Gaussian envelopes make them far smaller, so each conv shrinks its input
        (std x0.3-0.8), GELU halves it again, and the official init ends with logit
        standard deviations of 0.1-0.5 instead of 1.
        ``"unit_variance"``: after that, a layer-sequential unit-variance pass (LSUV,
        Mishkin & Matas 2016) on a fixed standard-normal probe at the base resolution
        (white and band-limited noise, see :func:`_probe`) rescales, in order, each conv's kernel
        channels and channel mixer, each block's 1x1 layer and the classifier to unit output RMS, so the logits have
        unit variance (about zero, as the zero-mean initial weights make it). Measuring rather than
        assuming a white input matters for band-limited kernels: smooth kernels applied to
        the smooth outputs of earlier layers have gains far above their white-noise gain.
        """
        convs = self.continuous_convs()
        if any(p.is_meta for p in self.parameters()):
            return  # weights will be loaded; nothing to measure on the meta device
        for conv in convs:
            conv.kernel_net.output_linear.weight.mul_(math.sqrt(1.0 / conv.base_taps()))
        if scheme == "unit_variance":
            with _measured_in_float32(self):
                self._lsuv()

    def _probe_batch(self) -> int:
        """Probe samples: eight where the probe is small, fewer (at least one white and one smooth)
        where its positions, or its positions times the width, would exceed :data:`PROBE_POSITIONS`
        or :data:`PROBE_WORK`. Each sample of a large input already gives every channel's RMS
        from tens of thousands of positions."""
        positions = math.prod(self.base_resolution)
        width = self.num_features
        return max(2, min(8, PROBE_POSITIONS // positions, PROBE_WORK // (positions * width)))

    def _lsuv(self) -> None:
        batch = self._probe_batch()
        was_training = self.training
        self.eval()
        x = _probe(batch, self.in_chans, self.base_resolution).to(self.norm.weight.device)
        if self.missing_values == "zero_fill":  # the probe is fully observed
            x = zero_fill_input(x, MaskState())[0]
        h = self.stem.act(self.stem.norm(_calibrate_conv(self.stem.conv, x)))
        for block in self.blocks:
            a = block.act1(_calibrate_conv(block.conv, block.norm(h)))
            h = h + block.act2(_calibrate_linear(block.linear, a))
        if self.num_classes > 0:
            _calibrate_classifier(self.head.fc, self.head(self.norm(h), pre_logits=True))
        self.train(was_training)

    @torch.no_grad()
    def init_classifier(self, fc: nn.Linear) -> None:
        """Initialise an external classifier on this backbone's pooled features like our own head
        (unit logit variance on the initialisation probe); used by the transformers heads."""
        nn.init.kaiming_normal_(fc.weight)
        nn.init.zeros_(fc.bias)
        if any(p.is_meta for p in self.parameters()) or fc.weight.is_meta:
            return
        was_training = self.training
        self.eval()
        x = _probe(self._probe_batch(), self.in_chans, self.base_resolution).to(self.norm.weight.device)
        with _measured_in_float32(self, fc):
            _calibrate_classifier(fc, self.head.pool(self.forward_features(x)))
        self.train(was_training)

    # -- resolution ----------------------------------------------------------------------
    def input_scale(
        self,
        x: torch.Tensor,
        resolution: int | Sequence[int] | None = None,
        sampling_rate: float | None = None,
    ) -> tuple[float, ...] | None:
        """Resolution of ``x`` relative to the base, per axis (None: let each layer read the shape).

        ``resolution``: the grid size the (full-field) input corresponds to, per axis.
        ``sampling_rate``: the input's rate, for rate-defined models (audio in Hz).
        """
        return resolve_input_scale(
            self.mode, self.data_dim, self.base_resolution, self.base_sampling_rate, resolution, sampling_rate
        )

    # -- kernel plans ----------------------------------------------------------------------
    def refresh_kernel_plan(self, scale: Sequence[float] | None = None) -> None:
        """Re-decide every conv's kernel grid (mask crop, taps) from the current mask widths, with
        one host read for all layers: for ``scale`` or, by default, for every input scale seen so far.

        Eager forwards do this by themselves when a mask width has changed (its parameter's
        version counter moved, or the parameter or its storage was replaced); writes through
        ``.data`` bypass the version counter, call this after them. A compiled or exported forward
        cannot read parameters on the host: call this after every optimizer step, and once at each input size before
        compiling or exporting (``ccnn-train --compile`` compiles the stem and blocks instead and keeps this
        method's caller, :meth:`encode`, eager, so plans follow by themselves).
        """
        refresh_kernel_plans(self.continuous_convs(), None if scale is None else [tuple(float(s) for s in scale)])

    def set_static_kernel_shapes(self, enable: bool = True) -> None:
        """Sample every continuous kernel on its whole grid, uncropped (see
        :meth:`SeparableContinuousConv.set_static_kernel_shape`): kernel shapes then stay fixed
        while mask widths learn, as compiled graphs need. ``ccnn-train --compile`` turns it on."""
        for conv in self.continuous_convs():
            conv.set_static_kernel_shape(enable)

    def _prepare_kernel_plans(self, x: torch.Tensor, scale: Sequence[float] | None) -> None:
        """Eager mode: bring stale kernel plans for this input up to date with one host read.
        (Compiled and FX-traced graphs skip this; under FX the convs are leaves and plan for themselves.)"""
        if torch.compiler.is_compiling() or isinstance(x, torch.fx.Proxy):
            return
        convs = self.continuous_convs()
        if not convs:  # e.g. ccnn_hf.freeze replaced them with fixed kernels
            return
        if isinstance(scale, RowScales):
            scales = [group_scale for group_scale, _ in scale.groups]
        else:
            scales = [tuple(scale) if scale is not None else convs[0].input_scale(x)]
        size = tuple(x.shape[2:])
        stale = [conv for conv in convs if not all(conv.plan_is_current(s, size) for s in scales)]
        if stale:
            refresh_kernel_plans(stale, scales, size)

    # -- timm-style API ------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier (``num_classes=0``: none) and optionally the pooling; the new head
        takes the device, dtype and train / eval mode of the model."""
        pool = self.head.pool_type if global_pool is None else global_pool
        check_settings({"num_classes": num_classes, "global_pool": pool}, "reset_classifier arguments")
        reference = self.stem.norm.weight
        self.num_classes = num_classes
        self.head = CCNNHead(self.num_features, num_classes, pool)
        self.head.to(device=reference.device, dtype=reference.dtype).train(self.training)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` after refusing tensors of another kind than the model's
        (an int32 weight for a float parameter would be cast without a word), NaN or infinite
        values and impossible mask widths (:func:`~ccnn_hf.validation.value_problems`), by name; every
        loading path of the core and of timm (``pretrained=True``, ``checkpoint_path=``) ends here."""
        stored = {key: value.dtype for key, value in state_dict.items() if isinstance(value, torch.Tensor)}
        expected = {key: value.dtype for key, value in self.state_dict().items()}
        refuse_checkpoint("the state dict", dtype_problems(stored, expected) + value_problems(state_dict))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @property
    def global_pool(self) -> str:
        return self.head.pool_type

    def encode(
        self,
        x: torch.Tensor,
        resolution: int | Sequence[int] | None = None,
        sampling_rate: float | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        observed_mask: torch.Tensor | None = None,
        timestamps: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Features after the final norm, and the outputs of the stem and of every block (zero on
        padded positions; on the timestamp grid when ``timestamps`` are given)."""
        sampling = Sampling(resolution, sampling_rate, attention_mask, observed_mask, timestamps)
        features, intermediates, _ = self.encode_masked(x, sampling)
        return features, intermediates

    def encode_masked(self, x: torch.Tensor, sampling: Sampling = Sampling()) -> MaskedFeatures:
        """:meth:`encode` of an input sampled as ``sampling`` says, plus the real positions of the
        features (``valid [B, 1, *spatial]`` bool, None when all are real), which
        :meth:`CCNNHead.pool` takes to pool over them only."""
        if not isinstance(sampling, Sampling):
            raise TypeError(
                f"encode_masked takes a Sampling (ccnn_hf.ccnn.Sampling(resolution, sampling_rate, attention_mask, "
                f"observed_mask, timestamps)), got {type(sampling).__name__}"
            )
        return MaskedFeatures(*self._encode(x, sampling))

    def forward_features(
        self,
        x: torch.Tensor,
        resolution: int | Sequence[int] | None = None,
        sampling_rate: float | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        observed_mask: torch.Tensor | None = None,
        timestamps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Unpooled features ``[B, H, *spatial]`` after the final norm."""
        sampling = Sampling(resolution, sampling_rate, attention_mask, observed_mask, timestamps)
        return self.encode_masked(x, sampling).features

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(
        self,
        x: torch.Tensor,
        resolution: int | Sequence[int] | None = None,
        sampling_rate: float | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        observed_mask: torch.Tensor | None = None,
        timestamps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, num_classes]`` (``[B, 1]`` for binary tasks); pooled over the real
        positions only when an ``attention_mask`` (or ``timestamps``) says which they are."""
        sampling = Sampling(resolution, sampling_rate, attention_mask, observed_mask, timestamps)
        features, _, valid = self.encode_masked(x, sampling)
        return self.forward_head(features) if valid is None else self.head(features, valid=valid)

    # -- timm feature API (forward_intermediates / prune_intermediate_layers / group_matcher) --
    def _feature_indices(self, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
        """timm's ``feature_take_indices`` over the feature points (0: stem, i: block i - 1):
        None: all; an int n: the last n; a sequence: those (negative counts from the end)."""
        count = len(self.blocks) + 1
        if indices is None:
            indices = count
        if isinstance(indices, int):
            if not 0 < indices <= count:
                raise ValueError(f"last-n ({indices}) is out of range (1 to {count})")
            take = list(range(count - indices, count))
        else:
            take = []
            for i in indices:
                index = count + i if i < 0 else i
                if not 0 <= index < count:
                    raise ValueError(f"feature index {index} is out of range (0 to {count - 1})")
                take.append(index)
        return take, max(take)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
        resolution: int | Sequence[int] | None = None,
        sampling_rate: float | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        observed_mask: torch.Tensor | None = None,
        timestamps: torch.Tensor | None = None,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's intermediate-feature API: the outputs of the stem (index 0) and of the blocks
        (1..N), all ``[B, C, *spatial]`` at the input's size (CCNN never downsamples).

        Args:
            indices: None: all; an int n: the last n; a sequence: those indices.
            norm: apply the final norm to the last block's output when it is taken.
            stop_early: stop after the last block needed.
            output_fmt: ``"NCHW"`` (channels first, whatever the number of spatial axes).
            intermediates_only: return the list only.
            resolution, sampling_rate: as in :meth:`forward`.
            attention_mask, observed_mask, timestamps: see :mod:`ccnn_hf.masking`.

        Returns:
            The list of intermediates, or ``(final features, intermediates)``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"CCNN features are channels first; output_fmt must be 'NCHW', got {output_fmt!r}")
        sampling = Sampling(resolution, sampling_rate, attention_mask, observed_mask, timestamps)
        final, intermediates, _ = self._encode(x, sampling, indices=indices, norm=norm, stop_early=stop_early)
        return intermediates if intermediates_only else (final, intermediates)

    def _encode(
        self,
        x: torch.Tensor,
        sampling: Sampling,
        *,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """(final features, intermediates, real positions or None) of :meth:`forward_intermediates`."""
        take, max_index = self._feature_indices(indices)
        masks = sampling.masks
        if isinstance(x, torch.fx.Proxy):  # an FX graph holds the mask-free computation
            x = refuse_masks_in_graph(x, *masks)
            masks = (None, None, None)
        masked = (any(m is not None for m in masks) or self.nan_is_missing) and not isinstance(x, torch.fx.Proxy)
        check_input(x, self.data_dim, self.in_chans, self.check_finite and not masked, self.stem.norm.weight.dtype)
        scale = self.input_scale(x, sampling.resolution, sampling.sampling_rate)
        state = MaskState()
        if masked:
            grid_rate = 1.0 if scale is None else float(scale[0])
            x, state = prepare_masks(
                x, *masks, nan_is_missing=self.nan_is_missing, check_finite=self.check_finite, grid_rate=grid_rate
            )
            if masks[2] is not None and self.mode == "continuous":  # the grid's step is 1 / grid_rate base samples
                scale = (grid_rate,)
            elif scale is None and state.valid is not None and not self.reads_duration and self.mode == "continuous":
                scale = real_size_scales(state.valid, self.base_resolution)  # each row at its real size
        if self.missing_values == "zero_fill":
            x, state = zero_fill_input(x, state)
        return self._run_blocks(x, take, max_index, norm, stop_early, scale, state if state.active else None)

    def _run_blocks(
        self,
        x: torch.Tensor,
        take: list[int],
        max_index: int,
        norm: bool,
        stop_early: bool,
        scale: Sequence[float] | None,
        state: MaskState | None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """The stem and the blocks of :meth:`_encode`; with a mask ``state`` (padding or unobserved
        positions, see :mod:`ccnn_hf.masking`) each layer takes and returns it, the final norm counts
        the real positions only and every output is zero elsewhere."""
        valid = None if state is None else state.valid

        def output(h: torch.Tensor, normed: bool) -> torch.Tensor:
            if state is None:
                return self.norm(h) if normed else h
            h = masked_batch_norm(self.norm, h, valid) if normed else h
            return h if valid is None else torch.where(valid, h, torch.zeros((), dtype=h.dtype, device=h.device))

        def run(layer: nn.Module, h: torch.Tensor, masks: tuple, checkpointed: bool = False) -> tuple:
            """``layer`` on ``h`` (and the mask state in ``masks``, empty without one): (output, masks after)."""
            args = (h, scale, *masks)
            out = (
                checkpoint(updates_stats_once(layer, layer), *args, use_reentrant=False)
                if checkpointed
                else layer(*args)
            )
            return (out, ()) if state is None else (out[0], (out[1],))

        self._prepare_kernel_plans(x, scale)
        checkpointed = self.grad_checkpointing and self.training and not torch.jit.is_scripting()
        last = len(self.blocks)
        h, masks = run(self.stem, self.drop_in(x), () if state is None else (state,))
        intermediates = [output(h, norm and last == 0)] if 0 in take else []
        blocks = self.blocks[:max_index] if stop_early else self.blocks
        index = 0
        for index, block in enumerate(blocks, start=1):
            h, masks = run(block, h, masks, checkpointed)
            if index in take:
                intermediates.append(output(h, norm and index == last))
        return output(h, index == last), intermediates, valid

    def prune_intermediate_layers(
        self,
        indices: int | Sequence[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop the blocks after the last feature point needed (and the norm / head); returns
        the absolute indices kept (timm's ``FeatureGetterNet`` calls this)."""
        take, max_index = self._feature_indices(indices)
        prune_end = max_index < len(self.blocks)
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        if prune_norm or prune_end:
            self.norm = nn.Identity()  # sized for, and only applied to, the last block's output
        self.blocks = self.blocks[:max_index]
        return take

    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups for timm's layer-wise learning-rate decay / optimizer factory."""
        return dict(stem=r"^stem", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])


CCNN.__init__.__signature__ = signature(model_settings())  # help(CCNN) and inspect show every setting


def build_ccnn(preset: str, *, mode: str = "continuous", **overrides: Any) -> CCNN:
    """Build the CCNN of a named preset (see :data:`ccnn_hf.PRESETS`).

    Args:
        preset: e.g. ``"cifar10_4_140"`` or ``"smnist_6_380"``.
        mode: ``"continuous"`` (kernels follow the input resolution) or ``"reference"``
            (the official behaviour; use it for converted official weights).
        **overrides: any :class:`~ccnn_hf.CCNN` setting, also under the aliases of
            :data:`ccnn_hf.settings.ALIASES` (``hidden`` / ``width``, ``blocks`` / ``depth``,
            ``in_channels``, ``out_channels`` / ``num_labels``, ``kernel_width``).
    """
    return CCNN(**preset_model_kwargs(preset, mode=mode, **overrides))
