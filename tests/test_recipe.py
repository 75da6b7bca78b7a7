"""ccnn-train's recipe against the official code's: the learning-rate schedule, the penalty on the
forward's kernels, the logged loss, the validation protocol (held-out split, best-validation
weights, early stopping), CIFAR augmentation and fixed normalisation constants."""

from __future__ import annotations

import warnings

import pytest
import torch

from ccnn_hf.train import WarmupCosine


def _official_lrs(warmup: int, total: int) -> list[float]:
    """The official schedule (``optim.py``): LinearLR from 1e-8 chained with CosineAnnealingLR(last_epoch=-warmup)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1.0)
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1e-8, end_factor=1.0, total_iters=warmup)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup, last_epoch=-warmup)
    chained = torch.optim.lr_scheduler.ChainedScheduler([ramp, cosine])
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()" and the like
        for _ in range(total):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            chained.step()
    return lrs


@pytest.mark.parametrize(("warmup", "total"), [(1, 5), (10, 50), (3, 7), (100, 2100), (10, 210)])
def test_the_schedule_is_the_official_chained_warm_up_and_cosine(warmup, total):
    schedule = WarmupCosine(warmup, total)
    ours = [schedule(step) for step in range(total)]
    official = torch.tensor(_official_lrs(warmup, total), dtype=torch.float64)
    torch.testing.assert_close(torch.tensor(ours, dtype=torch.float64), official, rtol=1e-12, atol=1e-15)
    assert ours[-1] == pytest.approx(0.0, abs=1e-15)  # the cosine reaches 0 on the last step


def test_the_official_schedule_peaks_above_the_nominal_lr_as_the_official_code_does():
    schedule = WarmupCosine(100, 2100)  # sMNIST: 10 of 210 epochs
    assert max(schedule(step) for step in range(2100)) == pytest.approx(
        2 / (1 + torch.cos(torch.tensor(torch.pi * 99 / 2000)).item())
    )
    assert 1.006 < max(schedule(step) for step in range(2100)) < 1.0065


def test_a_warm_up_as_long_as_the_run_keeps_a_finite_bounded_schedule():
    """Where the official formula would divide by zero (a warm-up of half the run), the plain one runs."""
    for warmup, total in ((11, 21), (20, 21), (30, 30), (0, 10)):
        values = [WarmupCosine(warmup, total)(step) for step in range(total + 3)]
        assert all(0 <= v <= 1.0 + 1e-12 for v in values[:total]) and values[0] <= 1.0
