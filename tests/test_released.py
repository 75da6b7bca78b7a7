"""The weights shipped with ccnn_hf: offline loading in transformers and timm, measured accuracy, Hub push."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch
from transformers import (
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
)

from ccnn_hf import RELEASES, available_releases, released_weights
from ccnn_hf.modeling_ccnn import MODEL_CLASSES
from helpers import REPO

AVAILABLE = available_releases()
pytestmark = [pytest.mark.hub, pytest.mark.skipif(not AVAILABLE, reason="no released weights in this installation")]


def load(name: str):
    folder = released_weights(name)
    modality = json.loads((folder / "config.json").read_text())["modality"]
    return MODEL_CLASSES[modality].from_pretrained(folder).eval()


def test_every_release_is_shipped_with_card_and_results():
    assert set(AVAILABLE) == set(RELEASES)
    for name in AVAILABLE:
        folder = released_weights(name)
        results = json.loads((folder / "results.json").read_text())
        assert results["evaluation"] and (folder / "README.md").read_text().startswith("---")
        assert (folder / "model.safetensors").stat().st_size < 4_000_000  # small enough to ship


@pytest.mark.parametrize(
    "name, dataset, options", [("mnist2d", "mnist", {"resolution": 14}), ("smnist", "smnist", {"resolution": 14})]
)
def test_shipped_weights_reproduce_their_measured_accuracy(name, dataset, options):
    from ccnn_hf.data import load_builtin

    model = load(name)
    results = json.loads((released_weights(name) / "results.json").read_text())
    data = load_builtin(dataset, **options)
    base = math.prod(model.config.base_resolution)
    for row in results["evaluation"]:
        size = row["resolution"]
        if row["mode"] != "continuous" or math.prod(size) > 4 * base:  # keep CPU time modest
            continue
        try:
            test = data.test_at(size[0] if len(size) == 1 else tuple(size))
        except ValueError as error:  # smnist at 49 / 784, measured before such lengths were refused
            assert "not a resampling" in str(error), error
            continue
        with torch.no_grad():
            logits = torch.cat([model(**{model.main_input_name: x}).logits for x in test.inputs.split(250)])
        accuracy = (logits.argmax(-1) == test.labels).float().mean().item()
        assert abs(accuracy - row["accuracy"]) < 1e-6, row["setting"]


@pytest.mark.parametrize("name", [r.name for r in RELEASES.values() if r.timm_name])
def test_timm_loads_the_shipped_2d_weights_offline(name):
    import timm

    release = RELEASES[name]
    reference = load(name)
    model = timm.create_model(release.timm_name, pretrained=True).eval()
    config = timm.data.resolve_data_config(model=model)
    x = torch.randn(2, *config["input_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(pixel_values=x).logits, rtol=1e-5, atol=1e-5)


def test_publishing_every_release_in_one_command(local_hub):
    import timm

    spec = importlib.util.spec_from_file_location("publish", REPO / "model_cards" / "publish.py")
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    repos = publish.publish("ccnn-test-org")
    assert len(repos) == len(AVAILABLE)
    for name, repo in zip(AVAILABLE, repos):
        shipped = load(name)
        auto = {"image": AutoModelForImageClassification, "audio": AutoModelForAudioClassification}.get(
            shipped.config.modality, AutoModelForSequenceClassification
        )
        pulled = auto.from_pretrained(repo).eval()
        for (key, a), b in zip(shipped.state_dict().items(), pulled.state_dict().values()):
            assert torch.equal(a, b), (name, key)
        if RELEASES[name].timm_name:
            model = timm.create_model(f"hf-hub:{repo}", pretrained=True).eval()
            x = torch.randn(1, *timm.data.resolve_data_config(model=model)["input_size"])
            with torch.no_grad():
                torch.testing.assert_close(model(x), shipped(pixel_values=x).logits, rtol=1e-5, atol=1e-5)
