"""The CCNN settings: one typed table that every entry point derives from.

Each :class:`Setting` names a field (its canonical spelling: the :class:`ccnn_hf.CCNN`
argument), its type, default, allowed values, accepted aliases, help and validation rule.
From :data:`SETTINGS` come:

* :class:`ccnn_hf.CCNN`'s keyword arguments, defaults and checks (:func:`resolve`);
* :class:`ccnn_hf.CCNNConfig`'s fields (``config_name``: transformers' spelling where it has one,
  ``num_channels`` for ``in_chans``) and :meth:`~ccnn_hf.CCNNConfig.from_preset` /
  :meth:`~ccnn_hf.CCNNConfig.ccnn_kwargs`;
* :func:`ccnn_hf.build_ccnn`'s and timm's aliases (:func:`canonical`);
* ``ccnn-train``'s model override flags (``flag``);
* the continuous convolutions' settings (``target="conv"``: passed to every
  :class:`ccnn_hf.SeparableContinuousConv`, whose keyword defaults are the table's) and the kernel
  generators' options (``target="kernel_net"``: passed as ``kernel_options`` to
  :func:`ccnn_hf.kernel_nets.build_kernel_net` under ``kernel_name``).

Adding a setting is one entry here plus its implementation. A kernel-generator setting needs
no plumbing at all: give it ``target="kernel_net"`` and accept the keyword in the generator.
No transformers or timm import (only the core's validation rules), so it also travels as
transformers remote code next to ``configuration_ccnn.py``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .validation import (
    Rule,
    flag_rule,
    integer_rule,
    is_integer,
    kernel_size_rule,
    normalisation_problems,
    one_of,
    real_rule,
)

__all__ = [
    "Setting",
    "SETTINGS",
    "BY_NAME",
    "ALIASES",
    "KERNEL_NETS",
    "MODES",
    "CONV_IMPLS",
    "INIT_SCHEMES",
    "DROPOUT_TYPES",
    "GLOBAL_POOLS",
    "MODALITIES",
    "LENGTH_SEMANTICS",
    "SINE_BANDS",
    "LEGACY_DEFAULTS",
    "DATA_DIMS",
    "MIN_SIZE",
    "canonical",
    "resolve",
    "named_values",
    "UnknownSettingError",
    "defaults",
    "model_settings",
    "config_settings",
    "override_flags",
    "fine_tuning_flags",
    "kernel_options",
    "conv_options",
    "read_as_duration",
    "signature",
    "settings_problems",
    "check_settings",
]

# Allowed values, defined once.
DATA_DIMS = (1, 2, 3)
# Fewest samples per axis a CCNN's base resolution (and ccnn-train's data) may have: the kernel's
# grid step is 2 / (size - 1), and one sample per axis leaves BatchNorm no variance.
MIN_SIZE = 2
KERNEL_NETS = ("magnet", "siren")
MODES = ("continuous", "reference")
CONV_IMPLS = ("auto", "fft", "direct")
INIT_SCHEMES = ("unit_variance", "official")
DROPOUT_TYPES = ("channel", "element")
GLOBAL_POOLS = ("avg", "max", "")
MISSING_VALUES = ("normalized", "zero_fill")
MODALITIES = ("image", "sequence", "audio", "tokens")
LENGTH_SEMANTICS = ("auto", "duration", "field_of_view")
SINE_BANDS = ("last_layer", "equal")
# The value a saved config that lacks a setting was written with: settings added after weights
# were released, whose default for new models differs from what those weights were trained with.
LEGACY_DEFAULTS = {"sine_band": "equal"}


@dataclass(frozen=True)
class Setting:
    """One CCNN setting.

    Attributes:
        name: canonical spelling (the :class:`ccnn_hf.CCNN` keyword).
        type: ``int``, ``float``, ``bool``, ``str``, ``"float?"`` (a float or None), ``"str?"``,
            ``"ints"`` (one int per axis), ``"floats?"`` (a list of floats or None) or
            ``"kernel_size"`` (``"same"``, an int or one int per axis).
        default: the value when not given.
        help: one line for documentation and ``ccnn-train --help``.
        rule: ``rule(name, value)`` -> a problem or None (derived from ``choices`` when omitted).
        choices: the allowed values, if a fixed set.
        aliases: other accepted spellings (``build_ccnn``, ``from_preset``, timm keywords).
        owner: ``"both"`` (CCNN argument and CCNNConfig field), ``"model"`` (CCNN only) or
            ``"config"`` (CCNNConfig only: data and heads of the transformers layer).
        config_name: the CCNNConfig attribute, when it differs from ``name``.
        flag: the ``ccnn-train`` override flag (without ``--``), if it has one.
        target: ``"kernel_net"``: the CCNN passes it to the kernel generator as ``kernel_name``;
            ``"conv"``: to every :class:`ccnn_hf.SeparableContinuousConv` under its own name.
        kernel_name: the generator's keyword (defaults to ``name``).
        fine_tuning: ``ccnn-train --init_from`` may change it (its ``flag``): it alters none of a
            checkpoint's tensors.
    """

    name: str
    type: Any
    default: Any
    help: str
    rule: Rule | None = None
    choices: tuple | None = None
    aliases: tuple[str, ...] = ()
    owner: str = "both"
    config_name: str | None = None
    flag: str | None = None
    target: str | None = None
    kernel_name: str | None = None
    fine_tuning: bool = False

    @property
    def field(self) -> str:
        """The CCNNConfig attribute."""
        return self.config_name or self.name

    def problem(self, value: Any, name: str | None = None) -> str | None:
        """What is wrong with ``value`` for this setting (None: nothing)."""
        check = self.rule or (one_of(*self.choices) if self.choices is not None else None)
        return None if check is None else check(name or self.name, value)

    def for_model(self, value: Any) -> Any:
        """``value`` as the CCNN holds it (tuples for per-axis values)."""
        if self.type in ("ints", "kernel_size") and isinstance(value, (list, tuple)):
            return tuple(int(v) for v in value)
        return value

    def for_config(self, value: Any) -> Any:
        """``value`` as a JSON-friendly config field (after validation: int(2.0) cannot hide 2.7)."""
        if value is None:
            return None
        if self.type in (int, float, bool):
            return self.type(value)
        if self.type == "float?":
            return float(value)
        if self.type in ("ints", "kernel_size") and isinstance(value, (list, tuple)):
            return [int(v) for v in value]
        if self.type == "floats?":
            return [float(v) for v in value]
        return value


def _optional_preset(name: str, value: Any) -> str | None:
    return None if value is None or isinstance(value, str) else f"{name} must be a preset name or None, got {value!r}"


def _related(name: str, value: Any) -> None:
    """No rule of its own: checked with the settings it relates to (see :func:`_relation_problems`)."""
    return None


SETTINGS: tuple[Setting, ...] = (
    # -- architecture ------------------------------------------------------------------------
    Setting("data_dim", int, 2, "number of spatial axes (1, 2 or 3)", choices=DATA_DIMS),
    Setting(
        "in_chans",
        int,
        3,
        "input channels",
        integer_rule(1),
        aliases=("in_channels", "num_channels"),
        config_name="num_channels",
    ),
    Setting(
        "num_classes",
        int,
        10,
        "classifier outputs (1: binary; 0: no classifier)",
        integer_rule(0),
        aliases=("out_channels", "num_labels"),
        owner="model",
    ),
    Setting(
        "hidden_channels",
        int,
        140,
        "width H of every block",
        integer_rule(1),
        aliases=("hidden", "width"),
        flag="hidden",
    ),
    Setting(
        "num_blocks", int, 4, "number of residual blocks", integer_rule(0), aliases=("blocks", "depth"), flag="blocks"
    ),
    # -- kernel generator ----------------------------------------------------------------------
    Setting("kernel_net", str, "magnet", "kernel generator", choices=KERNEL_NETS, target="conv"),
    Setting(
        "kernel_hidden",
        int,
        32,
        "generator width",
        integer_rule(1),
        aliases=("kernel_width",),
        flag="kernel_hidden",
        target="kernel_net",
        kernel_name="hidden_channels",
    ),
    Setting("kernel_layers", int, 3, "generator hidden layers", integer_rule(1), target="conv"),
    Setting(
        "omega_0",
        float,
        976.781,
        "generator frequency scale of the official initialisation (MAGNet uses it in reference mode only: in "
        "continuous mode its initial frequencies spread over the band the base grid can carry)",
        real_rule(0.0, None, low_open=True),
        flag="omega_0",
        target="kernel_net",
    ),
    Setting(
        "sine_band",
        str,
        "last_layer",
        "continuous mode: how the generator's sines share the base grid's band. 'last_layer': together up to "
        "the Nyquist frequency, 0.7 of it in the last Gabor layer (a factor of every product term), so the "
        "initial kernels cover the band; 'equal': together up to 0.6 x Nyquist, split equally among the "
        "layers (configs written before this setting existed: low-pass initial kernels that learn more slowly). "
        "SIREN bounds its first layer by the band's total (1 or 0.6 x Nyquist)",
        choices=SINE_BANDS,
        flag="sine_band",
        target="conv",
    ),
    # -- kernels and grid ------------------------------------------------------------------------
    Setting(
        "kernel_size",
        "kernel_size",
        33,
        "kernel taps at the base resolution: 'same', an int or one per axis",
        kernel_size_rule,
        flag="kernel_size",
    ),
    Setting("base_resolution", "ints", (32, 32), "input size per axis the model is native at", _related),
    Setting(
        "base_sampling_rate",
        "float?",
        None,
        "rate of rate-defined data (audio: Hz; tokens: 1.0)",
        real_rule(0.0, None, True, optional=True),
    ),
    Setting(
        "length_semantics",
        str,
        "auto",
        "what an input's size means without resolution= / sampling_rate=: 'duration' (each sample is one "
        "base step, so a longer or padded input is a longer signal), 'field_of_view' (the input spans the "
        "base field, so a larger input is a finer sampling; padded rows are read at their real size) or "
        "'auto' (duration for 1D, field_of_view for images and volumes); rate-defined models "
        "(base_sampling_rate) always read duration",
        choices=LENGTH_SEMANTICS,
    ),
    Setting(
        "causal",
        bool,
        False,
        "causal kernels (1D only): each output sees only the past (true) or a window centred on it (false)",
        flag_rule,
        flag="causal",
        target="conv",
    ),
    Setting(
        "mode",
        str,
        "continuous",
        "'continuous' (kernels follow the input resolution) or 'reference' (the official code's fixed kernel grid)",
        choices=MODES,
        flag="mode",
        target="conv",
    ),
    Setting(
        "mask_init",
        float,
        0.075,
        "initial Gaussian mask width",
        real_rule(0.0, None, low_open=True),
        flag="mask_init",
        target="conv",
    ),
    Setting(
        "mask_threshold", float, 0.1, "crop threshold of the mask", real_rule(0.0, 1.0, low_open=True), target="conv"
    ),
    # -- regularisation ------------------------------------------------------------------------
    Setting(
        "dropout",
        float,
        0.0,
        "dropout inside the blocks",
        real_rule(0.0, 1.0, low_open=False),
        flag="dropout",
        fine_tuning=True,
    ),
    Setting("dropout_type", str, "channel", "'channel' or 'element' dropout in the blocks", choices=DROPOUT_TYPES),
    Setting(
        "dropout_in",
        float,
        0.0,
        "element-wise dropout on the raw input",
        real_rule(0.0, 1.0, low_open=False),
        flag="dropout_in",
        fine_tuning=True,
    ),
    # -- convolution paths ---------------------------------------------------------------------
    Setting(
        "conv_impl",
        str,
        "auto",
        "continuous mode path: 'auto' (cost model), 'fft' or 'direct'",
        choices=CONV_IMPLS,
        flag="conv_impl",
        fine_tuning=True,
        target="conv",
    ),
    Setting("use_fft", bool, False, "reference mode: the official FFT switch", flag_rule, target="conv"),
    Setting(
        "fft_threshold", int, 50, "reference mode: FFT for kernels longer than this", integer_rule(0), target="conv"
    ),
    Setting(
        "legacy_odd_fft",
        bool,
        False,
        "reference mode: the official odd-length irfft behaviour",
        flag_rule,
        target="conv",
    ),
    # -- head, initialisation, checks ------------------------------------------------------------
    Setting("global_pool", str, "avg", "'avg', 'max' or '' (no pooling)", choices=GLOBAL_POOLS, owner="model"),
    Setting(
        "init_scheme",
        str,
        "unit_variance",
        "'unit_variance' (LSUV on a probe) or 'official'",
        choices=INIT_SCHEMES,
        flag="init_scheme",
    ),
    Setting("check_finite", bool, False, "raise on NaN/inf inputs", flag_rule, owner="model"),
    # -- missing values (see ccnn_hf.masking) ----------------------------------------------------
    Setting(
        "missing_values",
        str,
        "normalized",
        "unobserved values: 'normalized' (mask-aware normalised convolution) or 'zero_fill' (zeros plus the "
        "observed fraction as one extra input channel)",
        choices=MISSING_VALUES,
        flag="missing_values",
    ),
    Setting("nan_is_missing", bool, False, "treat NaN input values as unobserved", flag_rule),
    # -- transformers layer: data and heads ------------------------------------------------------
    Setting(
        "modality", str, "image", "which transformers head and processor apply", choices=MODALITIES, owner="config"
    ),
    Setting("vocab_size", int, 0, "token vocabulary (with use_token_embedding)", integer_rule(0), owner="config"),
    Setting(
        "use_token_embedding", bool, False, "embed token ids in front of a sequence model", flag_rule, owner="config"
    ),
    Setting("preset", "str?", None, "the preset the config came from", _optional_preset, owner="config"),
    Setting(
        "mean",
        "floats?",
        None,
        "per-channel input mean of the data pipeline",
        _related,
        aliases=("input_mean",),
        owner="config",
    ),
    Setting(
        "std",
        "floats?",
        None,
        "per-channel input standard deviation of the data pipeline",
        _related,
        aliases=("input_std",),
        owner="config",
    ),
    Setting(
        "initializer_factor",
        float,
        1.0,
        "scale of the heads' initial weights",
        real_rule(0.0, None, low_open=True),
        owner="config",
    ),
)

BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}
_BY_FIELD: Mapping[str, Setting] = {s.field: s for s in SETTINGS}
ALIASES: Mapping[str, str] = {alias: s.name for s in SETTINGS for alias in s.aliases}


def model_settings() -> tuple[Setting, ...]:
    """The :class:`ccnn_hf.CCNN` arguments, in order."""
    return tuple(s for s in SETTINGS if s.owner in ("both", "model"))


def config_settings() -> tuple[Setting, ...]:
    """The CCNNConfig fields (besides PretrainedConfig's own), in order."""
    return tuple(s for s in SETTINGS if s.owner in ("both", "config"))


def override_flags() -> dict[str, Setting]:
    """``ccnn-train`` flag -> setting, for the model overrides of a preset."""
    return {s.flag: s for s in SETTINGS if s.flag}


def fine_tuning_flags() -> tuple[str, ...]:
    """The ``ccnn-train`` flags that ``--init_from`` may change (settings with ``fine_tuning``)."""
    return tuple(s.flag for s in SETTINGS if s.fine_tuning and s.flag)


def defaults() -> dict[str, Any]:
    """Every CCNN argument at its default."""
    return {s.name: s.default for s in model_settings()}


def canonical(name: str) -> str:
    """The canonical name of a setting spelled ``name`` (an alias or a CCNNConfig field name)."""
    if name in BY_NAME:
        return name
    if name in ALIASES:
        return ALIASES[name]
    return _BY_FIELD[name].name if name in _BY_FIELD else name


class UnknownSettingError(TypeError, ValueError):
    """A setting name that no :class:`ccnn_hf.CCNN` argument has: a TypeError, as Python raises for
    an unexpected keyword argument, and a ValueError for callers that catch bad settings as one."""


def named_values(given: Mapping[str, Any], owner: str = "CCNN", aliases: bool = False) -> dict[str, Any]:
    """``given`` under the canonical :class:`ccnn_hf.CCNN` argument names (``aliases``: accept the other
    spellings of :data:`ALIASES` too). An unknown name raises :class:`UnknownSettingError`, a name
    given twice (under two spellings) a ValueError; values are not checked."""
    valid = {s.name for s in model_settings()}
    values: dict[str, Any] = {}
    for key, value in given.items():
        name = canonical(key) if aliases else key
        if name not in valid:
            raise UnknownSettingError(f"unknown {owner} setting {key!r}; valid settings: {', '.join(sorted(valid))}")
        if name in values:
            raise ValueError(f"{owner} setting {name!r} is given twice (as {key!r} and another spelling)")
        values[name] = value
    return values


def resolve(given: Mapping[str, Any], owner: str = "CCNN", aliases: bool = False) -> dict[str, Any]:
    """Every :class:`ccnn_hf.CCNN` argument: ``given`` (see :func:`named_values`) over the defaults,
    checked: an invalid value raises a ValueError. ``aliases``: accept the other spellings of
    :data:`ALIASES` too (CCNN itself takes the canonical names only)."""
    settings = {**defaults(), **named_values(given, owner, aliases)}
    check_settings(settings, owner)
    return {name: BY_NAME[name].for_model(value) for name, value in settings.items()}


def read_as_duration(data_dim: int, base_sampling_rate: float | None, length_semantics: str) -> bool:
    """Whether a model reads an input's size as duration (its step is the base step unless
    ``resolution=`` / ``sampling_rate=`` says otherwise) rather than as field of view (see the
    ``length_semantics`` setting)."""
    if base_sampling_rate is not None or length_semantics == "duration":
        return True
    return length_semantics == "auto" and data_dim == 1


def conv_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings every continuous convolution takes as they are (``target="conv"``)."""
    return {s.name: settings[s.name] for s in SETTINGS if s.target == "conv"}


def kernel_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings addressed to the kernel generator, under the generator's keywords."""
    return {s.kernel_name or s.name: settings[s.name] for s in SETTINGS if s.target == "kernel_net"}


def signature(settings: Iterable[Setting], var_keyword: bool = False, field_names: bool = False) -> inspect.Signature:
    """``(self, *, data_dim=2, in_chans=3, ...)``: the keyword-only signature of ``settings`` (with
    ``**kwargs`` when ``var_keyword``; under the CCNNConfig names when ``field_names``)."""
    annotations = {
        "ints": Sequence[int],
        "kernel_size": "int | str | Sequence[int]",
        "float?": "float | None",
        "str?": "str | None",
        "floats?": "Sequence[float] | None",
    }
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + [
        inspect.Parameter(
            s.field if field_names else s.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=s.default,
            annotation=annotations.get(s.type, s.type),
        )
        for s in settings
    ]
    if var_keyword:
        parameters.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD, annotation=Any))
    return inspect.Signature(parameters)


# -- validation: each setting's rule, then the rules that relate settings ------------------------


def _relation_problems(settings: Mapping[str, Any]) -> list[str]:
    """base_resolution per axis, causal 1D only, token embedding needs a vocabulary, statistics per channel."""
    problems = []
    data_dim = settings.get("data_dim")
    axes = data_dim if data_dim in DATA_DIMS else None
    if "base_resolution" in settings:
        base = settings["base_resolution"]
        if (
            not isinstance(base, (list, tuple))
            or (axes is not None and len(base) != axes)
            or not all(is_integer(r) and r >= MIN_SIZE for r in base)
        ):
            problems.append(
                f"base_resolution must hold {axes or data_dim!r} integer size(s) >= {MIN_SIZE} (one per axis: "
                f"a single sample has no grid step for the kernel), got {base!r}"
            )
    if settings.get("causal") is True and axes is not None and axes != 1:
        problems.append(f"causal kernels are only defined for data_dim=1, got data_dim={data_dim}")
    if settings.get("use_token_embedding") is True and settings.get("vocab_size", 0) in (0, None):
        problems.append("use_token_embedding needs vocab_size >= 1")
    channels = settings.get("num_channels", settings.get("in_chans"))
    return problems + normalisation_problems(settings.get("mean"), settings.get("std"), channels)


def settings_problems(settings: Mapping[str, Any]) -> list[str]:
    """Every problem with ``settings`` (CCNN arguments or CCNNConfig fields, by canonical or
    config name; unknown names are ignored), each naming the field, its value and what is allowed."""
    problems = []
    for name, value in settings.items():
        setting = BY_NAME.get(name) or _BY_FIELD.get(name)
        problem = None if setting is None else setting.problem(value, name)
        if problem is not None:
            problems.append(problem)
    return problems + _relation_problems(settings)


def check_settings(settings: Mapping[str, Any], owner: str) -> None:
    """Raise one ValueError listing every problem of ``settings`` (see :func:`settings_problems`)."""
    problems = settings_problems(settings)
    if problems:
        raise ValueError(f"invalid {owner}: " + "; ".join(problems))
