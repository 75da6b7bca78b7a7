"""The settings table (ccnn_hf.settings) and what derives from it agree with each other."""

from __future__ import annotations

import copy
import inspect
import pickle

import pytest
import torch

from ccnn_hf import CCNN, CCNNConfig, SeparableContinuousConv, build_ccnn
from ccnn_hf.kernel_nets import build_kernel_net
from ccnn_hf.presets import PRESETS, preset_model_kwargs
from ccnn_hf.settings import (
    ALIASES,
    BY_NAME,
    KERNEL_NETS,
    SETTINGS,
    UnknownSettingError,
    config_settings,
    defaults,
    fine_tuning_flags,
    model_settings,
    override_flags,
    resolve,
    settings_problems,
)
from ccnn_hf.training.args import MODEL_OVERRIDES, build_parser

TINY = dict(hidden_channels=8, num_blocks=1, kernel_hidden=8)


def test_every_default_passes_its_own_rule_and_names_are_unique():
    names = [s.name for s in SETTINGS] + list(ALIASES)
    assert len(names) == len(set(names)), "a name is used twice (setting or alias)"
    problems = [p for s in SETTINGS for p in [s.problem(s.default)] if p]
    assert not problems
    assert not settings_problems({s.name: s.default for s in SETTINGS})


def test_ccnn_signature_and_defaults_come_from_the_table():
    parameters = dict(inspect.signature(CCNN).parameters)
    assert list(parameters) == [s.name for s in model_settings()]
    assert {name: p.default for name, p in parameters.items()} == defaults()
    model = CCNN(**TINY)
    assert dict(model.settings) == resolve(TINY)
    assert model.settings["omega_0"] == BY_NAME["omega_0"].default


def test_every_conv_setting_reaches_every_conv_with_the_tables_default(monkeypatch):
    """The settings with ``target="conv"`` are the convolution's keywords, with the table's defaults,
    and a CCNN hands each of them to every one of its convolutions."""
    parameters = inspect.signature(SeparableContinuousConv).parameters
    conv_names = [s.name for s in SETTINGS if s.target == "conv"]
    for name in [*conv_names, "kernel_hidden", "omega_0"]:
        assert parameters[name].default == BY_NAME[name].default, name
    received = []
    original = SeparableContinuousConv.__init__

    def recording(self, *args, **kwargs):
        received.append(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(SeparableContinuousConv, "__init__", recording)
    model = CCNN(**TINY, mask_threshold=0.2, conv_impl="direct", fft_threshold=7)
    assert len(received) == len(model.continuous_convs()) == 2
    for kwargs in received:
        assert {name: kwargs[name] for name in conv_names} == {name: model.settings[name] for name in conv_names}


def test_the_settings_fine_tuning_may_change_alter_no_tensor():
    """``ccnn-train --init_from`` lets these flags change a checkpoint's settings: the model still has
    the checkpoint's tensors (names, shapes, dtypes), so every one of them loads."""
    assert set(fine_tuning_flags()) == {"dropout", "dropout_in", "conv_impl"}
    reference = CCNN(**TINY).state_dict()
    for flag in fine_tuning_flags():
        setting = override_flags()[flag]
        other = {str: lambda c: next(v for v in setting.choices if v != c), float: lambda c: 0.5}[setting.type]
        state = CCNN(**TINY, **{setting.name: other(setting.default)}).state_dict()
        assert [(k, v.shape, v.dtype) for k, v in state.items()] == [
            (k, v.shape, v.dtype) for k, v in reference.items()
        ], flag


def test_a_model_with_its_settings_record_copies_and_pickles():
    model = CCNN(**TINY)
    assert copy.deepcopy(model).settings == model.settings
    assert pickle.loads(pickle.dumps(model)).settings == model.settings


def test_ccnn_takes_canonical_names_only_and_names_the_unknown_ones():
    with pytest.raises(TypeError, match="unknown CCNN setting 'width'"):
        CCNN(width=8)
    # The factories name an unknown setting the same way, as a TypeError that is also a ValueError.
    with pytest.raises(UnknownSettingError, match="unknown CCNN setting 'widht'") as error:
        build_ccnn("cifar10_4_140", widht=8)
    assert isinstance(error.value, TypeError) and isinstance(error.value, ValueError)
    with pytest.raises(UnknownSettingError, match="unknown CCNN setting 'widht'"):
        preset_model_kwargs("cifar10_4_140", widht=8)
    with pytest.raises(ValueError, match="kernel_net must be one of \\('magnet', 'siren'\\), got 'gabor'"):
        CCNN(kernel_net="gabor", **TINY)


def test_config_from_preset_honours_every_spelling_like_build_ccnn():
    config = CCNNConfig.from_preset("cifar10_4_140", width=64, depth=2, in_channels=1)
    assert (config.hidden_channels, config.num_blocks, config.num_channels) == (64, 2, 1)
    assert not hasattr(config, "width") and not hasattr(config, "depth")
    assert config.mean == [0.0] and config.std == [1.0]  # the preset's statistics are for 3 channels
    model = build_ccnn("cifar10_4_140", width=64, depth=2, in_channels=1)
    kwargs = config.ccnn_kwargs()
    assert {k: v for k, v in kwargs.items() if k != "num_classes"} == {
        k: v for k, v in dict(model.settings).items() if k in kwargs and k != "num_classes"
    }
    with pytest.raises(ValueError, match="given twice"):
        CCNNConfig.from_preset("cifar10_4_140", width=64, hidden_channels=32)
    with pytest.raises(ValueError, match="'global_pool' is a CCNN argument that CCNNConfig does not hold"):
        CCNNConfig.from_preset("cifar10_4_140", global_pool="max")


def test_config_fields_are_the_config_settings_and_round_trip(tmp_path):
    config = CCNNConfig.from_preset("smnist_4_140", hidden=16, kernel_size=9)
    for setting in config_settings():
        assert hasattr(config, setting.field), setting.field
    config.save_pretrained(tmp_path)
    loaded = CCNNConfig.from_pretrained(tmp_path)
    assert {s.field: getattr(loaded, s.field) for s in config_settings()} == {
        s.field: getattr(config, s.field) for s in config_settings()
    }


def test_presets_are_named_settings():
    for preset in PRESETS.values():
        assert set(preset.model) <= {s.name for s in model_settings()}, preset.name
        assert not settings_problems(dict(preset.model)), preset.name
    assert preset_model_kwargs("cifar10_4_140", depth=2)["num_blocks"] == 2


def _other_value(setting, current):
    """A valid value of ``setting`` other than ``current``, as typed on a command line."""
    if setting.choices is not None:
        return next(str(c) for c in setting.choices if c != current)
    if setting.type is bool:
        return str(not current)
    if setting.type is int:
        return str(current + 1)
    return repr(current / 2 if current else 0.25)


def test_every_model_flag_reaches_the_model_config():
    """Each model flag of ``ccnn-train`` (a setting with a flag) changes its own field of the
    configuration the trainer builds, and nothing else of the preset's."""
    from ccnn_hf.training.args import parse_args
    from ccnn_hf.data.tasks import load_task_data
    from ccnn_hf.training.model import _config_from_preset

    task = load_task_data("digits_seq")
    base = ["--preset", "smnist_4_140", "--dataset", "digits_seq", "--kernel_size", "same"]
    plain = _config_from_preset(parse_args(base), task).to_dict()
    assert MODEL_OVERRIDES["hidden"] == "hidden_channels" and MODEL_OVERRIDES["blocks"] == "num_blocks"
    for flag, field in MODEL_OVERRIDES.items():
        if flag == "kernel_size":  # resolved against the data's length (tests/test_train_cli.py)
            continue
        value = _other_value(BY_NAME[field], plain[field])
        config = _config_from_preset(parse_args([*base, f"--{flag}", value]), task).to_dict()
        changed = {k for k in plain if config.get(k) != plain[k]}
        assert changed == {field}, (flag, value, changed)


def test_cli_flags_are_the_settings_with_a_flag():
    actions = {a.dest: a for a in build_parser()._actions}
    for flag, setting in override_flags().items():
        assert flag in actions, flag
        if setting.choices is not None:
            assert list(actions[flag].choices) == list(setting.choices)


def test_every_allowed_kernel_net_can_be_built():
    for kind in KERNEL_NETS:
        net = build_kernel_net(
            kind,
            data_dim=1,
            out_channels=2,
            no_layers=2,
            init_spatial_value=0.1,
            causal=False,
            max_frequency=None,
            max_gamma=None,
            hidden_channels=4,
            omega_0=10.0,
        )
        assert net(torch.zeros(1, 1, 5)).shape == (1, 2, 5)
