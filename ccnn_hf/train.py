"""``ccnn-train``: train a CCNN with Accelerate and evaluate it across resolutions.

Examples::

    ccnn-train                                              # small CCNN on 8x8 digits, a few minutes on CPU
    ccnn-train --preset smnist_4_140 --dataset smnist --epochs 5
    ccnn-train --dataset path/to/fsdd_audiofolder.zip --preset sc_raw_4_140 --sampling_rate 4000
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 -m ccnn_hf.train --cpu ...

The output folder holds ``model.safetensors`` + config + processor config (loadable with
``AutoModelFor...from_pretrained`` and, for images, timm), ``results.json``, a model card
``README.md``, ``accuracy_vs_resolution.png``, ``logs/metrics.jsonl`` and ``checkpoints/``.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from .allocator import keep_large_allocations
from .model_card import make_model_card
from .presets import get_preset
from .training.args import dataset_options, parse_args
from .training.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint, write_json_atomic
from .training.data import TaskData, check_labels, load_task_data
from .training.evaluate import accuracy, evaluate_points, plot_accuracy
from .training.speed import compile_for_training
from .training.model import adapt_batch_norm, build_model, is_binary, l2_norm_penalty

__all__ = ["main", "run"]


class EpochPermutation(Sampler[int]):
    """A fresh, seed-determined permutation per epoch: resuming replays the same order."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist())

    def __len__(self) -> int:
        return self.size


def warmup_cosine(warmup_steps: int, plan: dict):
    """Linear warm-up from 1e-8 x lr, then cosine decay to 0 over ``plan["total"]`` steps (the
    official schedule), per step."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return 1e-8 + (1 - 1e-8) * step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, plan["total"] - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def _prepare_output(args, accelerator: Accelerator) -> Path:
    out = Path(args.output_dir)
    previous = out.exists() and any((out / n).exists() for n in ("results.json", "checkpoints", "config.json"))
    if previous and not (args.overwrite or args.resume):
        raise SystemExit(f"{out} holds another run; pass --overwrite to replace it or --resume to continue it")
    accelerator.wait_for_everyone()  # every process has looked before the main one writes
    if accelerator.is_main_process:
        if args.overwrite and out.exists():
            shutil.rmtree(out)
        (out / "logs").mkdir(parents=True, exist_ok=True)
        (out / "checkpoints").mkdir(exist_ok=True)
    accelerator.wait_for_everyone()
    return out


def _trackers(report_to: str) -> list[str]:
    if report_to == "none":
        return []
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        if report_to == "tensorboard":
            raise SystemExit("--report_to tensorboard needs `pip install tensorboard`")
        return []
    return ["tensorboard"]


def _log(path: Path, record: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def run(argv: Sequence[str] | None = None) -> dict:
    """Train and evaluate as the command line says; returns the results (also written to results.json)."""
    args = parse_args(argv)
    recipe = dict(get_preset(args.preset).train)
    epochs = args.epochs if args.epochs is not None else recipe["epochs"]
    batch_size = args.batch_size or recipe["batch_size"]
    lr = args.lr if args.lr is not None else recipe["lr"]
    weight_decay = args.weight_decay if args.weight_decay is not None else recipe["weight_decay"]
    warmup_epochs = args.warmup if args.warmup is not None else recipe["warmup_epochs"]
    grad_accum = args.grad_accum or recipe["grad_accum"]

    accelerator = Accelerator(cpu=args.cpu, mixed_precision=args.mixed_precision,
                              gradient_accumulation_steps=grad_accum, log_with=_trackers(args.report_to) or None,
                              project_dir=args.output_dir)
    set_seed(args.seed)
    labels = [int(v) for v in args.labels.split(",")] if args.labels else None
    with accelerator.main_process_first():  # generated data is cached once, then read by the others
        task = load_task_data(
            args.dataset, seed=args.seed, options=dataset_options(args.dataset_option),
            train_split=args.train_split, test_split=args.test_split, image_column=args.image_column,
            audio_column=args.audio_column, label_column=args.label_column, dataset_config=args.dataset_config,
            image_size=args.image_size, sampling_rate=args.sampling_rate, clip_seconds=args.clip_seconds,
            labels=labels, max_samples=args.max_samples)
    check_labels(task)
    points = task.eval_points(args.eval_resolutions.split(",") if args.eval_resolutions else None)
    set_seed(args.seed)
    model, init_info = build_model(args, task)
    binary = model.config.num_labels == 1
    if args.compile:
        accelerator.print(f"compiled: {compile_for_training(model, accelerator.device.type)}")
    out = _prepare_output(args, accelerator)  # only once the data and the model are known to be valid
    accelerator.print(f"data: {task.name} ({task.modality}, {len(task.train)} train / {len(task.test)} test), "
                      f"in_channels={task.in_channels}, labels={task.num_classes}, base "
                      f"{task.sampling_rate or task.base_resolution}; model: {args.timm_model or args.preset}, "
                      f"{sum(p.numel() for p in model.parameters()):,} parameters")

    sampler = EpochPermutation(len(task.train), args.seed)
    # Its own generator: starting an epoch must not draw from the global RNG that dropout uses,
    # or a resumed run would see other dropout masks than an uninterrupted one.
    loader = DataLoader(task.train, batch_size=batch_size, sampler=sampler, drop_last=len(task.train) >= batch_size,
                        generator=torch.Generator().manual_seed(args.seed))
    steps_per_epoch = max(1, math.ceil(len(loader) / (accelerator.num_processes * grad_accum)))
    total_steps = args.max_steps or max(1, round(epochs * steps_per_epoch))
    warmup_steps = round(warmup_epochs * steps_per_epoch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    plan = {"total": total_steps}  # the schedule reads it, so a time budget can shorten the run
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, plan))
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    accelerator.init_trackers("ccnn", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})

    step, epoch, skip = 0, 0, 0
    if args.resume and (ckpt := latest_checkpoint(out / "checkpoints")):
        state = load_checkpoint(accelerator, ckpt)
        step, epoch, skip = state["step"], state["epoch"], state["batches_in_epoch"]
        plan["total"] = state["total_steps"]
        accelerator.print(f"resumed from {ckpt} (step {step})")
    metrics_file = out / "logs" / "metrics.jsonl"
    save_every = args.save_steps or steps_per_epoch
    main_input = accelerator.unwrap_model(model).main_input_name
    regularise = weight_decay and not args.timm_model  # the official penalty is CCNN-specific
    bar = tqdm(total=plan["total"], initial=step, desc="training", disable=not accelerator.is_local_main_process)
    epoch_times, started = [], time.perf_counter()
    while step < plan["total"]:
        sampler.set_epoch(epoch)
        model.train()
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        done_in_epoch, epoch_start = skip, time.perf_counter()
        for x, y in batches:
            with accelerator.accumulate(model):
                target = y.float() if binary else y
                loss = model(**{main_input: x}, labels=target).loss
                if regularise:
                    loss = loss + weight_decay * l2_norm_penalty(accelerator.unwrap_model(model))
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.grad_clip > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            done_in_epoch += 1
            if not accelerator.sync_gradients:
                continue
            step += 1
            bar.update(1)
            record = {"step": step, "epoch": epoch, "loss": accelerator.gather_for_metrics(loss.detach()).mean().item(),
                      "lr": scheduler.get_last_lr()[0]}
            accelerator.log(record, step=step)
            if accelerator.is_main_process:
                _log(metrics_file, record)
                bar.set_postfix(loss=f"{record['loss']:.3f}")
            if step % save_every == 0 or step == plan["total"]:
                end_of_epoch = done_in_epoch == len(loader)
                save_checkpoint(accelerator, out / "checkpoints", step,
                                {"epoch": epoch + 1 if end_of_epoch else epoch,
                                 "batches_in_epoch": 0 if end_of_epoch else done_in_epoch, "total_steps": plan["total"]},
                                args.save_total_limit)
            if step >= plan["total"]:
                break
        else:
            epoch_times.append(time.perf_counter() - epoch_start)
            epoch += 1
            skip = 0
            if args.time_limit and epoch == 1:  # the epochs that fit the budget, agreed by every process
                fit = torch.tensor(max(1, int(args.time_limit // epoch_times[0])), device=accelerator.device)
                epochs_fit = int(accelerator.reduce(fit, reduction="min"))
                plan["total"] = min(plan["total"], epochs_fit * steps_per_epoch)
                bar.total = plan["total"]
                accelerator.print(f"time budget: {epochs_fit} epochs ({plan['total']} steps) fit in {args.time_limit:g} s")
            if accelerator.is_main_process:
                acc, test_loss = accuracy(accelerator.unwrap_model(model), task.test.inputs, task.test.labels, binary,
                                          2 * batch_size)
                _log(metrics_file, {"step": step, "epoch": epoch, "test_accuracy": acc, "test_loss": test_loss})
                accelerator.log({"test/accuracy": acc, "test/loss": test_loss}, step=step)
            continue
        break
    bar.close()
    train_time = time.perf_counter() - started
    accelerator.wait_for_everyone()
    results = {}
    if accelerator.is_main_process:
        results = _finish(args, accelerator.unwrap_model(model), task, points, binary, out, init_info,
                          dict(lr=lr, weight_decay=weight_decay, warmup_epochs=warmup_epochs, batch_size=batch_size,
                               grad_accum=grad_accum, epochs=epochs, steps=plan["total"], processes=accelerator.num_processes,
                               mixed_precision=accelerator.mixed_precision),
                          epoch_times, train_time)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


def _finish(args, model, task: TaskData, points, binary: bool, out: Path, init_info: dict, recipe: dict,
            epoch_times: list[float], train_time: float) -> dict:
    """Evaluate across resolutions, save the model folder, results, plot and card (main process)."""
    bn_samples = adapt_batch_norm(model, task.train, batch_size=128)  # statistics of the final weights
    evaluation = evaluate_points(model, task, points, binary, batch_size=128)
    base_setting = f"{task.sampling_rate / 1000:g} kHz" if task.modality == "audio" else "x".join(map(str, task.base_resolution))
    tmp = out / ".tmp-model"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    for item in tmp.iterdir():  # every file lands in one atomic rename
        os.replace(item, out / item.name)
    tmp.rmdir()
    params = sum(p.numel() for p in model.parameters())
    per_epoch = sum(epoch_times) / len(epoch_times) if epoch_times else train_time
    results = {
        "preset": args.preset, "dataset": task.name, "modality": task.modality, "mode": model.config.mode,
        "base_setting": base_setting, "base_resolution": list(task.base_resolution),
        "base_sampling_rate": task.sampling_rate, "model_base_resolution": list(model.config.base_resolution),
        "model_base_sampling_rate": model.config.base_sampling_rate, "num_labels": model.config.num_labels,
        "labels": task.label_names, "train_samples": len(task.train), "test_samples": len(task.test), "params": params,
        "overrides": {k: v for k, v in vars(args).items() if k in ("hidden", "blocks", "kernel_hidden", "kernel_size",
                      "omega_0", "mask_init", "dropout", "dropout_in") and v is not None},
        "recipe": recipe, "time_per_epoch_s": per_epoch, "train_time_s": train_time,
        "hardware": f"{platform.machine()} CPU x{torch.get_num_threads()} threads" if not torch.cuda.is_available()
        else torch.cuda.get_device_name(), "evaluation": evaluation, "batch_norm_statistics_samples": bn_samples,
        **init_info,
        "description": f"a CCNN (`{args.preset}`) trained on {task.name}." if not args.timm_model
        else f"timm `{args.timm_model}` baseline trained on {task.name} with the recipe of `{args.preset}`.",
    }
    results["steps"] = recipe["steps"]
    results["recipe"] = (f"lr {recipe['lr']}, weight decay (official L2-norm penalty) {recipe['weight_decay']}, "
                         f"{recipe['steps']} steps of batch {recipe['batch_size']} x {recipe['processes']} processes, "
                         f"warm-up {recipe['warmup_epochs']} epochs, precision {recipe['mixed_precision']}")
    write_json_atomic(out / "results.json", results)
    plot_accuracy(evaluation, out / "accuracy_vs_resolution.png", f"{args.preset} on {task.name}")
    if not args.timm_model:
        card = make_model_card(results, args.hub_model_id or f"local/{out.name}")
        tmp_card = out / ".README.md.tmp"
        card.save(tmp_card)
        tmp_card.replace(out / "README.md")
    for row in evaluation:
        print(f"  {row['setting']:>10} {row['mode']:>10}: accuracy {100 * row['accuracy']:.2f} %")
    if args.push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(args.hub_model_id, exist_ok=True, private=args.hub_private)
        api.upload_folder(repo_id=args.hub_model_id, folder_path=str(out), ignore_patterns=["checkpoints/*", "logs/*", ".*"],
                          commit_message=f"ccnn-train: {args.preset} on {task.name}")
        print(f"pushed to {args.hub_model_id}")
    return results


def main(argv: Sequence[str] | None = None) -> None:
    keep_large_allocations()
    try:
        run(argv)
    except ValueError as error:  # bad input: a clear message, no traceback
        print(f"ccnn-train: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
