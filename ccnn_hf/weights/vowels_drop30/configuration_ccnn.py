"""transformers configuration of CCNN models (``model_type="ccnn"``)."""

from __future__ import annotations

import os
from typing import Any

from transformers import PretrainedConfig

from .presets import get_preset, preset_model_kwargs
from .timm_config import TIMM_ARCHITECTURES
from .settings import BY_NAME, LEGACY_DEFAULTS, canonical, check_settings, config_settings, signature

__all__ = ["AUTO_MAP", "CCNNConfig"]

# the Auto classes a saved folder names, each in the code files saved beside it
AUTO_MAP = {
    "AutoConfig": "configuration_ccnn.CCNNConfig",
    "AutoModel": "modeling_ccnn.CCNNModel",
    "AutoModelForImageClassification": "modeling_ccnn.CCNNForImageClassification",
    "AutoModelForSequenceClassification": "modeling_ccnn.CCNNForSequenceClassification",
    "AutoModelForAudioClassification": "modeling_ccnn.CCNNForAudioClassification",
}


def _check_model_type(model_type: str | None, architecture: Any) -> None:
    """Refuse a config dict of another model type. A ``config.json`` without ``model_type`` that
    carries timm's ``pretrained_cfg`` reaches here as ``timm_wrapper`` (transformers' guess for a timm
    checkpoint): it is a CCNN config when its timm ``architecture`` is a CCNN one, and loads."""
    if model_type in (None, CCNNConfig.model_type):
        return
    if model_type == "timm_wrapper" and architecture in TIMM_ARCHITECTURES:
        return
    hint = (
        (
            ' config.json has no "model_type", so transformers took the folder for a timm checkpoint (its '
            '"pretrained_cfg"); add "model_type": "ccnn" to config.json'
        )
        if model_type == "timm_wrapper"
        else ""
    )
    raise ValueError(f"a CCNN config needs model_type 'ccnn', got {model_type!r}.{hint}")


def _renamed(kwargs: dict[str, Any], old: str, value: Any) -> Any:
    """A field under its deprecated name (``input_mean`` / ``input_std``, in configs written by
    earlier versions) when the new name is not given; the old name never stays in the config."""
    legacy = kwargs.pop(old, None)
    if legacy is not None and value is not None and list(legacy) != list(value):
        new = old.removeprefix("input_")
        raise ValueError(
            f"invalid CCNNConfig: {new}={list(value)!r} and its former name {old}={list(legacy)!r} "
            f"disagree; keep {new} only"
        )
    return legacy if value is None else value


class CCNNConfig(PretrainedConfig):
    """Configuration of a Continuous CNN.

    The fields are the settings of :data:`ccnn_hf.settings.SETTINGS` that a config holds (every
    :class:`ccnn_hf.CCNN` argument but ``num_classes``, ``global_pool`` and ``check_finite``, plus the
    data and head fields below), with their defaults and rules, under transformers' names where they
    exist (``num_channels`` for the input channels, ``num_labels`` for the classes).
    ``mean`` / ``std`` are the per-channel normalisation the data pipeline applies (timm's
    names; the processors read them). Earlier versions called them ``input_mean`` /
    ``input_std``: those names are still read (deprecated; transformers' tooling takes any
    field containing ``_std`` for an initialiser scale). ``base_resolution`` /
    ``base_sampling_rate`` say where the weights are native; override them at load time
    (``from_pretrained(path, base_resolution=[64, 64])``) to declare another resolution as native.
    ``vocab_size`` > 0 with ``use_token_embedding=True`` adds a token embedding in front of
    sequence models; the official LRA models instead read raw token ids as floats in one channel
    (``use_token_embedding=False``). ``initializer_factor`` scales the initial weights of the heads' classifier and
    token embedding (keep it at 1; transformers' own tests set it near zero to tell initialised weights from loaded
    ones, as for T5).
    ``missing_values`` (``"normalized"`` or the ``"zero_fill"`` baseline, which adds one input
    channel to the stem) and ``nan_is_missing`` say how unobserved values are handled (see
    :mod:`ccnn_hf.masking`).

    Example:
        >>> config = CCNNConfig.from_preset("cifar10_4_140", num_labels=10)
        >>> config = CCNNConfig.from_preset("smnist_4_140", hidden_channels=64, num_blocks=2)
    """

    model_type = "ccnn"

    def __init__(self, **kwargs: Any) -> None:
        for old in ("input_mean", "input_std"):
            new = old.removeprefix("input_")
            kwargs[new] = _renamed(kwargs, old, kwargs.get(new))
        fields = {s.field: kwargs.pop(s.field, s.default) for s in config_settings()}
        check_settings(fields, "CCNNConfig")  # as given: int() / float() below would hide 2.7 or a string
        for setting in config_settings():
            setattr(self, setting.field, setting.for_config(fields[setting.field]))
        self.mean = [0.0] * self.num_channels if self.mean is None else self.mean
        self.std = [1.0] * self.num_channels if self.std is None else self.std
        _check_model_type(kwargs.pop("model_type", None), kwargs.get("architecture"))
        kwargs.setdefault("auto_map", dict(AUTO_MAP))
        super().__init__(**kwargs)
        if self.id2label and not getattr(self, "label2id", None):
            self.label2id = {label: index for index, label in self.id2label.items()}

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> "CCNNConfig":
        """transformers' ``from_dict`` (what ``from_pretrained`` reads a ``config.json`` with); a
        saved config that lacks a setting added since (:data:`ccnn_hf.settings.LEGACY_DEFAULTS`)
        gets the value its weights were trained with, not the default of new models."""
        missing = {k: v for k, v in LEGACY_DEFAULTS.items() if k not in config_dict and k not in kwargs}
        return super().from_dict({**config_dict, **missing}, **kwargs)

    @classmethod
    def from_json_file(cls, json_file: str | os.PathLike) -> "CCNNConfig":
        """transformers' ``from_json_file``, with :meth:`from_dict`'s values for the fields that an
        earlier version did not write."""
        return cls.from_dict(cls._dict_from_json_file(json_file))

    def validate_ccnn(self) -> None:
        """Raise a ValueError naming every invalid field, its value and the allowed values
        (the rules of :mod:`ccnn_hf.settings`, shared with :class:`ccnn_hf.CCNN`); the models call it,
        so fields changed after construction are checked too."""
        check_settings({s.field: getattr(self, s.field) for s in config_settings()}, "CCNNConfig")

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> "CCNNConfig":
        """Configuration of a named preset (``ccnn_hf.PRESETS``) with overrides.

        An override is a CCNN setting under any spelling :func:`ccnn_hf.build_ccnn` takes
        (``width`` / ``hidden``, ``depth`` / ``blocks``, ``in_chans`` / ``in_channels`` /
        ``num_channels``, ``num_classes`` / ``num_labels``...), applied exactly as ``build_ccnn``
        applies it, a config field (``modality``, ``mean``...) or a ``PretrainedConfig`` argument.
        ``num_labels`` defaults to the preset's classes; ``mean`` / ``std`` to the
        preset's data statistics, or, for another ``num_channels``, to none (0 / 1) unless given.
        Binary presets (one logit) use ``problem_type="multi_label_classification"`` (a single
        sigmoid output, trained with BCE as the official code did).
        """
        p = get_preset(preset)
        model_overrides: dict[str, Any] = {}
        others: dict[str, Any] = {}
        for key, value in overrides.items():
            setting = BY_NAME.get(canonical(key))
            if setting is None or setting.owner == "config":
                others[setting.field if setting else key] = value
            elif setting.owner == "model" and setting.name != "num_classes":
                raise ValueError(
                    f"{key!r} is a CCNN argument that CCNNConfig does not hold (the transformers "
                    "models fix it); pass it to ccnn_hf.CCNN or build_ccnn instead"
                )
            else:
                model_overrides[key] = value
        model = preset_model_kwargs(preset, **model_overrides)
        fields = {s.field: model[s.name] for s in config_settings() if s.name in model}
        fields.update(
            modality=p.modality, preset=preset, num_labels=model["num_classes"], mean=list(p.mean), std=list(p.std)
        )
        if p.model["num_classes"] == 1:  # a binary preset (as before any override)
            fields["problem_type"] = "multi_label_classification"
        if model["in_chans"] != p.model["in_chans"]:  # the preset's statistics describe its own channels
            fields.update(mean=None, std=None)
        return cls(**{**fields, **others})

    def ccnn_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the plain-PyTorch :class:`ccnn_hf.CCNN` backbone (no classifier)."""
        held = {s.name: s.for_model(getattr(self, s.field)) for s in config_settings() if s.owner == "both"}
        return {**held, "num_classes": 0}


# help(CCNNConfig) and inspect show every field with its default (then PretrainedConfig's **kwargs)
CCNNConfig.__init__.__signature__ = signature(config_settings(), var_keyword=True, field_names=True)
