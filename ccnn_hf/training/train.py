"""``ccnn-train``: train a CCNN with Accelerate and evaluate it across resolutions.

Examples::

    ccnn-train                                              # the quickstart: small CCNN on 8x8 digits, ~1 min on CPU
    ccnn-train --output_dir runs/mine --report_to none      # the quickstart too (only output options given)
    ccnn-train --preset smnist_4_140 --dataset smnist --time_limit 300
    ccnn-train --dataset path/to/fsdd_audiofolder.zip --preset sc_raw_4_140 --sampling_rate 4000 --time_limit 300
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 -m ccnn_hf.training.train --cpu ...

The output folder holds ``model.safetensors`` + config + processor config (loadable with
``AutoModelFor...from_pretrained`` and, for images, timm), ``results.json``, a model card
``README.md``, ``accuracy_vs_resolution.png``, ``logs/metrics.jsonl`` and ``checkpoints/``, plus
the run's marker ``.ccnn-run.json`` and lock ``.ccnn-run.lock`` (``training/output.py``). Bad input
raises :class:`~ccnn_hf.training.errors.UserError`; ``main`` prints it as one line and exits with 2.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from ..data import ArrayDataset
from ..data.memory import check_fits, forward_bytes
from ..data.tasks import TaskData, check_task, load_task_data
from ..presets import get_preset
from .allocator import keep_large_allocations
from .args import MODEL_OVERRIDES, dataset_options, parse_args, parse_labels, quickstart_notice
from .augment import augment_batch
from .checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from .errors import UserError, disk_errors
from .evaluate import accuracy, evaluate_points, plot_accuracy
from .files import fresh_folder, open_append, own_folder, refuse_link, remove, write_json_atomic, write_text_atomic
from .masks import batch_masks
from .model import (
    adapt_batch_norm,
    build_model,
    check_finite_state,
    enable_activation_checkpointing,
)
from .model_card import make_model_card
from .output import (
    MARKER,
    acquire_lock,
    check_output_dir,
    check_resume_data,
    check_resume_options,
    clear_run_files,
    data_fingerprint,
    read_marker,
    write_marker,
)
from .resolutions import ResolutionSchedule, parse_train_resolutions
from .selection import Selection, load_best, save_best
from .speed import COMPILE_ON_CPU, compile_for_training, compiles_on, regulariser
from .splits import IndexedDataset, hold_out, validation_size

__all__ = ["main", "run"]

_RECORDED_OVERRIDES = tuple(MODEL_OVERRIDES)  # the model flags a run records in results.json
EVAL_BATCH = 128  # the batch of the final evaluation across resolutions
WARM_BATCHES = 5  # batches that pay for compilation and warm-up, left out of --time_limit's pace
LOSS_SYNC_STEPS = 16  # on an accelerator, the steps whose losses are read back (and logged) together
# The wall-time estimate: the first PACE_SKIP steps (compilation, warm-up) are paid once, the pace is
# measured over the PACE_STEPS steps after them (counted in steps, so that every process reads the
# losses back, a collective operation, at the same steps).
PACE_SKIP, PACE_STEPS = 3, 10


class EpochPermutation(Sampler[int]):
    """A fresh, seed-determined permutation per epoch: resuming replays the same order.

    accelerate's prepared loader calls ``set_epoch(loader.iteration)`` whenever it starts an
    iteration, so the trainer sets the epoch through the loader it iterates (``loader.set_epoch``),
    never on the sampler alone; ``started_epoch`` records which epoch an iteration really used."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0
        self.started_epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.started_epoch = self.epoch
        return iter(torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist())

    def __len__(self) -> int:
        return self.size


class WarmupCosine:
    """Learning-rate factor per step: the official schedule, a linear warm-up from 1e-8 chained
    with a cosine over the steps after it (``torch.optim.lr_scheduler.LinearLR`` and
    ``CosineAnnealingLR(last_epoch=-warmup)`` stepped together, ``optim.py`` of the official code),
    in closed form. The chained cosine starts one step early: it runs
    ``2 / (1 + cos(pi (W - 1) / (T - W)))`` above the nominal lr at its peak (x1.006 for sMNIST's
    10 of 210 epochs) and reaches 0 on the last step ``T - 1``. A warm-up longer than a third of the
    run (no preset's; only an explicit ``--warmup``) would push that factor past 2 (to infinity when
    it is half the run): there the plain warm-up and cosine run instead, peaking at the nominal lr.
    The trainer shortens ``total_steps`` for a time budget or a resumed run; a LambdaLR saves and
    restores both attributes in its state."""

    def __init__(self, warmup_steps: int, total_steps: int) -> None:
        self.warmup_steps, self.total_steps = warmup_steps, total_steps

    def __call__(self, step: int) -> float:
        warmup, cosine_steps = self.warmup_steps, max(1, self.total_steps - self.warmup_steps)
        ramp = 1e-8 + (1 - 1e-8) * min(step, warmup) / warmup if warmup else 1.0
        if 2 * abs(warmup - 1) > cosine_steps:
            progress = max(0, step - warmup) / cosine_steps
            return ramp * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        angle = math.pi * min(step - warmup + 1, cosine_steps) / cosine_steps  # one step ahead
        return ramp * (1 + math.cos(angle)) / (1 + math.cos(math.pi * (warmup - 1) / cosine_steps))


def _on_main(accelerator: Accelerator, action):
    """Run ``action`` on the main process only; a UserError it raises is raised on every process
    (so that no process waits forever for one that stopped). Returns the action's result on the main process."""
    from accelerate.utils import broadcast_object_list

    message, result = None, None
    if accelerator.is_main_process:
        try:
            result = action()
        except UserError as error:
            message = str(error)
    if accelerator.num_processes > 1:
        box = [message]
        broadcast_object_list(box)
        message = box[0]
    if message is not None:
        raise UserError(message)
    return result


def _prepare_output(args, accelerator: Accelerator, own_files: list[str], data: dict):
    """Check, lock and (with --overwrite) clean the output folder; returns it and the lock (main
    process). ``data``: the fingerprint of the run's data, recorded in the marker (and compared on --resume)."""
    out = Path(args.output_dir)

    def prepare():
        marker = check_output_dir(out, args.overwrite, args.resume)
        with disk_errors(out, "the output folder"):
            try:
                out.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise UserError(f"--output_dir {out}: a part of that path is a file; choose a folder path") from None
        refuse_link(out)  # planted since check_output_dir looked
        with disk_errors(out, "the run's lock file"):
            lock = acquire_lock(out)
        try:
            marker = read_marker(out) if marker is not None else None  # as it is now that the folder is ours
            if args.resume:
                check_resume_options(marker, args)
                check_resume_data(marker, data, args.resume_changed_data)
            elif marker is not None:
                clear_run_files(out, marker)
            files = own_files + (marker.get("files", []) if args.resume else [])
            write_marker(out, args, "running", files, data)
            with disk_errors(out, "the output folder"):
                own_folder(out / "logs")
                own_folder(out / "checkpoints")
        except BaseException:
            lock.close()
            raise
        return lock

    return out, _on_main(accelerator, prepare)


def _trackers(report_to: str) -> list[str]:
    if report_to == "none":
        return []
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        if report_to == "tensorboard":
            raise UserError("--report_to tensorboard needs `pip install tensorboard`")
        return []
    return ["tensorboard"]


def _log(path: Path, record: dict) -> None:
    with disk_errors(path.parent, "the metrics log"), open_append(path) as f:
        f.write(json.dumps(record) + "\n")


def _run_length(args, recipe: Recipe, steps_per_epoch: int) -> tuple[int, int, str]:
    """Total optimiser steps, warm-up steps and a note on how the warm-up was chosen.

    Without ``--warmup`` the preset's warm-up keeps its share of the preset's run: a run shorter
    than the official one gets a proportionally shorter warm-up (the learning rate still peaks).
    An explicit ``--warmup`` as long as the whole run is kept, with a warning."""
    epochs = args.epochs if args.epochs is not None else recipe.epochs
    total = args.max_steps if args.max_steps is not None else max(1, round(epochs * steps_per_epoch))
    if args.warmup is not None:
        warmup = round(args.warmup * steps_per_epoch)
        note = (
            (
                f"warning: --warmup {args.warmup:g} epochs is {warmup} steps, as long as the whole run ({total} "
                "steps): the learning rate never reaches --lr (pass a shorter --warmup)"
            )
            if warmup >= total > 0 and warmup
            else ""
        )
        return total, warmup, note
    official = round(recipe.warmup_epochs * steps_per_epoch)
    share = round(total * recipe.warmup_epochs / recipe.epochs) if recipe.epochs else official
    if share < official:
        return (
            total,
            share,
            (
                f"warm-up: {share} steps, the preset's {recipe.warmup_epochs:g} of "
                f"{recipe.epochs:g} epochs scaled to this run's {total} steps (--warmup sets it)"
            ),
        )
    return total, official, ""


def _load_task(args) -> TaskData:
    task = load_task_data(
        args.dataset,
        seed=args.seed,
        options=dataset_options(args.dataset_option),
        train_split=args.train_split,
        test_split=args.test_split,
        image_column=args.image_column,
        audio_column=args.audio_column,
        label_column=args.label_column,
        dataset_config=args.dataset_config,
        image_size=args.image_size,
        sampling_rate=args.sampling_rate,
        clip_seconds=args.clip_seconds,
        labels=parse_labels(args.labels),
        max_samples=args.max_samples,
        drop_rate=args.drop_rate,
        drop_seed=args.drop_seed,
    )
    check_task(task)
    if args.augment and task.modality not in ("image", "sequence"):
        raise UserError(
            f"--augment applies to images (random crop and flip) and time series (random point dropout); "
            f"{task.name} is {task.modality} data"
        )
    return task


def _truncate_log(path: Path, step: int, redo: Sequence[str] = ()) -> bool:
    """Keep the records of steps up to ``step`` (a resumed run logs the later ones again), except
    those at ``step`` holding a key in ``redo`` (checks that run again); returns whether the kept
    records end with a test of the model at ``step``."""
    records = []
    refuse_link(path)
    if path.exists():
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        records = [
            r
            for r in records
            if r.get("step", 0) < step or (r.get("step", 0) == step and not any(key in r for key in redo))
        ]
        with disk_errors(path.parent, "the metrics log"):
            write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
    return bool(records) and "test_accuracy" in records[-1] and records[-1]["step"] == step


def loss_sync_steps(device: torch.device) -> int:
    """Optimiser steps whose losses are read back to the host at once. Reading a loss waits for the
    device to finish the step; on an accelerator one read per step would stall the queue of work
    every step, so the losses are gathered every :data:`LOSS_SYNC_STEPS` steps (and always before a
    checkpoint, so that no checkpoint follows a non-finite loss). On the CPU a read costs nothing."""
    return 1 if device.type == "cpu" else LOSS_SYNC_STEPS


@dataclass
class PendingStep:
    """An optimiser step whose loss is still on the device, with what its log record needs."""

    step: int
    epoch: int
    loss: torch.Tensor  # [cross-entropy, weighted penalty]
    lr: float
    outputs: list[tuple[torch.Tensor, torch.Tensor]]  # (logits, dataset indices) per micro-batch


def _non_finite_samples(outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[int]:
    """Dataset indices of the samples whose logits are not finite, from (logits, indices) per micro-batch."""
    bad = []
    for logits, index in outputs:
        bad += index[~torch.isfinite(logits.float().reshape(len(index), -1)).all(dim=1)].tolist()
    return bad


@dataclass(frozen=True)
class Recipe:
    """The optimisation settings of a run: the preset's official recipe, with the flags' overrides."""

    lr: float
    weight_decay: float  # weight of the official L2-norm penalty
    batch_size: int  # per process
    grad_accum: int
    epochs: float  # the preset's run and warm-up (the warm-up's share of the run carries over)
    warmup_epochs: float
    augment: bool  # the preset's official augmentation, for the data it was made for (or --augment)


@dataclass
class Job:
    """Everything a run trains and evaluates, built and checked before the output folder is touched."""

    task: TaskData
    points: list
    skipped: list[str]
    model: torch.nn.Module
    init_info: dict
    binary: bool
    sampler: "EpochPermutation"
    loader: DataLoader
    schedule: ResolutionSchedule | None
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    data: dict  # the data's fingerprint, recorded in the run marker
    augment: bool  # every training batch augmented (training.augment.augment_batch)
    compiled: bool  # the training step compiled (--compile, where it pays: training.speed.compiles_on)
    validation: ArrayDataset | None = None  # held out of the training data (--val_split)


@dataclass
class Trained:
    """What the loop hands to evaluation: the model and how the run went."""

    model: torch.nn.Module
    total_steps: int
    epoch_times: list[float]
    train_time: float
    selection: Selection | None = None  # which weights --val_split selected


def run(argv: Sequence[str] | None = None) -> dict:
    """Train and evaluate as the command line says; returns the results (also written to results.json).
    Raises :class:`UserError` for bad input (flags, data, output folder, checkpoints, disk)."""
    args = parse_args(argv)
    recipe = _recipe(args)
    accelerator = Accelerator(
        cpu=args.cpu,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=recipe.grad_accum,
        log_with=_trackers(args.report_to) or None,
        project_dir=args.output_dir,
        # the schedule counts optimiser steps (the trainer steps it once per step, below): accelerate's
        # default would step it once per process per step, running it num_processes times too fast
        step_scheduler_with_optimizer=False,
    )
    notice = quickstart_notice(argv)
    if notice:
        accelerator.print(notice)
    job = _build(args, recipe, accelerator)
    out, lock = _prepare_output(args, accelerator, ["ccnn"] if accelerator.log_with else [], job.data)
    try:
        trained = Trainer(args, accelerator, recipe, job, out).train()
        accelerator.wait_for_everyone()
        results = _on_main(accelerator, lambda: _evaluate_and_save(args, accelerator, recipe, job, trained, out)) or {}
        accelerator.end_training()
    finally:
        if lock is not None:
            lock.close()
    return results


def _recipe(args) -> Recipe:
    """Step 1: the preset's official recipe, with what the flags override."""
    try:
        official = get_preset(args.preset).train
    except ValueError as error:
        raise UserError(f"--preset: {error}") from None
    return Recipe(
        lr=args.lr if args.lr is not None else official["lr"],
        weight_decay=args.weight_decay if args.weight_decay is not None else official["weight_decay"],
        batch_size=args.batch_size or official["batch_size"],
        grad_accum=args.grad_accum or official["grad_accum"],
        epochs=official["epochs"],
        warmup_epochs=official["warmup_epochs"],
        augment=args.augment or (official["augment"] and not args.no_augment),
    )


def _build(args, recipe: Recipe, accelerator: Accelerator) -> Job:
    """Step 2: the data, the evaluation points, the model, the loader and the run's length."""
    set_seed(args.seed)
    with accelerator.main_process_first():  # generated data is cached once, then read by the others
        task = _load_task(args)
    validation = None
    if args.val_split:
        task, validation = hold_out(task, validation_size(args.val_split, len(task.train)))
    points, skipped = task.eval_points(args.eval_resolutions.split(",") if args.eval_resolutions else None)
    schedule = (
        ResolutionSchedule(parse_train_resolutions(args.train_resolutions, task), args.seed)
        if args.train_resolutions
        else None
    )
    augment = _augments(args, recipe, task)
    set_seed(args.seed)
    model, init_info = build_model(args, task, say=accelerator.print, point_dropout=augment and task.data_dim == 1)
    if getattr(model.config, "model_type", None) == "ccnn":  # timm baselines are not estimated
        _check_training_activations(model.config, task, schedule, recipe.batch_size, accelerator.device)
        points, too_large = _evaluable_points(
            model.config, task, points, bool(args.eval_resolutions), accelerator.device
        )
        skipped += too_large
    for note in skipped:
        accelerator.print(f"evaluation {note}")
    if args.gradient_checkpointing:
        accelerator.print(f"activation checkpointing: {enable_activation_checkpointing(model)}")
    compiled = args.compile and compiles_on(accelerator.device.type)
    if args.compile and not compiled:
        accelerator.print(
            "--compile: the training steps stay eager on the CPU, where compiled steps measured slower "
            f"(benchmarks/results/training.md); {COMPILE_ON_CPU}=1 compiles them anyway"
        )
    if compiled:
        accelerator.print(f"compiled: {compile_for_training(model, accelerator.device.type)}")
    sampler = EpochPermutation(len(task.train), args.seed)
    # Its own generator: starting an epoch must not draw from the global RNG that dropout uses,
    # or a resumed run would see other dropout masks than an uninterrupted one.
    loader = DataLoader(
        IndexedDataset(task.train),
        batch_size=recipe.batch_size,
        sampler=sampler,
        drop_last=len(task.train) >= recipe.batch_size,
        generator=torch.Generator().manual_seed(args.seed),
    )
    steps_per_epoch = max(1, math.ceil(len(loader) / (accelerator.num_processes * recipe.grad_accum)))
    total_steps, warmup_steps, warmup_note = _run_length(args, recipe, steps_per_epoch)
    if warmup_note:
        accelerator.print(warmup_note)
    return Job(
        task,
        points,
        skipped,
        model,
        init_info,
        model.config.num_labels == 1,
        sampler,
        loader,
        schedule,
        steps_per_epoch,
        total_steps,
        warmup_steps,
        data_fingerprint(task, validation),
        augment,
        compiled,
        validation,
    )


def _augments(args, recipe: Recipe, task: TaskData) -> bool:
    """Whether the training batches are augmented: with --augment, or by a CIFAR preset's recipe
    on the data it was made for (CIFAR-10/100, recognised by name, channels and size)."""
    return args.augment or (recipe.augment and task.known in ("cifar10", "cifar100"))


def _activations_fit(config, what: str, batch: int, shape: Sequence[int], training: bool, device) -> None:
    """Refuse ``what`` when a forward (``training``: and backward) of ``batch`` inputs of ``shape``
    cannot fit on ``device`` (the lower bound :func:`~ccnn_hf.data.memory.forward_bytes`)."""
    need = forward_bytes(config.num_channels, config.hidden_channels, config.num_blocks, batch, shape, training)
    step = "a training step" if training else "evaluating a batch"
    check_fits(f"{what}{step} of {batch} at {'x'.join(map(str, shape))} with this model", need, device)


def _check_training_activations(
    config, task: TaskData, schedule: ResolutionSchedule | None, batch_size: int, device: torch.device
) -> None:
    """Refuse a training size (the base, or each ``--train_resolutions`` setting) whose step cannot fit."""
    if schedule is None:
        _activations_fit(config, f"--batch_size {batch_size}: ", batch_size, task.base_resolution, True, device)
    for setting in schedule.settings if schedule else []:
        _activations_fit(
            config, f"--train_resolutions {setting}: ", batch_size, task.input_shape(setting), True, device
        )


def _evaluable_points(
    config, task: TaskData, points: list, requested: bool, device: torch.device
) -> tuple[list, list[str]]:
    """The evaluation points whose batches fit on ``device``; one the user asked for that does not
    is refused, a default one is skipped with a note saying why."""
    kept, notes = [], []
    batch = min(EVAL_BATCH, len(task.test))
    for point in points:
        shape = point.resolution or task.input_shape(point.sampling_rate)
        try:
            _activations_fit(config, "", batch, shape, False, device)
        except UserError as error:
            if requested:
                raise UserError(f"--eval_resolutions {point.label}: {error}") from None
            notes.append(f"at {point.label} skipped: {error}")
            continue
        kept.append(point)
    return kept, notes


class Trainer:
    """Step 3: the training loop, resumable at any optimiser step.

    One epoch is :meth:`_epoch`; each batch goes through :meth:`_batch` (the model's one call) and
    each optimiser step ends in :meth:`_after_step` (log, divergence check, checkpoint); a finished
    epoch ends in :meth:`_end_epoch` (test accuracy); the first epoch's last step fits the run to
    ``--time_limit`` (:meth:`_fit_budget`).
    """

    def __init__(self, args, accelerator: Accelerator, recipe: Recipe, job: Job, out: Path) -> None:
        self.args, self.accelerator, self.recipe, self.job, self.out = args, accelerator, recipe, job, out
        self.metrics_file = out / "logs" / "metrics.jsonl"
        self.step, self.epoch, self.batches_in_epoch = 0, 0, 0
        self.started, self.first_step = 0.0, 0  # when and at which step this process's training began
        self.pace_mark = 0.0  # when the steps that measure the pace began
        self.epoch_times: list[float] = []
        self.warm_time: float | None = None  # seconds of the first epoch's first WARM_BATCHES batches
        self.epoch_started, self.epoch_skipped = 0.0, 0  # when this epoch's loop began, batches it skipped
        self.pending: list[PendingStep] = []  # steps whose losses are not logged yet
        self.selection = Selection(args.patience) if job.validation is not None else None
        self.sync_steps = loss_sync_steps(accelerator.device)
        self.lr_schedule = WarmupCosine(job.warmup_steps, job.total_steps)
        optimizer = torch.optim.AdamW(job.model.parameters(), lr=recipe.lr, weight_decay=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_schedule)
        self.model, self.optimizer, self.loader, self.scheduler = accelerator.prepare(
            job.model, optimizer, job.loader, scheduler
        )
        self.main_input = accelerator.unwrap_model(self.model).main_input_name
        # the official L2-norm penalty is CCNN-specific
        regularise = recipe.weight_decay and not args.timm_model
        self.penalty = regulariser(accelerator.unwrap_model(self.model), job.compiled) if regularise else None

    @property
    def total_steps(self) -> int:
        return self.lr_schedule.total_steps

    def train(self) -> Trained:
        args, accelerator, task = self.args, self.accelerator, self.job.task
        overrides = ", ".join(f"{k} {v}" for k, v in _overrides(args).items())
        accelerator.print(
            f"data: {task.name} ({task.modality}, {len(task.train)} train / {len(task.test)} test), "
            f"in_channels={task.in_channels}, labels={task.num_classes}, base "
            f"{task.sampling_rate or task.base_resolution}; model: {args.timm_model or args.preset}"
            f"{f' ({overrides})' if overrides and not args.timm_model else ''}, "
            f"{sum(p.numel() for p in self.model.parameters()):,} parameters; output: {self.out}"
        )
        accelerator.init_trackers(
            "ccnn", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        )
        if args.resume:
            self._resume()
        accelerator.print(self._plan())
        self.bar = tqdm(
            total=self.total_steps, initial=self.step, desc="training", disable=not accelerator.is_local_main_process
        )
        self.started, self.first_step = time.perf_counter(), self.step
        while self.step < self.total_steps and not (self.selection and self.selection.stop):
            if self._epoch():
                self._end_epoch()
        self.bar.close()
        train_time = time.perf_counter() - self.started
        model = accelerator.unwrap_model(self.model)
        if self.selection is not None:
            self._select_best(model)
        return Trained(model, self.step, self.epoch_times, train_time, self.selection)

    def _select_best(self, model: torch.nn.Module) -> None:
        """Validate the final weights (unless their epoch's end did), then load the best ones (main process)."""
        if self.selection.validated_step != self.step:
            self._validate()
        self.accelerator.wait_for_everyone()
        selection = self.selection
        if self.accelerator.is_main_process:
            load_best(model, self.out / "checkpoints", selection)
        stopped = f"stopped early after {selection.patience} epochs without improvement; " if selection.stop else ""
        self.accelerator.print(
            f"{stopped}selected the weights of step {selection.best_step} (epoch {selection.best_epoch}): "
            f"validation accuracy {100 * selection.best_accuracy:.2f} %"
        )

    def _plan(self) -> str:
        """The run's length as planned: optimiser steps, batch, epochs and where the length comes from."""
        args, recipe, per_epoch = self.args, self.recipe, self.job.steps_per_epoch
        processes = self.accelerator.num_processes
        batch = f"{recipe.batch_size}" + (f" x {processes} processes" if processes > 1 else "")
        batch += f" x {recipe.grad_accum} accumulated" if recipe.grad_accum > 1 else ""
        if args.max_steps is not None:
            source = "; --max_steps"
        elif args.epochs is None:
            source = f"; the preset's {recipe.epochs:g} epochs: --epochs, --max_steps or --time_limit shorten it"
        else:
            source = ""
        text = (
            f"plan: {self.total_steps:,} optimiser steps of batch {batch} "
            f"({self.total_steps / per_epoch:.3g} epochs of {per_epoch:,} steps{source})"
        )
        if self.step:
            text += f", resumed at step {self.step:,}"
        if args.time_limit and self.epoch == 0:
            text += f"; --time_limit {args.time_limit:g} s keeps the epochs that fit, decided after the first"
        timed = self.total_steps - self.step > PACE_SKIP + PACE_STEPS
        return text + ("; the estimated time follows once the first steps are timed" if timed else "")

    def _estimate_time(self) -> None:
        """Print the run's estimated wall time once, when the pace is known: this process's first
        :data:`PACE_SKIP` steps (compilation, warm-up) are paid once, the remaining steps take the
        pace of the :data:`PACE_STEPS` steps after them."""
        ran = self.step - self.first_step
        if ran not in (PACE_SKIP, PACE_SKIP + PACE_STEPS) or self.step >= self.total_steps:
            return
        self._log_pending()  # waits for the device: the times include the steps' work
        now = time.perf_counter()
        if ran == PACE_SKIP:
            self.pace_mark = now
            return
        pace = (now - self.pace_mark) / PACE_STEPS
        total = now - self.started + pace * (self.total_steps - self.step)
        if not self.accelerator.is_main_process:
            return
        tqdm.write(  # above the progress bar
            f"estimate: training takes ~{_duration(total)} for {self.total_steps - self.first_step:,} steps "
            f"({pace:.3g} s per step over steps {self.step - PACE_STEPS + 1}-{self.step}; the tests and the final "
            "evaluation come on top)"
        )

    def _validate(self) -> None:
        """Validation accuracy of the current weights (main process, shared with the others),
        logged; the best weights so far are written atomically."""
        accelerator, validation = self.accelerator, self.job.validation
        result = [None, None]
        if accelerator.is_main_process:
            with eager_if_compiled(self.job):
                result = list(
                    accuracy(
                        accelerator.unwrap_model(self.model),
                        validation.inputs,
                        validation.labels,
                        self.job.binary,
                        2 * self.recipe.batch_size,
                        masks=validation,
                    )
                )
        if accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(result)
        acc, loss = result
        epoch = self.epoch + self.batches_in_epoch / len(self.loader)  # a fraction when the run ended mid-epoch
        epoch = int(epoch) if epoch == int(epoch) else round(epoch, 3)
        if self.selection.update(self.step, epoch, acc, loss) and accelerator.is_main_process:
            with disk_errors(self.out / "checkpoints", "the best-validation weights"):
                save_best(accelerator.unwrap_model(self.model), self.out / "checkpoints", self.selection)
        if accelerator.is_main_process:
            record = {"step": self.step, "epoch": epoch, "val_accuracy": acc, "val_loss": loss}
            _log(self.metrics_file, record)
            accelerator.log({"val/accuracy": acc, "val/loss": loss}, step=self.step)

    def _resume(self) -> None:
        """Continue from the newest checkpoint; test its weights if the run was killed before the test."""
        ckpt = latest_checkpoint(self.out / "checkpoints")
        state = load_checkpoint(self.accelerator, ckpt)
        self.step, self.epoch, self.batches_in_epoch = state["step"], state["epoch"], state["batches_in_epoch"]
        self.lr_schedule.total_steps = state["total_steps"]
        self.accelerator.print(f"resumed from {ckpt} (step {self.step})")
        epoch_end = not self.batches_in_epoch and self.step < self.total_steps and self.epoch > 0
        if self.selection is not None:  # the state as the checkpoint saw it: before its step's validation
            self.selection = Selection.from_state(state["selection"], self.args.patience)
        # the validation at this step (and at an epoch's end its test) runs again, in order
        redo = ("val_accuracy", "test_accuracy") if epoch_end else ("val_accuracy",)
        redo = redo if self.selection is not None else ()
        main = self.accelerator.is_main_process
        tested = _truncate_log(self.metrics_file, self.step, redo) if main else True
        if self.selection is not None and epoch_end:
            self._end_epoch_checks()
        elif not tested and self._tests_epoch() and epoch_end:
            # killed between an epoch's last checkpoint and its test: the restored weights are the ones to test
            self._test()

    def _epoch(self) -> bool:
        """Train through one epoch (the rest of it, after a resume); False when the run ended inside it."""
        self.model.train()
        skip = self.batches_in_epoch
        batches = self.accelerator.skip_first_batches(self.loader, skip) if skip else self.loader
        batches.set_epoch(self.epoch)  # through accelerate's wrapper: it re-sets the sampler's epoch from its own count
        started, outputs = time.perf_counter(), []
        self.epoch_started, self.epoch_skipped = started, skip
        for x, y, index in batches:
            if self.epoch == 0 and self.batches_in_epoch - skip == WARM_BATCHES:
                self._log_pending()  # waits for the device: the warm-up time includes its work
                self.warm_time = time.perf_counter() - started
            if self.job.sampler.started_epoch != self.epoch:
                raise RuntimeError(
                    f"the sampler runs epoch {self.job.sampler.started_epoch}, the trainer epoch {self.epoch}"
                )
            loss, logits = self._batch(x, y, index)  # the loss: [cross-entropy, weighted penalty]
            outputs.append((logits, index))  # kept to name bad samples, no sync
            self.batches_in_epoch += 1
            if self.accelerator.sync_gradients:  # an optimiser step was taken
                self._after_step(loss, outputs)
                outputs = []
                if self.step >= self.total_steps:
                    return False
        self.epoch_times.append(time.perf_counter() - started)
        return True

    def _batch(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward of one micro-batch (the optimiser steps when accumulation says so);
        returns the cross-entropy and the weighted penalty (one tensor) and the logits."""
        accelerator, model = self.accelerator, self.model
        with accelerator.accumulate(model):
            target = y.float() if self.job.binary else y
            x, setting = self.job.schedule.batch(self.job.task, self.step, x, index) if self.job.schedule else (x, {})
            masks = batch_masks(self.job.task.train, index, x.device)
            if self.job.augment:  # keyed by micro-batch and process: a resumed run draws the same augmentation
                batch = self.epoch * len(self.loader) + self.batches_in_epoch
                key = batch * accelerator.num_processes + accelerator.process_index
                x, masks = augment_batch(x, masks, self.args.seed, key)
            output = model(**{self.main_input: x}, **setting, **masks, labels=target)
            penalty = self.recipe.weight_decay * self.penalty() if self.penalty is not None else 0.0
            accelerator.backward(output.loss + penalty)
            if accelerator.sync_gradients and self.args.grad_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), self.args.grad_clip)
            self.optimizer.step()
            if accelerator.sync_gradients:
                self.scheduler.step()
            self.optimizer.zero_grad()
        # copies: under CUDA graphs (a compiled timm baseline computes its loss inside the graph) the
        # outputs' memory is reused by later steps, while these are read when the losses are logged
        loss = output.loss.detach().float()
        losses = torch.stack([loss, penalty.detach().float() if torch.is_tensor(penalty) else loss.new_zeros(())])
        return losses, output.logits.detach().clone()

    def _after_step(self, loss: torch.Tensor, outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Count the step; log it, stop on a non-finite loss and checkpoint when due."""
        accelerator = self.accelerator
        self.step += 1
        self.bar.update(1)
        self.pending.append(PendingStep(self.step, self.epoch, loss, self.scheduler.get_last_lr()[0], outputs))
        end_of_epoch = self.batches_in_epoch == len(self.loader)
        if self.args.time_limit and self.epoch == 0 and end_of_epoch:
            self._log_pending()  # waits for the device, so that the first epoch's time includes its work
            self._fit_budget()  # before the checkpoint of this step, which must carry the fitted length
        saves = self.step % (self.args.save_steps or self.job.steps_per_epoch) == 0 or self.step == self.total_steps
        if saves or end_of_epoch or len(self.pending) >= self.sync_steps:
            self._log_pending()  # before any checkpoint: none may follow a non-finite loss
        if saves:
            with disk_errors(self.out / "checkpoints", f"the checkpoint of step {self.step}"):
                save_checkpoint(
                    accelerator,
                    self.out / "checkpoints",
                    self.step,
                    {
                        "epoch": self.epoch + 1 if end_of_epoch else self.epoch,
                        "batches_in_epoch": 0 if end_of_epoch else self.batches_in_epoch,
                        "total_steps": self.total_steps,
                        **({"selection": self.selection.state()} if self.selection else {}),
                    },
                    self.args.save_total_limit,
                )
        self._estimate_time()

    def _log_pending(self) -> None:
        """Read the pending steps' losses back in one transfer (the mean over processes), log each
        step, and stop at the first non-finite loss, naming its samples."""
        if not self.pending:
            return
        accelerator = self.accelerator
        losses = accelerator.reduce(torch.stack([p.loss for p in self.pending]), reduction="mean").tolist()
        pending, self.pending = self.pending, []
        for done, (loss, penalty) in zip(pending, losses):
            if not math.isfinite(loss + penalty):  # every process sees the same reduced loss and stops here
                samples = _non_finite_samples(done.outputs)
                source = self.job.task.train_source_index  # (--val_split: indices in the split as loaded)
                samples = samples if source is None else source[samples].tolist()
                _diverged(self.out, done.step, done.epoch, loss + penalty, samples, self.job.task.name)
            # the loss is the cross-entropy alone, as the official code logs it; the penalty on its own
            record = {"step": done.step, "epoch": done.epoch, "loss": loss, "lr": done.lr}
            record.update({"penalty": penalty} if self.penalty is not None else {})
            accelerator.log(record, step=done.step)
            if accelerator.is_main_process:
                _log(self.metrics_file, record)
        if accelerator.is_main_process:
            shown = {"loss": f"{losses[-1][0]:.3f}"} | ({"penalty": f"{losses[-1][1]:.3f}"} if self.penalty else {})
            self.bar.set_postfix(shown)

    def _end_epoch(self) -> None:
        """Count the epoch, validate and test the model."""
        self.epoch += 1
        self.batches_in_epoch = 0
        self._end_epoch_checks()

    def _end_epoch_checks(self) -> None:
        """Validate the weights at an epoch's end (with --val_split), test them when due."""
        if self.selection is not None:
            self._validate()
        if self._tests_epoch():
            self._test()

    def _fit_budget(self) -> None:
        """Shorten the run to the epochs that fit ``--time_limit``, agreed by every process, at the
        last step of the first epoch (so that its checkpoint, and a run resumed from it, keep them)."""
        elapsed = time.perf_counter() - self.epoch_started
        ran = len(self.loader) - self.epoch_skipped
        fit = torch.tensor(self._epochs_fit(self.args.time_limit, elapsed, ran), device=self.accelerator.device)
        epochs_fit = int(self.accelerator.reduce(fit, reduction="min"))
        self.lr_schedule.total_steps = min(self.total_steps, epochs_fit * self.job.steps_per_epoch)
        self.bar.total = self.total_steps
        self.accelerator.print(
            f"time budget: {epochs_fit} epochs ({self.total_steps} steps) fit in {self.args.time_limit:g} s"
        )

    def _tests_epoch(self) -> bool:
        """Whether the epoch just finished is tested (every ``--test_every``-th; the final weights
        are always evaluated after training)."""
        return self.epoch > 0 and self.epoch % self.args.test_every == 0

    def _epochs_fit(self, budget: float, first: float, ran: int) -> int:
        """Epochs that fit ``budget`` seconds, from the ``ran`` batches of the first epoch this
        process ran in ``first`` seconds (all of them, or those after a resume): their first
        :data:`WARM_BATCHES` batches (compilation, allocator and cuDNN warm-up) are paid once, the
        rest at the pace of the batches after them."""
        batches = len(self.loader)
        if self.warm_time is None or ran <= 2 * WARM_BATCHES:
            return max(1, int(budget // (first * batches / max(ran, 1))))
        steady = (first - self.warm_time) / (ran - WARM_BATCHES) * batches
        return max(1, 1 + int((budget - first) // steady))

    def _test(self) -> None:
        """Test accuracy of the current weights, logged (main process)."""
        accelerator, task = self.accelerator, self.job.task
        if accelerator.is_main_process:
            with eager_if_compiled(self.job):
                acc, test_loss = accuracy(
                    accelerator.unwrap_model(self.model),
                    task.test.inputs,
                    task.test.labels,
                    self.job.binary,
                    2 * self.recipe.batch_size,
                    masks=task.test,
                )
            _log(
                self.metrics_file,
                {"step": self.step, "epoch": self.epoch, "test_accuracy": acc, "test_loss": test_loss},
            )
            accelerator.log({"test/accuracy": acc, "test/loss": test_loss}, step=self.step)


def _diverged(out: Path, step: int, epoch: int, loss: float, samples: list[int], dataset: str):
    """Stop a run whose loss is no longer finite; nothing of it is saved after the last checkpoint."""
    last = latest_checkpoint(out / "checkpoints")
    where = (
        f"; non-finite outputs for {dataset} training sample(s) {sorted(samples)[:10]} (dataset indices)"
        if samples
        else ""
    )
    raise UserError(
        f"training stopped at step {step} (epoch {epoch}): the loss is {loss}{where}. Nothing from "
        f"this step was saved ({'last checkpoint: ' + last.name if last else 'no checkpoint yet'}); "
        "check those samples, or lower --lr / set --grad_clip"
    )


def eager_if_compiled(job: Job) -> contextlib.AbstractContextManager:
    """Run the compiled parts eagerly inside this context (a no-op when the job compiled nothing): the
    graphs serve the training step; evaluation batches, eval mode and the BatchNorm re-estimation's
    cumulative average would each be one more graph (or cannot be traced), towards torch's
    recompile limit."""
    return torch.compiler.set_stance("force_eager") if job.compiled else contextlib.nullcontext()


def _save_model(args, model, out: Path, data: dict) -> None:
    """Save the model folder files into ``out`` so that no half-written model ever looks complete:
    everything is written into a hidden folder first, recorded in the run marker as the run's own
    files, and each finished file renamed into place (``results.json``, written after this, marks
    the folder complete). A file in ``out`` that no run there wrote is never replaced."""
    with disk_errors(out, "the trained model"):
        tmp = fresh_folder(out / ".tmp-model")  # made now: a planted link there is removed, never followed
        model.save_pretrained(tmp)
        names = sorted(item.name for item in tmp.iterdir())
        marker = read_marker(out) or {}
        final = ["results.json", "accuracy_vs_resolution.png"] + ([] if args.timm_model else ["README.md"])
        _refuse_foreign(out, names + final, marker.get("files", []), tmp)
        remove(out / "results.json")  # the folder is incomplete until the new results land
        write_marker(out, args, "saving", marker.get("files", []) + names + final, data)
        for name in names:
            os.replace(tmp / name, out / name)
        tmp.rmdir()


def _refuse_foreign(out: Path, names: list[str], owned: list[str], kept: Path) -> None:
    """Refuse to write ``names`` into ``out`` where one is there and not ``owned`` (listed in the
    run marker): a user's file beside an earlier run's (which --overwrite keeps) is never replaced."""
    foreign = [name for name in names if name not in owned and os.path.lexists(out / name)]
    if foreign:
        raise UserError(
            f"{out} holds {', '.join(foreign)}, which no ccnn-train run there wrote; nothing was replaced. The "
            f"trained model is in {kept}: move those files away and run again with --resume to save it there"
        )


def _evaluate_and_save(args, accelerator: Accelerator, recipe: Recipe, job: Job, trained: Trained, out: Path) -> dict:
    """Steps 4 and 5 (main process): evaluate the final weights across resolutions, then save the
    model folder, the results, the plot and the card (and push them when asked)."""
    model, task = trained.model, job.task
    with eager_if_compiled(job):
        bn_samples = adapt_batch_norm(model, task.train, batch_size=128)  # statistics of the final weights
        check_finite_state(model)  # a model with non-finite weights or statistics is never saved
        evaluation = evaluate_points(model, task, job.points, job.binary, batch_size=EVAL_BATCH)
    results = _results(args, accelerator, recipe, job, trained, evaluation, bn_samples)
    _save_model(args, model, out, job.data)
    with disk_errors(out, "the plot and the model card"):
        plot_accuracy(evaluation, out / "accuracy_vs_resolution.png", f"{args.preset} on {task.name}")
        if not args.timm_model:  # the card points at where the model really is
            card = make_model_card(results, args.hub_model_id if args.push_to_hub else str(out.resolve()))
            write_text_atomic(out / "README.md", str(card))
    with disk_errors(out, "results.json"):
        write_json_atomic(out / "results.json", results)
    write_marker(out, args, "complete", (read_marker(out) or {}).get("files", []), job.data)
    for row in evaluation:
        accelerator.print(f"  {row['setting']:>10} {row['mode']:>10}: accuracy {100 * row['accuracy']:.2f} %")
    if args.push_to_hub:
        _push(args, out, f"ccnn-train: {args.preset} on {task.name}")
        accelerator.print(f"pushed to {args.hub_model_id}")
    accelerator.print(
        f"saved to {out.resolve()} (model, results.json, README.md model card, accuracy_vs_resolution.png)"
    )
    return results


def _results(
    args, accelerator: Accelerator, recipe: Recipe, job: Job, trained: Trained, evaluation: list[dict], bn_samples: int
) -> dict:
    """The run's ``results.json``: data, model, recipe as run, timings, hardware and the evaluation."""
    model, task = trained.model, job.task
    settings = job.schedule.settings if job.schedule else None
    warmup_epochs = round(job.warmup_steps / job.steps_per_epoch, 4)
    recipe_text = (
        f"lr {recipe.lr}, weight decay (official L2-norm penalty) {recipe.weight_decay}, "
        f"{trained.total_steps} steps of batch {recipe.batch_size} x {accelerator.num_processes} processes, "
        f"warm-up {warmup_epochs:g} epochs, precision {accelerator.mixed_precision}"
        + (
            (", random crop and flip" if job.task.data_dim == 2 else ", random point dropout")
            + (" (--augment)" if args.augment else " (the preset's recipe)")
            if job.augment
            else ""
        )
        + (f", each step at a setting drawn from {settings}" if settings else "")
        + (_selection_text(job, trained.selection) if trained.selection else "")
    )
    epoch_times = trained.epoch_times
    return {
        "preset": args.preset,
        "dataset": task.name,
        "modality": task.modality,
        "mode": model.config.mode,
        "base_setting": f"{task.sampling_rate / 1000:g} kHz"
        if task.modality == "audio"
        else "x".join(map(str, task.base_resolution)),
        "base_resolution": list(task.base_resolution),
        "base_sampling_rate": task.sampling_rate,
        "model_base_resolution": list(model.config.base_resolution),
        "model_base_sampling_rate": model.config.base_sampling_rate,
        "num_labels": model.config.num_labels,
        "labels": task.label_names,
        "train_samples": len(task.train),
        "test_samples": len(task.test),
        "params": sum(p.numel() for p in model.parameters()),
        "overrides": _overrides(args),
        "recipe": recipe_text,
        "steps": trained.total_steps,
        "train_resolutions": settings,
        "time_per_epoch_s": sum(epoch_times) / len(epoch_times) if epoch_times else trained.train_time,
        "train_time_s": trained.train_time,
        "hardware": f"{platform.machine()} CPU x{torch.get_num_threads()} threads"
        if not torch.cuda.is_available()
        else torch.cuda.get_device_name(),
        "evaluation": evaluation,
        **({"selection": _selection_record(args, job, trained)} if trained.selection else {}),
        "skipped_evaluations": job.skipped,
        "batch_norm_statistics_samples": bn_samples,
        **job.init_info,
        "description": f"a CCNN (`{args.preset}`) trained on {task.name}."
        if not args.timm_model
        else f"timm `{args.timm_model}` baseline trained on {task.name} with the recipe of `{args.preset}`.",
    }


def _overrides(args) -> dict:
    """The model flags the run sets (its preset's settings it overrides)."""
    return {k: v for k, v in vars(args).items() if k in _RECORDED_OVERRIDES and v is not None}


def _duration(seconds: float) -> str:
    """``seconds`` for a person: ``"40 s"``, ``"12 min"``, ``"5.5 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _selection_text(job: Job, selection: Selection) -> str:
    """The recipe's words (and the card's) for the weights --val_split selected."""
    stopped = f"; stopped early after {selection.patience} epochs without improvement" if selection.stop else ""
    return (
        f", the best-validation weights (step {selection.best_step}, {100 * selection.best_accuracy:.2f} % on "
        f"{len(job.validation)} held-out training samples{stopped})"
    )


def _selection_record(args, job: Job, trained: Trained) -> dict:
    """What results.json says of --val_split: the held-out samples, the weights selected (whose
    test accuracy ``evaluation`` reports) and whether --patience stopped the run."""
    selection = trained.selection
    return {
        "val_split": args.val_split,
        "validation_samples": len(job.validation),
        "selected_step": selection.best_step,
        "selected_epoch": selection.best_epoch,
        "validation_accuracy": selection.best_accuracy,
        "validation_loss": selection.best_loss,
        "patience": args.patience,
        "stopped_early": selection.stop,
        "steps_trained": trained.total_steps,
    }


def _push(args, out: Path, message: str) -> None:
    """Upload the output folder (no checkpoints, logs or hidden files) to ``--hub_model_id``."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(args.hub_model_id, exist_ok=True, private=args.hub_private)
        api.upload_folder(
            repo_id=args.hub_model_id,
            folder_path=str(out),
            ignore_patterns=["checkpoints/*", "logs/*", ".*"],
            commit_message=message,
        )
    except Exception as error:  # no token, no access, offline (the transport's own error types): the run is safe
        text = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise UserError(
            f"the run is saved in {out.resolve()}, but pushing it to {args.hub_model_id} failed "
            f"({type(error).__name__}: {text}); log in with `hf auth login` and run again with "
            "--resume --push_to_hub, or upload the folder yourself"
        ) from error


def _resume_hint(argv: Sequence[str] | None) -> str:
    """What to do after an interrupted run: resume from its newest complete checkpoint, or start again."""
    try:
        args = parse_args(argv)
    except (UserError, SystemExit):
        return "nothing was trained"
    out = Path(args.output_dir)
    last = latest_checkpoint(out / "checkpoints")
    if last is None:
        again = " with --overwrite" if (out / MARKER).exists() and not args.overwrite else ""
        return f"no checkpoint was written in {out}; run the command again{again} to start afresh"
    if args.resume:
        return f"the run can continue from its last checkpoint {last}: run the same command again"
    flag = "--resume instead of --overwrite" if args.overwrite else "--resume"
    return (
        f"the run can continue from its last checkpoint {last}: run the same command with {flag} (--output_dir {out})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: a :class:`UserError` becomes one line on stderr and exit status 2; Ctrl-C
    one line saying how to resume, and exit status 130 (the shell's code for SIGINT)."""
    keep_large_allocations()
    try:
        run(argv)
        return
    except UserError as error:
        print(f"ccnn-train: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass  # said below, once the interrupted run's frames (and its progress bar) are gone
    print(f"ccnn-train: interrupted; {_resume_hint(argv)}", file=sys.stderr)
    raise SystemExit(130)


if __name__ == "__main__":
    main()
