"""Accuracy on irregularly sampled aeon archives: CCNN (mask-aware and zero-fill), timm resnet18
(zero-fill + mask channel) and MiniRocket (linear interpolation), at several drop rates.

Every neural model is trained by the same ``ccnn-train`` command line (``ccnn_hf.training.train.run``, in this
process): the built-in small-archive recipe ``--config timeseries`` (a validation split held out of
the training series, early stopping with patience and the best-validation weights tested, the same
cap on optimiser steps, batch size, learning-rate schedule, random point dropout and seeds); only the
model flags differ. The dropped points depend on ``--drop_seed`` alone, so all
models see the same points. MiniRocket (aeon) gets each series with its missing points linearly
interpolated inside its real length, resampled onto the longest length
(:func:`ccnn_hf.data.aeon_archive.interpolate_missing`).

    python benchmarks/bench_irregular.py                       # the full table (hours of runs on one core)
    python benchmarks/bench_irregular.py --shard 0/2 &         # ... or split over two processes,
    python benchmarks/bench_irregular.py --shard 1/2           # one core each,
    python benchmarks/bench_irregular.py --report_only          # then merged into one table
    python benchmarks/bench_irregular.py --tiny --out /tmp/x   # a smoke run of every code path

Results: ``irregular.json`` (every run, written after each so ``--resume`` continues; a shard
writes ``irregular.shardK-N.json``, which ``--report_only`` merges), ``irregular.md``
(the table and the goal checks) and ``irregular.png`` (accuracy against drop rate per dataset).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("JapaneseVowels", "BasicMotions", "GunPoint", "ItalyPowerDemand", "OSULeaf", "ACSF1")
DROP_RATES = (0.0, 0.3, 0.5, 0.7)
SEEDS = (0, 1, 2)
# model name -> the ccnn-train flags that select it (None: MiniRocket, fitted here)
MODELS: dict[str, list[str] | None] = {
    "ccnn_normalized": ["--missing_values", "normalized"],
    "ccnn_zero_fill": ["--missing_values", "zero_fill"],
    "resnet18_zero_fill": ["--timm_model", "resnet18"],
    "minirocket": None,
}
LABELS = {
    "ccnn_normalized": "CCNN, mask-aware (normalised conv)",
    "ccnn_zero_fill": "CCNN, zero-fill + mask channel",
    "resnet18_zero_fill": "timm resnet18 (1D as 2D), zero-fill + mask channel",
    "minirocket": "MiniRocket (aeon), linear interpolation",
}
STYLES = {"ccnn_normalized": "o-", "ccnn_zero_fill": "s--", "resnet18_zero_fill": "^:", "minirocket": "d-."}
COLOURS = {"ccnn_normalized": "C0", "ccnn_zero_fill": "C1", "resnet18_zero_fill": "C2", "minirocket": "C3"}
# The recipe of every neural model: the small CCNN, the budget cap and the evaluation protocol.
RECIPE_FLAGS = ["--config", "timeseries"]


def budget_flags(steps: int | None) -> list[str]:
    """The flags every neural model shares besides the recipe: the cap (None: the recipe's), one
    checkpoint, no logging, the CPU."""
    cap = ["--max_steps", str(steps)] if steps is not None else []
    return [*cap, "--save_total_limit", "1", "--report_to", "none", "--cpu", "--overwrite"]


def train_command(
    model: str, dataset: str, drop_rate: float, seed: int, drop_seed: int, steps: int | None, output_dir: str
) -> list[str]:
    """The ``ccnn-train`` arguments of one run."""
    return [
        *RECIPE_FLAGS,
        *MODELS[model],
        "--dataset",
        f"aeon:{dataset}",
        "--drop_rate",
        f"{drop_rate:g}",
        "--drop_seed",
        str(drop_seed),
        "--seed",
        str(seed),
        *budget_flags(steps),
        "--output_dir",
        output_dir,
    ]


def run_neural(argv: list[str], log) -> float:
    """Train with ``ccnn-train``'s own ``run``; the test accuracy at the base setting.

    The trainer's test evaluation after every epoch only logs (it runs in eval mode under no_grad
    and draws no random numbers, so the trained weights are the same without it); on these tiny
    training sets it would cost more than the training itself, so it is skipped here."""
    from unittest import mock

    import ccnn_hf.training.train as trainer

    with (
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
        mock.patch.object(trainer.Trainer, "_test", lambda self: None),
    ):
        results = trainer.run(argv)
    row = next(r for r in results["evaluation"] if r["mode"] in ("continuous", "timm"))
    return row["accuracy"]


def run_minirocket(dataset: str, drop_rate: float, seed: int, drop_seed: int) -> float:
    """MiniRocket on the same points, missing ones linearly interpolated (see the module docstring)."""
    from ccnn_hf.data.aeon_archive import load_aeon, minirocket_accuracies

    data = load_aeon(dataset, drop_rate=drop_rate, drop_seed=drop_seed)
    return minirocket_accuracies(data.train, [data.test], data.base_resolution[0], seed)[0]


def summarise(runs: list[dict], datasets, models, rates) -> dict:
    """Mean accuracy (%) over seeds per (dataset, model, rate), and over datasets per (model, rate)."""
    table: dict = {}
    for d in datasets:
        for m in models:
            for r in rates:
                accs = [x["accuracy"] for x in runs if (x["dataset"], x["model"], x["drop_rate"]) == (d, m, r)]
                if accs:
                    table.setdefault(d, {}).setdefault(m, {})[r] = (
                        100 * float(np.mean(accs)),
                        100 * float(np.ptp(accs)) / 2,
                        len(accs),
                    )

    def mean_over(names) -> dict:
        return {
            m: {
                r: float(np.mean([table[d][m][r][0] for d in names]))
                for r in rates
                if all(r in table.get(d, {}).get(m, {}) for d in names)
            }
            for m in models
        }

    # where a model ran on some archives only: the average over the archives every model ran on, too
    common = [d for d in datasets if all(table.get(d, {}).get(m) for m in models)]
    summary = {"per_dataset": table, "average": mean_over(datasets)}
    if common and len(common) < len(datasets):
        summary.update(common=common, common_average=mean_over(common))
    return summary


def seed_spreads(per_dataset: dict, model: str) -> list[float]:
    """The seed spread (max - min, points) of every cell of ``model``."""
    return [
        2 * cells[r][1] for models in per_dataset.values() for m, cells in models.items() if m == model for r in cells
    ]


def goal_checks(summary: dict) -> list[str]:
    """The issue's goals, checked on the dataset averages and the seed spreads."""
    average = summary["average"]
    lines = []
    ccnn = average.get("ccnn_normalized", {})
    rocket = average.get("minirocket", {})
    if 0.0 in ccnn and 0.5 in ccnn:
        loss = ccnn[0.0] - ccnn[0.5]
        lines.append(
            f"- mask-aware CCNN loses {loss:.1f} points on average between 0 % and 50 % dropped "
            f"(goal <= 3): {'met' if loss <= 3 else 'NOT met'}"
        )
    for rate in (0.0, 0.5):
        if rate in ccnn and rate in rocket:
            gap = rocket[rate] - ccnn[rate]
            lines.append(
                f"- at {rate:.0%} dropped: mask-aware CCNN {ccnn[rate]:.1f} vs MiniRocket {rocket[rate]:.1f}, "
                f"{gap:+.1f} points behind (goal: within 2): {'met' if gap <= 2 else 'NOT met'}"
            )
    if 0.7 in ccnn and 0.7 in rocket:
        lines.append(
            f"- at 70% dropped: mask-aware CCNN {ccnn[0.7]:.1f} vs MiniRocket {rocket[0.7]:.1f} (goal: ahead): "
            f"{'met' if ccnn[0.7] > rocket[0.7] else 'NOT met'}"
        )
    for baseline in ("ccnn_zero_fill", "resnet18_zero_fill"):
        # a baseline that did not run on every archive is compared on the archives it ran on
        partial = not average.get(baseline) and bool(summary.get("common_average", {}).get(baseline))
        means = summary["common_average"] if partial else average
        ours = means.get("ccnn_normalized", {})
        rates = [r for r in sorted(ours) if r in means.get(baseline, {})]
        behind = [f"{r:.0%}" for r in rates if ours[r] < means[baseline][r]]
        if rates:
            where = f" (on {', '.join(summary['common'])})" if partial else ""
            lines.append(
                f"- mask-aware CCNN at least {LABELS[baseline]} at every drop rate{where}: "
                + ("met" if not behind else f"NOT met (behind at {', '.join(behind)})")
            )
    spreads = seed_spreads(summary["per_dataset"], "ccnn_normalized")
    if spreads:
        lines.append(
            f"- largest seed spread of the mask-aware CCNN: {max(spreads):.1f} points (goal <= 3 per cell): "
            f"{'met' if max(spreads) <= 3 else f'NOT met in {sum(s > 3 for s in spreads)} of {len(spreads)} cells'}"
        )
    return lines


def write_markdown(path: Path, report: dict, summary: dict) -> None:
    s = report["settings"]
    rates = s["drop_rates"]
    head = "| dataset | model | " + " | ".join(f"{r:.0%} dropped" for r in rates) + " |"
    lines = [
        "# Irregular sampling: accuracy (%) against the share of time points dropped"
        + (" (TINY smoke run)" if s["tiny"] else ""),
        "",
        f"Mean over seeds {s['seeds']} (± half the spread); drop seed {s['drop_seed']}; every neural model trained "
        f"by the same `ccnn-train {' '.join(RECIPE_FLAGS)}` command (ccnn_hf/configs/timeseries.yaml: 20 % of the "
        "training series held out for validation, early stopping after 50 epochs without a better validation "
        "accuracy, the best-validation weights tested, random point dropout, centred kernels; "
        f"{'the cap ' + str(s['steps']) + ' steps' if s['steps'] else 'its cap of optimiser steps'}); only the "
        f"model flags differ. {s['hardware']}; {len(report['runs'])} runs, {report['total_time_s'] / 60:.1f} min of "
        "run time in all. A cell measured with fewer seeds says how many.",
        "",
        head,
        "|---|---|" + "---|" * len(rates),
    ]

    def cell(value: tuple[float, float, int]) -> str:
        mean, spread, n = value
        return f"{mean:.1f} ± {spread:.1f}" if n == len(s["seeds"]) else f"{mean:.1f} ({n} seed{'s' * (n != 1)})"

    for d, models in summary["per_dataset"].items():
        for m, cells in models.items():
            lines.append(
                f"| {d} | {LABELS[m]} | "
                + " | ".join(cell(cells[r]) if r in cells else "not run" for r in rates)
                + " |"
            )
    lines += [
        "",
        "Average over datasets:",
        "",
        "| model | " + " | ".join(f"{r:.0%}" for r in rates) + " |",
        "|---|" + "---|" * len(rates),
    ]

    def average_rows(average: dict) -> list[str]:
        return [
            f"| {LABELS[m]} | " + " | ".join(f"{cells[r]:.1f}" if r in cells else "" for r in rates) + " |"
            for m, cells in average.items()
            if cells
        ]

    lines += average_rows(summary["average"])
    if "common" in summary:
        lines += [
            "",
            f"Average over the archives every model ran on ({', '.join(summary['common'])}):",
            "",
            "| model | " + " | ".join(f"{r:.0%}" for r in rates) + " |",
            "|---|" + "---|" * len(rates),
            *average_rows(summary["common_average"]),
        ]
    lines += ["", "Goals (issue 23), on the average over all archives:", "", *goal_checks(summary), ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def plot(path: Path, summary: dict, rates) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(summary["per_dataset"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.4 * len(datasets), 3.3), dpi=110, squeeze=False)
    for ax, d in zip(axes[0], datasets):
        for m, cells in summary["per_dataset"][d].items():
            xs = [r for r in rates if r in cells]
            ax.errorbar(
                [100 * r for r in xs],
                [cells[r][0] for r in xs],
                yerr=[cells[r][1] for r in xs],
                fmt=STYLES[m],  # one style and colour per model, also where a model did not run
                color=COLOURS[m],
                label=LABELS[m],
                capsize=2,
            )
        ax.set_ylim(top=min(ax.get_ylim()[1], 101))  # accuracy never exceeds 100 %
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("time points dropped (%)")
        ax.set_xticks([100 * r for r in rates])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    legend = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels())}
    handles, labels = list(legend.values()), list(legend)
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--drop_rates", default=",".join(f"{r:g}" for r in DROP_RATES))
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--drop_seed", type=int, default=0)
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="cap on the optimiser steps of every neural model (default: the recipe's)",
    )
    p.add_argument("--tiny", action="store_true", help="smoke run: 3 steps")
    p.add_argument("--shard", default=None, help="K/N: run every N-th job from the K-th (one process per shard)")
    p.add_argument("--resume", action="store_true", help="keep the runs already in OUT/irregular.json")
    p.add_argument(
        "--report_only",
        action="store_true",
        help="write the table and plot from OUT/irregular.json "
        "(runs merged from several processes, say) without running anything",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    datasets = args.datasets.split(",")
    models = args.models.split(",")
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    rates = [float(r) for r in args.drop_rates.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    steps = 3 if args.tiny else args.steps
    shard, shards = (int(k) for k in args.shard.split("/")) if args.shard else (0, 1)
    if not 0 <= shard < shards:
        p.error(f"--shard {args.shard}: expected K/N with 0 <= K < N")
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / ("irregular.json" if shards == 1 else f"irregular.shard{shard}-{shards}.json")
    settings = {
        "datasets": datasets,
        "models": models,
        "drop_rates": rates,
        "seeds": seeds,
        "drop_seed": args.drop_seed,
        "steps": steps,
        "tiny": args.tiny,
        "recipe_flags": RECIPE_FLAGS,
        "hardware": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads",
    }
    runs = json.loads(json_path.read_text())["runs"] if (args.resume or args.report_only) and json_path.exists() else []
    if args.report_only:  # the shards' runs join the table
        for part in sorted(args.out.glob("irregular.shard*.json")):
            runs += json.loads(part.read_text())["runs"]
        json_path = args.out / "irregular.json"
        unique = {(r["dataset"], r["model"], r["drop_rate"], r["seed"]): r for r in runs}  # a merged table read again
        runs = list(unique.values())
    done = {(r["dataset"], r["model"], r["drop_rate"], r["seed"]) for r in runs}
    # seed outermost: a run cut short still holds whole tables for the first seeds
    # a shard takes every N-th model of each (seed, dataset, rate) group, shifted by the group, so that
    # each shard gets its share of every model (MiniRocket costs far less than a neural model)
    groups = [(s, d, r) for s in seeds for d in datasets for r in rates]
    jobs = [
        (d, r, s, m)
        for g, (s, d, r) in enumerate(groups)
        for i, m in enumerate(models)
        if (g + i) % shards == shard and (d, m, r, s) not in done and not args.report_only
    ]
    log = (args.out / f"irregular{'' if shards == 1 else f'.shard{shard}-{shards}'}.log").open("a", encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, rate, seed, model in tqdm(jobs, desc="irregular benchmark"):
            t0 = time.perf_counter()
            if MODELS[model] is None:
                acc = run_minirocket(dataset, rate, seed, args.drop_seed)
                command = None
            else:
                command = train_command(model, dataset, rate, seed, args.drop_seed, steps, str(Path(tmp) / "run"))
                log.write(f"\n### {model} {dataset} drop {rate:g} seed {seed}\n")
                acc = run_neural(command, log)
                log.flush()
            runs.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "drop_rate": rate,
                    "seed": seed,
                    "accuracy": acc,
                    "time_s": time.perf_counter() - t0,
                    "ccnn_train_args": command,
                }
            )
            report = {"settings": settings, "runs": runs, "total_time_s": sum(r["time_s"] for r in runs)}
            json_path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    report = {"settings": settings, "runs": runs, "total_time_s": sum(r["time_s"] for r in runs)}
    if shards > 1:  # one shard's runs: the table comes from --report_only once every shard is done
        json_path.write_text(json.dumps(report, indent=1), encoding="utf-8")
        return report
    summary = summarise(runs, datasets, models, rates)
    report["summary"] = {
        "average": {m: {f"{r:g}": v for r, v in c.items()} for m, c in summary["average"].items()},
        "goal": goal_checks(summary),
    }
    json_path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    write_markdown(args.out / "irregular.md", report, summary)
    plot(args.out / "irregular.png", summary, rates)
    print((args.out / "irregular.md").read_text())
    return report


if __name__ == "__main__":
    main()
