"""Every folder the project writes works for a user without ccnn_hf, end to end.

Folders from ``save_pretrained``, ``ccnn-train``, the converter and ``model_cards/publish.py`` are
loaded in a fresh interpreter where ``import ccnn_hf`` fails: config, model, image processor or
feature extractor and pipeline, all through ``trust_remote_code=True``, with the logits of the
in-process model; the 2D image folders also load in timm.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import transformers
from PIL import Image
from transformers import AutoConfig

import ccnn_hf
from ccnn_hf import (
    CCNNConfig,
    CCNNFeatureExtractor,
    CCNNForAudioClassification,
    CCNNForImageClassification,
    CCNNForSequenceClassification,
    CCNNImageProcessor,
)
from ccnn_hf.modeling_ccnn import MODEL_CLASSES
from helpers import REPO

pytestmark = pytest.mark.hub  # also run against the oldest allowed versions (.ci/oldest)

TINY = dict(hidden_channels=8, num_blocks=1, kernel_hidden=8)
AUTO = {
    CCNNForImageClassification: "AutoModelForImageClassification",
    CCNNForAudioClassification: "AutoModelForAudioClassification",
    CCNNForSequenceClassification: "AutoModelForSequenceClassification",
}

SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["ccnn_hf"] = None  # the package is not importable here
    import numpy as np, torch, transformers
    from PIL import Image

    def remote(obj):
        assert type(obj).__module__.startswith("transformers_modules"), type(obj).__module__
        return obj

    results = []
    for job in json.loads(sys.argv[1]):
        path, out = job["path"], {}
        config = remote(transformers.AutoConfig.from_pretrained(path, trust_remote_code=True))
        assert config.model_type == "ccnn"
        model = remote(getattr(transformers, job["auto"]).from_pretrained(path, trust_remote_code=True)).eval()
        with torch.no_grad():
            inputs = torch.load(job["input"], weights_only=True)
            out["logits"] = model(**{model.main_input_name: inputs}).logits.tolist()
        if job["processor"]:
            processor = remote(getattr(transformers, job["processor"]).from_pretrained(path, trust_remote_code=True))
            classify = transformers.pipeline(job["task"], model=path, trust_remote_code=True)
            remote(classify.model)
            sample = np.load(job["sample"])
            if job["task"] == "image-classification":
                sample = Image.fromarray(sample)
            out["processed"] = processor(sample, return_tensors="pt")[model.main_input_name].tolist()
            out["pipeline"] = classify(sample)
        results.append(out)
    print(json.dumps(results))
    """
)


def job(path: str | Path, model_class: type, x: torch.Tensor, tmp_path: Path) -> dict:
    """A folder (or Hub repo) to load without ccnn_hf, with an input for its model."""
    input_file = tmp_path / f"x{len(list(tmp_path.glob('x*.pt')))}.pt"
    torch.save(x, input_file)
    processor, task = {
        CCNNForImageClassification: ("AutoImageProcessor", "image-classification"),
        CCNNForAudioClassification: ("AutoFeatureExtractor", "audio-classification"),
    }.get(model_class, (None, None))
    if model_class is CCNNForImageClassification and x.shape[1] not in (1, 3):
        processor = task = None
    sample_file = input_file.with_suffix(".npy")
    rng = np.random.default_rng(0)
    if task == "image-classification":
        np.save(sample_file, (rng.random((20, 24, 3)) * 255).astype(np.uint8))
    else:
        np.save(sample_file, rng.standard_normal(2000).astype(np.float32))
    return dict(
        path=str(path),
        auto=AUTO[model_class],
        input=str(input_file),
        processor=processor,
        task=task,
        sample=str(sample_file),
    )


def run_without_package(jobs: list[dict], tmp_path: Path) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(jobs)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def check(outputs: dict, model, x: torch.Tensor, job: dict) -> None:
    """The folder gave, without ccnn_hf, the logits of the in-process model and, where it has a processor,
    the processing of the saved processor and the predictions of the pipeline with ccnn_hf imported."""
    with torch.no_grad():
        expected = model(**{model.main_input_name: x}).logits
    torch.testing.assert_close(torch.tensor(outputs["logits"]), expected, rtol=1e-5, atol=1e-5)
    if job["processor"]:
        sample = np.load(job["sample"])
        if job["task"] == "image-classification":
            sample = Image.fromarray(sample)
        saved = {"AutoImageProcessor": CCNNImageProcessor, "AutoFeatureExtractor": CCNNFeatureExtractor}[
            job["processor"]
        ]
        for processor in (
            getattr(transformers, job["processor"]).from_pretrained(job["path"]),
            saved.from_pretrained(job["path"]),
        ):
            processed = processor(sample, return_tensors="pt")[model.main_input_name]
            torch.testing.assert_close(torch.tensor(outputs["processed"]), processed, rtol=1e-5, atol=1e-6)
        predictions = transformers.pipeline(job["task"], model=job["path"], trust_remote_code=False)(sample)
        assert [r["label"] for r in outputs["pipeline"]] == [r["label"] for r in predictions]
        scores = [r["score"] for r in outputs["pipeline"]]
        torch.testing.assert_close(torch.tensor(scores), torch.tensor([r["score"] for r in predictions]))
        labels = set(model.config.id2label.values())
        assert {r["label"] for r in outputs["pipeline"]} <= labels
        assert abs(sum(scores) - 1) < 1e-4 or len(labels) > 5


def check_timm(folder_or_repo: str, model, x: torch.Tensor) -> None:
    timm_model = timm.create_model(folder_or_repo, pretrained=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(timm_model(x), model(pixel_values=x).logits, rtol=1e-5, atol=1e-5)


def test_save_pretrained_folders_work_without_the_package(tmp_path):
    torch.manual_seed(0)
    labels = dict(id2label={i: f"c{i}" for i in range(3)})
    image = CCNNForImageClassification(CCNNConfig.from_preset("cifar10_4_140", **TINY, num_labels=3, **labels)).eval()
    audio = CCNNForAudioClassification(
        CCNNConfig.from_preset(
            "sc_raw_4_140", **TINY, num_labels=3, **labels, base_resolution=[4000], base_sampling_rate=4000
        )
    ).eval()
    sequence = CCNNForSequenceClassification(
        CCNNConfig.from_preset("smnist_4_140", **TINY, **labels, num_labels=3)
    ).eval()
    cases = [(image, torch.randn(2, 3, 24, 20)), (audio, torch.randn(2, 1, 3000)), (sequence, torch.randn(2, 1, 50))]
    jobs = []
    for index, (model, x) in enumerate(cases):
        model.save_pretrained(tmp_path / f"m{index}")
        jobs.append(job(tmp_path / f"m{index}", type(model), x, tmp_path))
    for outputs, (model, x), folder in zip(run_without_package(jobs, tmp_path), cases, jobs):
        check(outputs, model, x, folder)
    check_timm(f"local-dir:{tmp_path / 'm0'}", image, cases[0][1])


def test_ccnn_train_output_works_without_the_package(tmp_path):
    from ccnn_hf.training.train import run

    out = tmp_path / "run"
    run(
        [
            "--dataset",
            "digits",
            "--hidden",
            "8",
            "--blocks",
            "1",
            "--kernel_hidden",
            "8",
            "--max_steps",
            "2",
            "--batch_size",
            "16",
            "--output_dir",
            str(out),
            "--eval_resolutions",
            "1x",
            "--report_to",
            "none",
        ]
    )
    model = CCNNForImageClassification.from_pretrained(out).eval()
    x = torch.randn(2, 1, 8, 8)
    folder = job(out, CCNNForImageClassification, x, tmp_path)
    check(run_without_package([folder], tmp_path)[0], model, x, folder)
    check_timm(f"local-dir:{out}", model, x)


def test_converted_folder_works_without_the_package(tmp_path):
    from helpers import require_shared

    weights = require_shared("fixtures", "reference", "cifar10_ccnn_4_140", "model.safetensors")
    spec = importlib.util.spec_from_file_location("convert", REPO / "conversion" / "convert_original_ccnn.py")
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    folder = tmp_path / "converted"
    convert.convert(weights, "cifar10_4_140", folder)
    model = CCNNForImageClassification.from_pretrained(folder).eval()
    x = torch.randn(1, 3, 32, 32)
    converted = job(folder, CCNNForImageClassification, x, tmp_path)
    check(run_without_package([converted], tmp_path)[0], model, x, converted)
    check_timm(f"local-dir:{folder}", model, x)


def test_published_releases_work_without_the_package(local_hub, tmp_path):
    names = [n for n in ("mnist2d", "fsdd") if n in ccnn_hf.available_releases()]
    if not names:
        pytest.skip("no released weights in this installation")
    spec = importlib.util.spec_from_file_location("publish", REPO / "model_cards" / "publish.py")
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    repos = publish.publish("ccnn-share-org", names)
    models, inputs = [], []
    for repo in repos:
        model = AutoConfig.from_pretrained(repo)
        model_class = {"image": CCNNForImageClassification, "audio": CCNNForAudioClassification}[model.modality]
        models.append(model_class.from_pretrained(repo).eval())
        inputs.append(torch.randn(1, 1, 14, 14) if model.modality == "image" else torch.randn(1, 1, 2000))
    jobs = [job(repo, type(m), x, tmp_path) for repo, m, x in zip(repos, models, inputs)]
    for outputs, model, x, repo in zip(run_without_package(jobs, tmp_path), models, inputs, jobs):
        check(outputs, model, x, repo)
    check_timm(f"hf-hub:{repos[0]}", models[0], inputs[0])


def test_every_shipped_release_works_without_the_package(tmp_path):
    """A copy of each folder under ccnn_hf/weights/ (one- and three-channel images, audio, sequences) loads
    through its own code, and its processor and pipeline give what they give with ccnn_hf imported."""
    names = ccnn_hf.available_releases()
    if not names:
        pytest.skip("no released weights in this installation")
    models, inputs, jobs = [], [], []
    for name in names:
        folder = tmp_path / name
        shutil.copytree(ccnn_hf.released_weights(name), folder)
        config = AutoConfig.from_pretrained(folder)
        models.append(MODEL_CLASSES[config.modality].from_pretrained(folder).eval())
        inputs.append(torch.randn(1, config.num_channels, *((16, 16) if config.data_dim == 2 else (300,))))
        jobs.append(job(folder, type(models[-1]), inputs[-1], tmp_path))
    assert {"AutoImageProcessor", "AutoFeatureExtractor"} <= {j["processor"] for j in jobs}
    for outputs, model, x, folder in zip(run_without_package(jobs, tmp_path), models, inputs, jobs):
        check(outputs, model, x, folder)
