"""The CCNN family in timm: registry, the checks timm runs on its own families, features, FX,
compile / script / export status, data config, and weights shared with transformers (files and Hub)."""

from __future__ import annotations

import importlib
import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import timm
import timm.optim
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.layers import create_feature_extractor, get_graph_node_names
from timm.models import FeatureInfo

import ccnn_hf
from ccnn_hf import CCNN, CCNNConfig, CCNNForImageClassification
from ccnn_hf.timm_config import timm_fields
from ccnn_hf.integrations.timm_models import RELEASED, TAGS, checkpoint_filter_fn
from helpers import assert_grad_checkpointing_matches

pytestmark = pytest.mark.hub  # also run against the oldest allowed versions (.ci/oldest)

TINY = dict(hidden_channels=12, num_blocks=2, kernel_hidden=8)
MODELS = ["ccnn_2d", "ccnn_2d_4_140", "ccnn_2d_6_380"]


def create(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, **kwargs)


def batch(model, size=None, n: int = 2, seed: int = 1) -> torch.Tensor:
    channels, *spatial = model.pretrained_cfg["input_size"]
    return torch.randn(n, channels, *(size or spatial), generator=torch.Generator().manual_seed(seed))


# -- registry and pretrained cfgs -----------------------------------------------------------------


def test_registry_lists_models_and_tags_and_registration_is_idempotent():
    assert timm.list_models("ccnn*") == MODELS
    tagged = timm.list_models("ccnn*", include_tags=True)
    expected = {f"ccnn_2d_{size}.{tag}" for size in ("4_140", "6_380") for tag in TAGS}
    assert set(tagged) == expected | {"ccnn_2d"} | set(RELEASED)
    assert {"ccnn_2d_4_140.cifar10", "ccnn_2d_6_380.cifar100", "ccnn_2d_4_140.pathfinder"} <= set(tagged)
    assert set(timm.list_pretrained("ccnn*")) == set(RELEASED)  # the weights shipped in the package
    for arch in MODELS:  # a shipped grey-scale release never becomes an architecture's default
        default = timm.models.get_pretrained_cfg(arch)
        assert default.input_size[0] == 3 and default.num_classes == 10 and default.tag in (None, "cifar10")
    assert timm.list_models(module="timm_models") == MODELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-registering would warn "Overwriting ... in registry"
        importlib.reload(ccnn_hf.integrations.timm_models)
    assert timm.list_models("ccnn*", include_tags=True) == tagged


@pytest.mark.parametrize("name", [n for n in timm.list_models("ccnn*", include_tags=True)])
def test_pretrained_cfgs_hold_real_fields(name):
    cfg = timm.models.get_pretrained_cfg(name).to_dict()
    model_name, tag = timm.models.split_model_name_tag(name)
    if name in RELEASED:  # shipped weights: the cfg describes the data they were trained on
        config = RELEASED[name]
        size = tuple(config["base_resolution"])
        in_chans, num_classes, mean, std = (  # mean / std: input_mean / input_std in older releases
            config["num_channels"],
            config["num_classes"],
            config["mean"] if "mean" in config else config["input_mean"],
            config["std"] if "std" in config else config["input_std"],
        )
        assert cfg["file"] == config["_file"] and cfg["file"].endswith("model.safetensors")
    else:
        blocks, hidden = (6, 380) if "6_380" in model_name else (4, 140)
        preset = ccnn_hf.PRESETS[f"{TAGS[tag or 'cifar10']}_{blocks}_{hidden}"]
        size = tuple(preset.model["base_resolution"])
        in_chans, num_classes, mean, std = (
            preset.model["in_chans"],
            preset.model["num_classes"],
            preset.mean,
            preset.std,
        )
    assert cfg["input_size"] == (in_chans, *size) and cfg["pool_size"] == size
    assert cfg["num_classes"] == num_classes
    assert cfg["mean"] == tuple(mean) and cfg["std"] == tuple(std) and len(cfg["mean"]) == cfg["input_size"][0]
    assert cfg["crop_pct"] == 1.0 and cfg["interpolation"] == "bicubic" and cfg["license"] == "mit"
    assert cfg["first_conv"] == "stem.conv.channel_mixer" and cfg["classifier"] == "head.fc"
    assert cfg["paper_ids"] == ("arXiv:2206.03398", "arXiv:2301.10540") and "General Purpose CNN" in cfg["paper_name"]
    assert cfg["architecture"] == model_name and cfg.get("tag") == (tag or None)
    assert cfg.get("hf_hub_id") is None


# -- timm's own family checks, per registered model ---------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_default_cfg(name):
    """timm's test_model_forward + test_model_default_cfgs, at full size (ccnn_2d, which is
    ccnn_2d_4_140 under another name, at reduced width)."""
    model = create(name, **(TINY if name == "ccnn_2d" else {})).eval()
    cfg = model.pretrained_cfg
    state_dict = model.state_dict()
    assert cfg["classifier"] + ".weight" in state_dict and cfg["first_conv"] + ".weight" in state_dict
    assert model.num_features == model.head_hidden_size == {"ccnn_2d": 12, "ccnn_2d_6_380": 380}.get(name, 140)
    assert model.global_pool == "avg" and model.get_classifier() is model.head.fc
    x = batch(model)
    with torch.no_grad():
        logits = model(x)
        features = model.forward_features(x)
        assert logits.shape == (2, cfg["num_classes"]) and torch.isfinite(logits).all()
        assert features.shape == (2, model.num_features, *cfg["pool_size"])  # no downsampling
        torch.testing.assert_close(model.forward_head(features), logits)
        assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
        x = x[:1]
        model.reset_classifier(0)
        assert model(x).shape == (1, model.num_features) and model.num_classes == 0
        model.reset_classifier(0, "")
        assert model(x).shape == (1, model.num_features, *cfg["pool_size"]) and model.global_pool == ""
        model.reset_classifier(5, "max")
        assert model(x).shape == (1, 5) and model.global_pool == "max"
        headless = create(name, num_classes=0, global_pool="", **TINY).eval()
        assert headless(x).shape == (1, 12, *cfg["pool_size"])


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter(name):
    """timm's test_model_backward: num_classes=42, train mode, every parameter gets a gradient
    (reduced width: a full CCNN_{6,380} backward takes over a minute on CPU)."""
    model = create(name, num_classes=42, **TINY).train()
    out = model(batch(model, size=(16, 16)))
    assert out.shape == (2, 42) and torch.isfinite(out).all()
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    silent = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert not silent, f"zero gradient for {silent}"


@pytest.mark.parametrize("name", MODELS)
def test_features_only_and_forward_intermediates(name):
    model = create(name, **TINY).eval()
    info = FeatureInfo(model.feature_info, len(model.feature_info))
    assert info.channels() == [12] * 3 and info.reduction() == [1] * 3
    assert info.module_name() == ["stem", "blocks.0", "blocks.1"]
    x = batch(model, size=(20, 28))
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        assert [tuple(f.shape) for f in intermediates] == [(2, 12, 20, 28)] * 3
        only = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert len(only) == 2 and torch.equal(only[-1], intermediates[-1])
        normed = model.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)
        torch.testing.assert_close(normed[0], final)
        early, taken = model.forward_intermediates(x, indices=[0, 1], stop_early=True)
        torch.testing.assert_close(early, intermediates[1])
        assert len(taken) == 2
        for cls in ("list", "hook", "getter", "fx") if name == "ccnn_2d" else ("list", "getter"):
            features = create(name, features_only=True, feature_cls=cls, **TINY).eval()
            assert features.feature_info.channels() == [12] * 3 and features.feature_info.reduction() == [1] * 3
            for got, want in zip(features(x), intermediates, strict=True):
                torch.testing.assert_close(got, want, msg=cls)
        if name == "ccnn_2d":
            picked = create(name, features_only=True, out_indices=(1,), feature_cls="getter", **TINY).eval()
            assert len(picked.model.blocks) == 1 and isinstance(picked.model.head.fc, torch.nn.Identity)  # pruned
            torch.testing.assert_close(picked(x)[0], intermediates[1])
    with pytest.raises(ValueError, match="out of range"):
        model.forward_intermediates(x, indices=[5])


@pytest.mark.parametrize("name", MODELS)
def test_grad_checkpointing_gives_the_same_outputs_and_gradients(name):
    model = create(name, **TINY).train()  # presets have dropout: the checkpoint replays the RNG
    x = batch(model)
    assert_grad_checkpointing_matches(model, x, seed=3)
    torch.manual_seed(3)
    checkpointed = model.forward_intermediates(x)[1]
    model.set_grad_checkpointing(False)
    torch.manual_seed(3)
    for got, want in zip(checkpointed, model.forward_intermediates(x)[1], strict=True):
        torch.testing.assert_close(got, want)


# -- building: tags, overrides, input size ----------------------------------------------------------


def test_tags_build_their_task_preset_and_kwargs_override():
    stl = create("ccnn_2d_6_380.stl10", **TINY)
    assert stl.base_resolution == (256, 256) and stl.kernel_size == (31, 31) and stl.num_classes == 10
    assert stl.pretrained_cfg["input_size"] == (3, 256, 256)
    gray = create("ccnn_2d_4_140.pathfinder", **TINY).eval()
    assert gray.in_chans == 1 and gray.num_classes == 1
    assert gray(torch.randn(1, 1, 32, 32)).shape == (1, 1)
    one_channel = create(
        "ccnn_2d", in_chans=1, num_classes=42, hidden=16, blocks=1, kernel_width=8, drop_rate=0.0
    ).eval()
    assert (one_channel.in_chans, one_channel.num_classes, one_channel.num_features, len(one_channel.blocks)) == (
        1,
        42,
        16,
        1,
    )
    assert one_channel.drop_rate == 0.0 and one_channel(torch.randn(2, 1, 24, 24)).shape == (2, 42)
    with pytest.raises(ValueError, match="stochastic depth|drop path"):
        create("ccnn_2d", drop_path_rate=0.1, **TINY)
    with pytest.raises(ValueError, match="2D image models"):
        create("ccnn_2d", data_dim=3, **TINY)


def test_img_size_sets_the_data_config_not_the_base_resolution():
    sized = create("ccnn_2d", img_size=64, **TINY).eval()
    plain = create("ccnn_2d", **TINY).eval()
    assert sized.pretrained_cfg["input_size"] == (3, 64, 64) and sized.pretrained_cfg["pool_size"] == (64, 64)
    assert sized.base_resolution == plain.base_resolution == (32, 32)
    assert timm.data.resolve_data_config(model=sized)["input_size"] == (3, 64, 64)
    x = batch(sized)
    with torch.no_grad():  # the same network: img_size only changes metadata
        torch.testing.assert_close(sized(x), plain(x))
        assert sized.forward_features(x).shape[-2:] == sized.pretrained_cfg["pool_size"]
        assert plain.forward_features(torch.randn(1, 3, 40, 24)).shape == (1, 12, 40, 24)  # any input size
    native = create("ccnn_2d", base_resolution=(16, 16), kernel_size=17, **TINY)
    assert native.blocks[0].conv.input_scale(torch.randn(1, 3, 16, 16)) == (1.0, 1.0)


def test_data_config_and_transforms():
    model = create("ccnn_2d_4_140.cifar100", **TINY)
    config = timm.data.resolve_data_config(model=model)
    assert config == dict(
        input_size=(3, 32, 32),
        interpolation="bicubic",
        mean=ccnn_hf.PRESETS["cifar100_4_140"].mean,
        std=ccnn_hf.PRESETS["cifar100_4_140"].std,
        crop_pct=1.0,
        crop_mode="center",
    )
    transform = timm.data.create_transform(**config)
    image = Image.fromarray(np.full((48, 40, 3), (255, 128, 0), dtype=np.uint8))
    pixels = transform(image)
    assert pixels.shape == (3, 32, 32)
    expected = (torch.tensor([255, 128, 0]) / 255 - torch.tensor(config["mean"])) / torch.tensor(config["std"])
    torch.testing.assert_close(pixels[:, 16, 16], expected.float(), atol=1e-5, rtol=0)
    gray = create("ccnn_2d_4_140.image", **TINY)
    gray_config = timm.data.resolve_data_config(model=gray)
    assert gray_config["input_size"] == (1, 32, 32) and len(gray_config["mean"]) == 1
    gray_pixels = timm.data.create_transform(**gray_config)(Image.fromarray(np.zeros((64, 64), dtype=np.uint8)))
    assert gray_pixels.shape == (1, 32, 32)


def test_group_matcher_feeds_timm_optimizers():
    model = create("ccnn_2d", **TINY)
    optimizer = timm.optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.8)
    grouped = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    assert grouped == sum(p.numel() for p in model.parameters())
    assert len({g["lr_scale"] for g in optimizer.param_groups}) > 2  # stem, blocks, norm / head at different rates


# -- FX, torch.compile, TorchScript, torch.export ---------------------------------------------------


def test_fx_feature_extraction_keeps_resolution_semantics():
    model = create("ccnn_2d", **TINY).eval()
    train_nodes, eval_nodes = get_graph_node_names(model)
    assert "blocks.1.conv" in eval_nodes and "head" == eval_nodes[-1] and "blocks.1.add" in train_nodes
    extractor = create_feature_extractor(model, {"blocks.0": "block0", eval_nodes[-1]: "logits"})
    x = batch(model, size=(24, 24))
    with torch.no_grad():
        out = extractor(x)
        torch.testing.assert_close(out["logits"], model(x))
        torch.testing.assert_close(
            out["block0"], model.forward_intermediates(x, indices=[1], intermediates_only=True)[0]
        )
        # resolution= is a graph input: the traced model still samples the kernels for it
        torch.testing.assert_close(extractor(x, resolution=48)["logits"], model(x, resolution=48))
        assert not torch.allclose(extractor(x, resolution=48)["logits"], out["logits"])
    model.train()  # timm's FX backward check: the traced training graph reaches every parameter
    assert train_nodes[-1] == eval_nodes[-1] == "head"
    create_feature_extractor(model, ["head"])(x)["head"].mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.filterwarnings("ignore::UserWarning")  # dynamo / inductor notes on lru_cache and complex FFT ops
def test_torch_compile_matches_eager():
    model = create("ccnn_2d", hidden_channels=8, num_blocks=1, kernel_hidden=8).eval()
    x = batch(model, size=(12, 12))
    with torch.no_grad():
        expected = model(x)
        compiled = torch.compile(model)  # inductor; graph breaks where kernel sizes come from parameter values
        torch.testing.assert_close(compiled(x), expected, atol=1e-5, rtol=1e-5)


def test_torchscript_is_unsupported_and_export_needs_the_kernel_plans_as_documented():
    model = create("ccnn_2d", **TINY).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        # TorchScript's own words, at the forward's keyword-only mask arguments (see ccnn_hf.integrations.timm_models)
        with pytest.raises(
            torch.jit.frontend.NotSupportedError,
            match=r"(?s)can't take variable number of arguments or use keyword-only"
            r".*attention_mask",
        ):
            torch.jit.script(model)
    x = batch(model, size=(8, 8))
    with pytest.raises(Exception, match="refresh_kernel_plan"):  # kernel sizes not decided yet for 8x8
        torch.export.export(model, (x,))
    with torch.no_grad():
        expected = model(x)  # decides them
    torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), expected)


# -- weights shared with transformers --------------------------------------------------------------


def hf_model(preset: str = "image2d_4_140", **overrides) -> CCNNForImageClassification:
    torch.manual_seed(0)
    labels = {i: f"class_{i}" for i in range(4)}
    config = CCNNConfig.from_preset(preset, num_labels=4, id2label=labels, **{**TINY, **overrides})
    return CCNNForImageClassification(config).eval()


@pytest.fixture(scope="module")
def saved_hf(tmp_path_factory):
    model = hf_model()
    folder = tmp_path_factory.mktemp("hf_for_timm")
    model.save_pretrained(folder)
    return model, folder


def test_transformers_config_carries_timm_fields_and_still_round_trips(saved_hf):
    model, folder = saved_hf
    saved = json.loads((folder / "config.json").read_text())
    assert saved["model_type"] == "ccnn" and saved["architecture"] == "ccnn_2d"
    assert saved["num_classes"] == 4 and saved["num_features"] == 12 and saved["global_pool"] == "avg"
    assert saved["label_names"] == [f"class_{i}" for i in range(4)]
    args = saved["model_args"]
    assert args["in_chans"] == 1 and args["num_classes"] == 4 and args["hidden_channels"] == 12
    assert args["omega_0"] == ccnn_hf.PRESETS["image2d_4_140"].model["omega_0"]  # differs from ccnn_2d's preset
    assert "kernel_size" not in args and "base_resolution" not in args  # same as ccnn_2d's preset
    cfg = saved["pretrained_cfg"]
    assert cfg["input_size"] == [1, 32, 32] and cfg["mean"] == list(ccnn_hf.PRESETS["image2d_4_140"].mean)
    assert cfg["classifier"] == "head.fc" and cfg["first_conv"] == "stem.conv.channel_mixer"
    timm.models.PretrainedCfg(**cfg)  # every key is a timm field
    from transformers import AutoModelForImageClassification

    relabeled = AutoModelForImageClassification.from_pretrained(folder, num_labels=7, ignore_mismatched_sizes=True)
    assert relabeled.config.architecture == "ccnn_2d"  # kept as an extra attribute
    resaved = folder.parent / "resaved"
    relabeled.save_pretrained(resaved)
    again = json.loads((resaved / "config.json").read_text())
    assert again["num_classes"] == again["model_args"]["num_classes"] == again["pretrained_cfg"]["num_classes"] == 7
    backbone = ccnn_hf.CCNNModel(model.config)
    assert timm_fields(backbone.config, 0)["num_classes"] == 0
    assert timm_fields(CCNNConfig.from_preset("smnist_4_140")) == {}  # timm models are 2D images


def test_same_weights_and_logits_from_both_file_formats(saved_hf, tmp_path, caplog):
    model, folder = saved_hf
    timm_model = create(f"local-dir:{folder}", pretrained=True).eval()  # transformers folder, read by timm
    assert isinstance(timm_model, CCNN) and timm_model.in_chans == 1 and timm_model.num_classes == 4
    assert timm_model.pretrained_cfg["label_names"] == [f"class_{i}" for i in range(4)]
    ours = timm_model.state_dict()
    theirs = checkpoint_filter_fn(model.state_dict(), timm_model)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = model(pixel_values=x).logits
        torch.testing.assert_close(timm_model(x), expected, rtol=0, atol=0)
        model_args = json.loads((folder / "config.json").read_text())["model_args"]
        overlay = dict(num_classes=4, input_size=(1, 32, 32))
        from_hf_file = create(
            "ccnn_2d",
            seed=5,
            pretrained=True,
            **model_args,
            pretrained_cfg_overlay=dict(file=str(folder / "model.safetensors"), **overlay),
        ).eval()
        torch.testing.assert_close(from_hf_file(x), expected, rtol=0, atol=0)
        save_file(timm_model.state_dict(), tmp_path / "timm.safetensors")
        from_timm_file = create(
            "ccnn_2d",
            seed=6,
            pretrained=True,
            **model_args,
            pretrained_cfg_overlay=dict(file=str(tmp_path / "timm.safetensors"), **overlay),
        ).eval()
        torch.testing.assert_close(from_timm_file(x), expected, rtol=0, atol=0)
        new_head = create(
            "ccnn_2d",
            seed=7,
            pretrained=True,
            **{**model_args, "num_classes": 3},
            pretrained_cfg_overlay=dict(file=str(folder / "model.safetensors"), **overlay),
        ).eval()
        torch.testing.assert_close(new_head.forward_features(x), timm_model.forward_features(x), rtol=0, atol=0)
        assert new_head(x).shape == (2, 3)
    backbone = ccnn_hf.CCNNModel(model.config).eval()  # transformers backbone: encoder.* keys, no classifier
    backbone.save_pretrained(tmp_path / "backbone")
    timm_backbone = create(f"local-dir:{tmp_path / 'backbone'}", pretrained=True).eval()
    assert timm_backbone.num_classes == 0
    with torch.no_grad():
        torch.testing.assert_close(timm_backbone(x), backbone(pixel_values=x).pooler_output, rtol=0, atol=0)
    with pytest.raises(ValueError, match="1 input channel.* model has 3: CCNN weights cannot be adapted"):
        checkpoint_filter_fn(model.state_dict(), SimpleNamespace(in_chans=3))
    rgb = create("ccnn_2d", seed=8, **{**model_args, "in_chans": 3})
    with caplog.at_level("WARNING", logger="ccnn_hf.integrations.timm_models"):
        adapted = checkpoint_filter_fn(model.state_dict(), rgb)
    assert "keep their random initialisation" in caplog.text
    rgb.load_state_dict(adapted)  # strict: every key, the right shapes
    own, converted = rgb.state_dict(), checkpoint_filter_fn(model.state_dict(), timm_model)
    for key, value in adapted.items():  # the channel-dependent stem tensors are the model's, the rest the checkpoint's
        expected = own[key] if key.startswith("stem.conv.") and value.shape != converted[key].shape else converted[key]
        assert torch.equal(value, expected), key


def test_hub_round_trip_both_ways(local_hub, tmp_path):
    from huggingface_hub import HfApi
    from transformers import AutoModelForImageClassification

    hf = hf_model("stl10_4_140", base_resolution=[48, 48])
    hf.push_to_hub("ccnn-org/ccnn-shared")
    x = torch.randn(2, 3, 40, 40)
    from_hf = AutoModelForImageClassification.from_pretrained("ccnn-org/ccnn-shared").eval()
    from_timm = create("hf-hub:ccnn-org/ccnn-shared", pretrained=True).eval()
    assert from_timm.base_resolution == (48, 48) and from_timm.pretrained_cfg["input_size"] == (3, 48, 48)
    with torch.no_grad():
        expected = from_hf(pixel_values=x).logits
        torch.testing.assert_close(from_timm(x), expected, rtol=0, atol=0)

    tagged = create("ccnn_2d_6_380.stl10", **TINY).eval()  # the tag's preset differs from ccnn_2d_6_380's defaults
    labels = [f"label_{i}" for i in range(10)]
    timm.models.push_to_hf_hub(
        tagged, "ccnn-org/ccnn-timm", safe_serialization=True, model_config=dict(label_names=labels)
    )
    files = set(HfApi().list_repo_files("ccnn-org/ccnn-timm"))
    assert "model.safetensors" in files and "pytorch_model.bin" not in files
    reloaded = create("hf-hub:ccnn-org/ccnn-timm", seed=9, pretrained=True).eval()
    conv, tagged_conv = reloaded.blocks[0].conv, tagged.blocks[0].conv
    assert (reloaded.base_resolution, reloaded.kernel_size, reloaded.num_classes) == ((256, 256), (31, 31), 10)
    assert (conv.mask_init, conv.kernel_net.__class__) == (tagged_conv.mask_init, tagged_conv.kernel_net.__class__)
    assert reloaded.pretrained_cfg["label_names"] == labels
    assert reloaded.pretrained_cfg["input_size"] == (3, 256, 256)
    small = torch.randn(2, 3, 32, 32)  # any size: read as a coarse view of a 256 x 256 field
    with torch.no_grad():
        torch.testing.assert_close(reloaded(small), tagged(small), rtol=0, atol=0)


def test_factory_device_and_dtype_and_shapes_on_the_meta_device():
    """timm's factory kwargs: ``device=`` / ``dtype=``; on the meta device (no values, so no mask
    crop and nothing to time) a forward still gives every shape."""
    model = create("ccnn_2d", device="meta", dtype=torch.float64, **TINY).eval()
    assert {t.device.type for t in [*model.parameters(), *model.buffers()]} == {"meta"}
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    x = torch.randn(1, 3, 20, 24, device="meta", dtype=torch.float64)
    assert model.forward_features(x).shape == (1, 12, 20, 24) and model(x).shape == (1, 10)
    model.reset_classifier(5)
    head = model.get_classifier()
    assert (head.weight.device.type, head.weight.dtype, head.training) == ("meta", torch.float64, False)
