"""Model cards for trained or converted CCNN checkpoints, generated from their ``results.json``."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

__all__ = ["kernel_section", "make_model_card", "results_table"]

TEMPLATE = Path(__file__).with_name("model_card_template.md")
PIPELINE_TAGS = {
    "image": "image-classification",
    "audio": "audio-classification",
    "sequence": "text-classification",
    "tokens": "text-classification",
}
AUTO_CLASSES = {
    "image": "AutoModelForImageClassification",
    "audio": "AutoModelForAudioClassification",
    "sequence": "AutoModelForSequenceClassification",
    "tokens": "AutoModelForSequenceClassification",
}


def results_table(rows: list[dict]) -> str:
    """Markdown table of accuracy per evaluation setting and mode (the "resize" column only when
    measured: results of older runs lack it)."""
    if not rows:
        return "No accuracy was measured for these weights."
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    modes = ["continuous", "reference"] + (["resize"] if any(r["mode"] == "resize" for r in rows) else [])
    names = {"continuous": "continuous mode", "reference": "reference mode", "resize": "resized to the base"}
    lines = ["| evaluated at | " + " | ".join(names[m] for m in modes) + " |", "|---" * (len(modes) + 1) + "|"]
    for setting in settings:
        acc = {r["mode"]: r["accuracy"] for r in rows if r["setting"] == setting}
        lines.append(
            f"| {setting} | " + " | ".join("-" if m not in acc else f"{100 * acc[m]:.2f} %" for m in modes) + " |"
        )
    return "\n".join(lines)


def kernel_section(image: str) -> str:
    """The card's "What the kernels learned" section, showing ``image`` (drawn by
    :func:`ccnn_hf.plot_kernels`), a path relative to the card."""
    return (
        "## What the kernels learned\n\n"
        f"![masked kernels of every layer at the base resolution]({image})\n\n"
        "One row per continuous convolution (stem first), one column per channel (the first eight): each "
        "layer's depthwise kernel as the MAGNet generator draws it on the base grid, times the learned "
        "Gaussian mask and cropped to where the mask is non-negligible. Redraw them, or those of your own "
        'fine-tuned model, with `ccnn_hf.plot_kernels(model, "kernels.png")`.\n'
    )


def make_model_card(
    results: dict,
    repo_id: str,
    timm_name: str | None = None,
    comparison: str = "",
    data_licence: str = "see the dataset's terms",
    limitations: str = "",
    kernels_image: str | None = None,
) -> ModelCard:
    """Build the card of a run from its results (as written by ``ccnn-train`` or the converter).

    ``kernels_image``: a picture of the learned kernels (path relative to the card) to show.
    """
    modality = results["modality"]
    base = results["base_setting"]
    eval_results = [
        EvalResult(
            task_type=PIPELINE_TAGS[modality],
            dataset_type=results["dataset"],
            dataset_name=results["dataset"],
            dataset_split="test",
            metric_type="accuracy",
            metric_value=round(r["accuracy"], 4),
            metric_name=f"accuracy at {r['setting']} ({r['mode']} mode)",
            dataset_config=r["setting"],
        )
        for r in results["evaluation"]
    ]
    data = ModelCardData(
        library_name="transformers",
        license="mit",
        pipeline_tag=PIPELINE_TAGS[modality],
        tags=["ccnn", "continuous-convolution", "ccnn_hf"] + (["timm"] if timm_name else []),
        metrics=["accuracy"],
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
    )
    if modality == "audio":
        usage = (
            'inputs = extractor(waveform, sampling_rate=16000, return_tensors="pt")  # any rate\n'
            "logits = model(**inputs).logits"
        )
        extractor = (
            'from transformers import AutoFeatureExtractor\nextractor = AutoFeatureExtractor.from_pretrained("'
            + repo_id
            + '")\n'
        )
        usage = extractor + usage
        resolution = (
            "pass the audio's own `sampling_rate` to the feature extractor (or the model); the kernels "
            "are sampled on that rate's grid, nothing is resampled."
        )
    elif modality == "image":
        usage = (
            'from transformers import AutoImageProcessor\nprocessor = AutoImageProcessor.from_pretrained("'
            + repo_id
            + '")\nlogits = model(**processor(image, return_tensors="pt")).logits'
        )
        resolution = (
            "give it an image of any size; `model(pixel_values=x, resolution=(h, w))` states the "
            "resolution of a crop explicitly."
        )
    else:
        usage = "logits = model(input_values=x).logits  # x: [batch, channels, length]"
        resolution = "give it a sequence of another length; `resolution=(length,)` states it explicitly."
    return ModelCard.from_template(
        data,
        template_path=str(TEMPLATE),
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        description=results.get("description", ""),
        intended_uses=results.get(
            "intended_uses",
            "Research on resolution-agnostic convolutional networks; a starting point for fine-tuning on related data.",
        ),
        base_setting=base,
        mode=results.get("mode", "continuous"),
        limitations=limitations or "Trained on CPU-scale budgets: accuracy is far below what longer training reaches.",
        auto_class=AUTO_CLASSES[modality],
        usage_snippet=usage,
        timm_name=timm_name,
        resolution_snippet=resolution,
        dataset=results["dataset"],
        train_samples=results.get("train_samples", "?"),
        test_samples=results.get("test_samples", "?"),
        preset=results["preset"],
        overrides=results.get("overrides") or "none",
        params=f"{results['params']:,}",
        recipe=results.get("recipe", ""),
        hardware=results.get("hardware", "CPU"),
        time_per_epoch=f"{results.get('time_per_epoch_s', float('nan')):.1f}",
        results_table=results_table(results["evaluation"]),
        comparison=comparison,
        kernels=kernel_section(kernels_image) if kernels_image else "",
        data_licence=data_licence,
    )
