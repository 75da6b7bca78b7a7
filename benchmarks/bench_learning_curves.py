"""Learning curves at equal steps: the default CCNN (continuous mode, ``init_scheme="unit_variance"``,
``sine_band="last_layer"``) against the official model (reference mode, the official initialisation),
the default with the band of earlier versions (``sine_band="equal"``), and the two mixed variants that
separate the initialisation from the mode.

Every run is one ``ccnn-train`` command (``ccnn_hf.training.train.run``, in this process) with the same task,
recipe, batch order and step count; only ``--mode`` / ``--init_scheme`` / ``--sine_band`` differ. The training loss of
every step comes from the run's ``logs/metrics.jsonl``; the test accuracy is that of the final weights.

    python benchmarks/bench_learning_curves.py                      # the table and plot (about an hour on one core)
    python benchmarks/bench_learning_curves.py --tasks digits_seq   # one task
    python benchmarks/bench_learning_curves.py --tiny --out /tmp/x  # a smoke run of every code path

Tasks: sequential 8x8 digits (``digits_seq``, built in), 14x14 MNIST digits (``mnist14``, built in),
the ACSF1 archive of aeon (``acsf1``: 1460-step series; skipped without aeon) and the Free Spoken Digit
Dataset at 4 kHz (``fsdd``, from ``--data`` (``../shared/data``); skipped when the file is missing).
Results: ``learning_curves.json``, ``.md`` (steps until the 10-step mean loss is below 0.5, final
loss, test accuracy, time per step) and ``.png`` (mean curves over the seeds).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from tqdm.auto import tqdm

RESULTS = Path(__file__).resolve().parent / "results"
TASKS: dict[str, list[str]] = {
    "digits_seq": ["--dataset", "digits_seq", "--preset", "smnist_4_140", "--hidden", "48", "--blocks", "3"],
    "mnist14": [
        "--dataset",
        "mnist",
        "--dataset_option",
        "resolution=14",
        "--preset",
        "cifar10_4_140",
        "--hidden",
        "48",
        "--blocks",
        "3",
    ],
    # an aeon archive of long series (1460 steps, 100 training series, 10 classes), the recipe of
    # bench_irregular without its validation split and augmentation
    "acsf1": [
        "--dataset",
        "aeon:ACSF1",
        "--preset",
        "smnist_4_140",
        "--hidden",
        "32",
        "--blocks",
        "2",
        "--dropout",
        "0",
        "--causal",
        "false",
    ],
    "fsdd": [
        "--dataset",
        "{data}/fsdd/fsdd_audiofolder.zip",
        "--preset",
        "sc_raw_4_140",
        "--hidden",
        "32",
        "--blocks",
        "3",
        "--sampling_rate",
        "4000",
    ],
}
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "official": ["--mode", "reference", "--init_scheme", "official"],
    "default with sine_band equal": ["--sine_band", "equal"],
    "continuous + official init": ["--init_scheme", "official"],
    "reference + unit-variance init": ["--mode", "reference"],
}
SEEDS = (0, 1, 2)
THRESHOLD = 0.5  # "steps until the 10-step mean training loss is below 0.5"


def command(task: str, variant: str, seed: int, steps: int, data: Path, output_dir: str) -> list[str]:
    """The ``ccnn-train`` arguments of one run."""
    return [
        *(word.format(data=data) for word in TASKS[task]),
        *VARIANTS[variant],
        "--max_steps",
        str(steps),
        "--batch_size",
        "32",
        "--warmup",
        "1",
        "--seed",
        str(seed),
        "--eval_resolutions",
        "1x",
        "--save_total_limit",
        "1",
        "--report_to",
        "none",
        "--cpu",
        "--overwrite",
        "--output_dir",
        output_dir,
    ]


def train(argv: list[str], log) -> dict:
    """One run: its per-step training loss (cross-entropy, penalty apart), final test accuracy and
    time per step. The per-epoch test evaluation only logs, so it is skipped (as in bench_irregular)."""
    import ccnn_hf.training.train as trainer

    out = Path(argv[argv.index("--output_dir") + 1])
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        with mock.patch.object(trainer.Trainer, "_test", lambda self: None):
            started = time.perf_counter()
            results = trainer.run(argv)
            seconds = time.perf_counter() - started
    records = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    row = next(r for r in results["evaluation"] if r["mode"] in ("continuous", "reference"))
    return {"loss": losses, "accuracy": row["accuracy"], "seconds": seconds}


def steps_below(losses: list[float], threshold: float = THRESHOLD, window: int = 10) -> int | None:
    """The first step at which the mean loss of the last ``window`` steps is below ``threshold``."""
    for end in range(window, len(losses) + 1):
        if np.mean(losses[end - window : end]) < threshold:
            return end
    return None


def summarise(runs: list[dict]) -> dict:
    """Per (task, variant): steps to the threshold, final 10-step loss and accuracy, per seed."""
    table: dict = {}
    for run in runs:
        cell = table.setdefault(run["task"], {}).setdefault(
            run["variant"], {"steps": [], "final": [], "acc": [], "s": [], "n": []}
        )
        cell["steps"].append(steps_below(run["loss"]))
        cell["final"].append(float(np.mean(run["loss"][-10:])))
        cell["acc"].append(100 * run["accuracy"])
        cell["s"].append(run["seconds"])
        cell["n"].append(len(run["loss"]))
    return table


def write_markdown(path: Path, report: dict, table: dict) -> None:
    s = report["settings"]
    lines = [
        "# Learning curves at equal steps: default CCNN against the official model" + (" (TINY)" if s["tiny"] else ""),
        "",
        f"Seeds {s['seeds']} (per cell: one value per seed, in this order); the optimiser steps of batch 32 in the "
        "table, each task's preset recipe (lr, "
        "weight decay, the official warm-up + cosine schedule, 1 warm-up epoch), the same batches for every "
        f"variant; {s['hardware']}; {report['total_time_s'] / 60:.1f} min of runs. `default` = continuous mode + "
        "unit-variance init + `sine_band='last_layer'` (ccnn_hf's default); `default with sine_band equal` = "
        "the same with the band of earlier versions; `official` = reference mode + the official init (the official "
        f"code's model). Steps: the first step at which the 10-step mean training loss is below {THRESHOLD} "
        "(per seed; - = never). Final loss: mean of the last 10 steps' cross-entropy.",
        "",
        "| task | variant | steps | steps to loss < 0.5 | final loss | test accuracy (%) | s per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, variants in table.items():
        for variant, cell in variants.items():
            steps = " / ".join("-" if v is None else str(v) for v in cell["steps"])
            final = " / ".join(f"{v:.3f}" for v in cell["final"])
            acc = " / ".join(f"{v:.1f}" for v in cell["acc"])
            lines.append(
                f"| {task} | {variant} | {max(cell['n'])} | {steps} | {final} | {acc} | {np.median(cell['s']):.0f} |"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot(path: Path, runs: list[dict], tasks: list[str], variants: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), dpi=110, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for variant, style in zip(variants, ("-", "--", (0, (5, 1, 1, 1)), ":", "-.")):
            curves = [r["loss"] for r in runs if (r["task"], r["variant"]) == (task, variant)]
            if not curves:
                continue
            length = min(map(len, curves))
            mean = np.mean([c[:length] for c in curves], axis=0)
            window = min(10, length)  # the 10-step mean of the table
            smooth = np.convolve(mean, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(window, length + 1), smooth, linestyle=style, label=variant)
        ax.axhline(THRESHOLD, color="grey", lw=0.6)
        ax.set_yscale("log")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training loss (10-step mean over seeds)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    p.add_argument("--tiny", action="store_true", help="smoke run: 3 steps")
    p.add_argument("--resume", action="store_true", help="keep the runs already in OUT/learning_curves.json")
    p.add_argument(
        "--report_only",
        action="store_true",
        help="write the table and plot of every run in OUT/learning_curves.json (runs of several invocations, "
        "e.g. other variants or seeds per task) without running anything",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    tasks, variants = args.tasks.split(","), args.variants.split(",")
    unknown = sorted(set(tasks) - set(TASKS)) + sorted(set(variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown task(s) or variant(s) {unknown}; tasks: {', '.join(TASKS)}; variants: {', '.join(VARIANTS)}")
    if "acsf1" in tasks and importlib.util.find_spec("aeon") is None:
        print("acsf1 skipped: aeon is not installed (pip install 'ccnn_hf[data]')")
        tasks.remove("acsf1")
    if "fsdd" in tasks and not (args.data / "fsdd" / "fsdd_audiofolder.zip").is_file():
        print(f"fsdd skipped: {args.data / 'fsdd' / 'fsdd_audiofolder.zip'} not found (--data)")
        tasks.remove("fsdd")
    seeds = [int(s) for s in args.seeds.split(",")]
    steps = 3 if args.tiny else args.steps
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "learning_curves.json"
    settings = {
        "tasks": tasks,
        "variants": variants,
        "seeds": seeds,
        "steps": steps,
        "tiny": args.tiny,
        "hardware": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads",
    }
    runs = json.loads(json_path.read_text())["runs"] if (args.resume or args.report_only) and json_path.exists() else []
    done = {(r["task"], r["variant"], r["seed"]) for r in runs}
    jobs = [(t, s, v) for t in tasks for s in seeds for v in variants if (t, v, s) not in done]
    if args.report_only:
        jobs = []
        tasks = list(dict.fromkeys(r["task"] for r in runs))
        variants = [v for v in VARIANTS if any(r["variant"] == v for r in runs)]
        settings.update(tasks=tasks, variants=variants, seeds=sorted({r["seed"] for r in runs}))
    with (args.out / "learning_curves.log").open("a", encoding="utf-8") as log, tempfile.TemporaryDirectory() as tmp:
        for task, seed, variant in tqdm(jobs, desc="learning curves"):
            argv_run = command(task, variant, seed, steps, args.data, str(Path(tmp) / "run"))
            runs.append({"task": task, "variant": variant, "seed": seed, **train(argv_run, log), "argv": argv_run})
            report = {"settings": settings, "runs": runs, "total_time_s": sum(r["seconds"] for r in runs)}
            json_path.write_text(json.dumps(report), encoding="utf-8")
    report = {"settings": settings, "runs": runs, "total_time_s": sum(r["seconds"] for r in runs)}
    json_path.write_text(json.dumps(report), encoding="utf-8")
    table = summarise(runs)
    write_markdown(args.out / "learning_curves.md", report, table)
    plot(args.out / "learning_curves.png", runs, tasks, variants)
    print((args.out / "learning_curves.md").read_text())
    return report


if __name__ == "__main__":
    main()
