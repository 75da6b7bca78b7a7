"""transformers configuration of CCNN models (``model_type="ccnn"``)."""
from __future__ import annotations

import inspect
from typing import Any, Sequence

from transformers import PretrainedConfig

from .presets import get_preset
from .validation import check_settings

__all__ = ["CCNNConfig"]

_AUTO_MAP = {
    "AutoConfig": "configuration_ccnn.CCNNConfig",
    "AutoModel": "modeling_ccnn.CCNNModel",
    "AutoModelForImageClassification": "modeling_ccnn.CCNNForImageClassification",
    "AutoModelForSequenceClassification": "modeling_ccnn.CCNNForSequenceClassification",
    "AutoModelForAudioClassification": "modeling_ccnn.CCNNForAudioClassification",
}


# timm architectures of 2D image CCNNs (registered by ccnn_hf.timm_models): name -> the preset
# whose settings are the architecture's defaults. Kept here, in plain Python, because this file
# also travels as remote code (transformers and torch only).
TIMM_ARCHITECTURES = {"ccnn_2d": "cifar10_4_140", "ccnn_2d_4_140": "cifar10_4_140", "ccnn_2d_6_380": "cifar10_6_380"}
TIMM_FIRST_CONV = "stem.conv.channel_mixer"
TIMM_CLASSIFIER = "head.fc"
TIMM_PAPER_IDS = ("arXiv:2206.03398", "arXiv:2301.10540")
TIMM_PAPER_NAME = ("Towards a General Purpose CNN for Long Range Dependencies in ND; "
                   "Modelling Long Range Dependencies in ND: From Task-Specific to a General Purpose CNN")
TIMM_ORIGIN_URL = "https://github.com/david-knigge/ccnn"


def _check_model_type(model_type: str | None) -> None:
    """Refuse a config dict of another model type; name the usual cause (a ``config.json``
    without ``model_type``, which transformers takes for a timm checkpoint: ``timm_wrapper``)."""
    if model_type in (None, CCNNConfig.model_type):
        return
    hint = (" config.json has no \"model_type\", so transformers took the folder for a timm checkpoint (its "
            "\"pretrained_cfg\"); add \"model_type\": \"ccnn\" to config.json, or load it with "
            "timm.create_model(\"local-dir:<folder>\") after import ccnn_hf") if model_type == "timm_wrapper" else ""
    raise ValueError(f"a CCNN config needs model_type 'ccnn', got {model_type!r}.{hint}")


def _renamed(kwargs: dict[str, Any], old: str, value: Any) -> Any:
    """A field under its deprecated name (``input_mean`` / ``input_std``, in configs written by
    earlier versions) when the new name is not given; the old name never stays in the config."""
    legacy = kwargs.pop(old, None)
    if legacy is not None and value is not None and list(legacy) != list(value):
        new = old.removeprefix("input_")
        raise ValueError(f"invalid CCNNConfig: {new}={list(value)!r} and its former name {old}={list(legacy)!r} "
                         f"disagree; keep {new} only")
    return legacy if value is None else value


class CCNNConfig(PretrainedConfig):
    """Configuration of a Continuous CNN.

    Every argument of :class:`ccnn_hf.CCNN` is a field, with transformers' names where they
    exist (``num_channels`` for the input channels, ``num_labels`` for the classes).
    ``mean`` / ``std`` are the per-channel normalisation the data pipeline applies (timm's
    names; the processors read them). Earlier versions called them ``input_mean`` /
    ``input_std``: those names are still read (deprecated; transformers' tooling takes any
    field containing ``_std`` for an initialiser scale). ``base_resolution`` /
    ``base_sampling_rate`` say where the weights are native; override them at load time
    (``from_pretrained(path, base_resolution=[64, 64])``) to declare another resolution as native. ``vocab_size`` > 0 with ``use_token_embedding=True`` adds a token
    embedding in front of sequence models; the official LRA models instead read raw token ids
    as floats in one channel (``use_token_embedding=False``). ``initializer_factor`` scales the
    initial weights of the heads' classifier and token embedding (keep it at 1; transformers' own
    tests set it near zero to tell initialised weights from loaded ones, as for T5).
    ``missing_values`` (``"normalized"`` or the ``"zero_fill"`` baseline, which adds one input
    channel to the stem) and ``nan_is_missing`` say how unobserved values are handled (see
    :mod:`ccnn_hf.masking`).

    Example:
        >>> config = CCNNConfig.from_preset("cifar10_4_140", num_labels=10)
        >>> config = CCNNConfig.from_preset("smnist_4_140", hidden_channels=64, num_blocks=2)
    """

    model_type = "ccnn"

    def __init__(
        self,
        data_dim: int = 2,
        num_channels: int = 3,
        hidden_channels: int = 140,
        num_blocks: int = 4,
        kernel_net: str = "magnet",
        kernel_hidden: int = 32,
        kernel_layers: int = 3,
        omega_0: float = 976.781,
        kernel_size: int | str | Sequence[int] = 33,
        base_resolution: Sequence[int] = (32, 32),
        base_sampling_rate: float | None = None,
        causal: bool = False,
        mode: str = "continuous",
        mask_init: float = 0.075,
        mask_threshold: float = 0.1,
        dropout: float = 0.0,
        dropout_type: str = "channel",
        dropout_in: float = 0.0,
        conv_impl: str = "auto",
        use_fft: bool = False,
        fft_threshold: int = 50,
        legacy_odd_fft: bool = False,
        init_scheme: str = "unit_variance",
        modality: str = "image",
        vocab_size: int = 0,
        use_token_embedding: bool = False,
        preset: str | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        initializer_factor: float = 1.0,
        missing_values: str = "normalized",
        nan_is_missing: bool = False,
        **kwargs: Any,
    ) -> None:
        mean, std = _renamed(kwargs, "input_mean", mean), _renamed(kwargs, "input_std", std)
        check_settings(locals(), "CCNNConfig")  # as given: int() / float() below would hide 2.7 or a string
        self.data_dim = int(data_dim)
        self.num_channels = int(num_channels)
        self.hidden_channels = int(hidden_channels)
        self.num_blocks = int(num_blocks)
        self.kernel_net = kernel_net
        self.kernel_hidden = int(kernel_hidden)
        self.kernel_layers = int(kernel_layers)
        self.omega_0 = float(omega_0)
        self.kernel_size = kernel_size if isinstance(kernel_size, (int, str)) else list(kernel_size)
        self.base_resolution = [int(r) for r in base_resolution]
        self.base_sampling_rate = None if base_sampling_rate is None else float(base_sampling_rate)
        self.causal = bool(causal)
        self.mode = mode
        self.mask_init = float(mask_init)
        self.mask_threshold = float(mask_threshold)
        self.dropout = float(dropout)
        self.dropout_type = dropout_type
        self.dropout_in = float(dropout_in)
        self.conv_impl = conv_impl
        self.use_fft = bool(use_fft)
        self.fft_threshold = int(fft_threshold)
        self.legacy_odd_fft = bool(legacy_odd_fft)
        self.init_scheme = init_scheme
        self.modality = modality
        self.vocab_size = int(vocab_size)
        self.use_token_embedding = bool(use_token_embedding)
        self.preset = preset
        self.mean = [0.0] * self.num_channels if mean is None else [float(v) for v in mean]
        self.std = [1.0] * self.num_channels if std is None else [float(v) for v in std]
        self.initializer_factor = float(initializer_factor)
        self.missing_values = missing_values
        self.nan_is_missing = bool(nan_is_missing)
        _check_model_type(kwargs.pop("model_type", None))
        kwargs.setdefault("auto_map", dict(_AUTO_MAP))
        super().__init__(**kwargs)
        if self.id2label and not getattr(self, "label2id", None):
            self.label2id = {label: index for index, label in self.id2label.items()}

    def validate_ccnn(self) -> None:
        """Raise a ValueError naming every invalid field, its value and the allowed values
        (the rules of :class:`ccnn_hf.CCNN`, see :mod:`ccnn_hf.validation`); the models call it,
        so fields changed after construction are checked too."""
        fields = [name for name in inspect.signature(CCNNConfig.__init__).parameters if name not in ("self", "kwargs")]
        check_settings({name: getattr(self, name) for name in fields}, "CCNNConfig")

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> "CCNNConfig":
        """Configuration of a named preset (``ccnn_hf.PRESETS``) with overrides.

        ``num_labels`` defaults to the preset's classes; ``mean`` / ``std`` to the
        preset's data statistics, or, for another ``num_channels``, to none (0 / 1) unless given.
        Binary presets (one logit) use ``problem_type="multi_label_classification"`` (a single
        sigmoid output, trained with BCE as the official code did).
        """
        p = get_preset(preset)
        model = dict(p.model)
        fields = dict(
            data_dim=model["data_dim"], num_channels=model["in_chans"], hidden_channels=model["hidden_channels"],
            num_blocks=model["num_blocks"], kernel_net=model["kernel_net"], kernel_hidden=model["kernel_hidden"],
            kernel_layers=model["kernel_layers"], omega_0=model["omega_0"], kernel_size=model["kernel_size"],
            base_resolution=list(model["base_resolution"]), base_sampling_rate=model["base_sampling_rate"],
            causal=model["causal"], mask_init=model["mask_init"], mask_threshold=model["mask_threshold"],
            dropout=model["dropout"], dropout_type=model["dropout_type"], dropout_in=model["dropout_in"],
            use_fft=model["use_fft"], modality=p.modality, preset=preset, num_labels=model["num_classes"],
            mean=list(p.mean), std=list(p.std),
        )
        if model["num_classes"] == 1:
            fields["problem_type"] = "multi_label_classification"
        aliases = {"in_chans": "num_channels", "in_channels": "num_channels", "num_classes": "num_labels",
                   "hidden": "hidden_channels", "blocks": "num_blocks", "kernel_width": "kernel_hidden",
                   "input_mean": "mean", "input_std": "std"}  # the last two: names of earlier versions
        for key, value in overrides.items():
            fields[aliases.get(key, key)] = value
        if fields["num_channels"] != model["in_chans"]:  # the preset's statistics describe its own channels
            given = {aliases.get(key, key) for key in overrides}
            fields.update({name: None for name in ("mean", "std") if name not in given})
        return cls(**fields)

    def ccnn_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the plain-PyTorch :class:`ccnn_hf.CCNN` backbone (no classifier)."""
        return dict(
            data_dim=self.data_dim, in_chans=self.num_channels, num_classes=0, hidden_channels=self.hidden_channels,
            num_blocks=self.num_blocks, kernel_net=self.kernel_net, kernel_hidden=self.kernel_hidden,
            kernel_layers=self.kernel_layers, omega_0=self.omega_0,
            kernel_size=self.kernel_size if isinstance(self.kernel_size, (int, str)) else tuple(self.kernel_size),
            base_resolution=tuple(self.base_resolution), base_sampling_rate=self.base_sampling_rate,
            causal=self.causal, mode=self.mode, mask_init=self.mask_init, mask_threshold=self.mask_threshold,
            dropout=self.dropout, dropout_type=self.dropout_type, dropout_in=self.dropout_in,
            conv_impl=self.conv_impl, use_fft=self.use_fft, fft_threshold=self.fft_threshold,
            legacy_odd_fft=self.legacy_odd_fft, init_scheme=self.init_scheme,
            missing_values=self.missing_values, nan_is_missing=self.nan_is_missing,
        )

    def timm_fields(self, num_classes: int | None = None) -> dict[str, Any]:
        """timm's keys for a ``config.json`` shared with transformers (empty unless a 2D image model).

        ``architecture`` is a registered ``ccnn_2d*`` name; ``model_args`` holds ``in_chans``,
        ``num_classes`` and every :class:`ccnn_hf.CCNN` setting that differs from the preset
        behind that architecture (:data:`TIMM_ARCHITECTURES`), so that
        ``timm.create_model("hf-hub:<repo>", pretrained=True)`` rebuilds exactly this network.
        ``pretrained_cfg`` describes the data: input size = ``base_resolution``, ``mean`` /
        ``std``, no crop. ``num_classes`` overrides ``num_labels`` (0 for a backbone).
        Plain Python: no timm import.
        """
        if self.data_dim != 2 or self.modality != "image":
            return {}
        num_classes = self.num_labels if num_classes is None else int(num_classes)
        sized = f"ccnn_2d_{self.num_blocks}_{self.hidden_channels}"
        architecture = sized if sized in TIMM_ARCHITECTURES else "ccnn_2d"

        def plain(value: Any) -> Any:
            return list(value) if isinstance(value, (tuple, list)) else value

        base = type(self).from_preset(TIMM_ARCHITECTURES[architecture]).ccnn_kwargs()
        model_args: dict[str, Any] = dict(in_chans=self.num_channels, num_classes=num_classes)
        for key, value in self.ccnn_kwargs().items():
            if key not in ("in_chans", "num_classes") and plain(value) != plain(base[key]):
                model_args[key] = plain(value)
        size = [int(r) for r in self.base_resolution]
        id2label = self.id2label or {}
        label_names = [id2label.get(i, f"LABEL_{i}") for i in range(num_classes)] if id2label else None
        pretrained_cfg = dict(
            custom_load=False, input_size=[self.num_channels, *size], fixed_input_size=False,
            interpolation="bicubic", crop_pct=1.0, crop_mode="center",
            mean=list(self.mean), std=list(self.std), num_classes=num_classes,
            pool_size=size, first_conv=TIMM_FIRST_CONV, classifier=TIMM_CLASSIFIER, license="mit",
            description=f"CCNN_{{{self.num_blocks},{self.hidden_channels}}}" + (f" ({self.preset})" if self.preset else ""),
            origin_url=TIMM_ORIGIN_URL, paper_name=TIMM_PAPER_NAME, paper_ids=list(TIMM_PAPER_IDS),
        )
        fields = dict(architecture=architecture, num_classes=num_classes, num_features=self.hidden_channels,
                      global_pool="avg", model_args=model_args, pretrained_cfg=pretrained_cfg)
        if label_names:
            fields["label_names"] = label_names
        return fields
