#!/usr/bin/env python
"""Re-estimate the BatchNorm statistics of finished CCNN runs and evaluate them again.

    python model_cards/reevaluate_run.py RUN_DIR [RUN_DIR ...] [--data_root DIR]

For runs trained before ccnn-train drew its BatchNorm re-estimation samples at random: on data
listed class by class (image and audio folders, aeon archives) the statistics came from the first
2 048 training samples in file order, a few classes only. Each run's data, evaluation points and
options are rebuilt from its ``.ccnn-run.json``; the learned weights stay as they are, the running
statistics are re-estimated (``adapt_batch_norm``) and the run's ``model.safetensors``,
``results.json`` (its evaluation, with ``reevaluated`` saying what was done) and plot are rewritten.
``--data_root`` replaces the folder of a ``--dataset`` path that has moved since the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def reevaluate(run: Path, data_root: Path | None) -> dict:
    """Re-estimate the statistics of the CCNN in ``run`` and rewrite its evaluation; returns the results."""
    import torch

    from ccnn_hf.training.files import write_json_atomic
    from ccnn_hf.training.train import _load_task
    from ccnn_hf.training.evaluate import evaluate_points, plot_accuracy
    from ccnn_hf.training.model import MODEL_CLASSES, adapt_batch_norm

    from ccnn_hf.training.output import read_marker, recorded_options

    marker = read_marker(run)
    if marker is None:
        raise SystemExit(f"{run}: no .ccnn-run.json; not a ccnn-train run folder")
    options = recorded_options(marker)  # options added to ccnn-train later at their defaults, as --resume does
    if options.get("timm_model"):
        raise SystemExit(f"{run}: a timm baseline; only CCNN runs are re-evaluated here")
    if data_root is not None and not Path(options["dataset"]).exists():
        options["dataset"] = str(data_root / Path(options["dataset"]).name)
    args = argparse.Namespace(**options)
    task = _load_task(args)
    points, _ = task.eval_points(args.eval_resolutions.split(",") if args.eval_resolutions else None)
    results = json.loads((run / "results.json").read_text())
    model = MODEL_CLASSES[task.modality].from_pretrained(run)
    samples = adapt_batch_norm(model, task.train, batch_size=128)
    binary = model.config.num_labels == 1
    with torch.no_grad():
        evaluation = evaluate_points(model.eval(), task, points, binary, batch_size=128)
    before = {(r["setting"], r["mode"]): r["accuracy"] for r in results["evaluation"]}
    results["evaluation"] = evaluation
    results["batch_norm_statistics_samples"] = samples
    results["reevaluated"] = (
        f"BatchNorm statistics re-estimated by model_cards/reevaluate_run.py on {samples} training samples "
        "drawn at random; accuracies before: " + ", ".join(f"{s} {m} {100 * a:.2f} %" for (s, m), a in before.items())
    )
    model.save_pretrained(run)
    write_json_atomic(run / "results.json", results)
    plot_accuracy(evaluation, run / "accuracy_vs_resolution.png", f"{args.preset} on {task.name}")
    for row in evaluation:
        old = before.get((row["setting"], row["mode"]))
        was = "new" if old is None else f"{100 * old:.2f} %"
        print(f"{run.name} {row['setting']:>8} {row['mode']:>10}: {was} -> {100 * row['accuracy']:.2f} %")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data_root", type=Path, help="folder that now holds the runs' dataset files")
    args = parser.parse_args(argv)
    for run in args.runs:
        reevaluate(run, args.data_root)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
