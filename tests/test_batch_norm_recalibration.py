"""ccnn_hf.recalibrate_batch_norm: BatchNorm statistics for the resolution a model is run at."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

import ccnn_hf
from ccnn_hf import build_ccnn, recalibrate_batch_norm


def _model() -> nn.Module:
    return build_ccnn("cifar10_4_140", width=8, depth=1, kernel_width=8, in_channels=1, num_labels=3).eval()


def _statistics(model: nn.Module) -> list[torch.Tensor]:
    return [t for norm in ccnn_hf.batch_norm.batch_norms(model) for t in (norm.running_mean, norm.running_var)]


def test_statistics_are_update_bns_average_over_the_given_inputs():
    inputs = torch.randn(20, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    ours, theirs = _model(), _model()
    theirs.load_state_dict(ours.state_dict())
    assert recalibrate_batch_norm(ours, inputs, batch_size=8) == 20
    update_bn((inputs[i : i + 8] for i in range(0, 20, 8)), theirs)
    for mine, reference in zip(_statistics(ours), _statistics(theirs)):
        torch.testing.assert_close(mine, reference)
    before = _model()
    assert not torch.allclose(_statistics(ours)[0], _statistics(before)[0])  # they did move


def test_modes_momenta_and_random_generator_are_left_as_they_were():
    model = _model().train()
    norms = ccnn_hf.batch_norm.batch_norms(model)
    norms[0].momentum = 0.3
    norms[1].eval()  # a layer the user froze keeps its own mode
    inputs = torch.randn(4, 1, 16, 16)
    state = torch.random.get_rng_state()
    recalibrate_batch_norm(model, inputs)
    assert model.training and norms[0].training and not norms[1].training
    assert [norm.momentum for norm in norms] == [0.3] + [0.1] * (len(norms) - 1)
    assert torch.equal(torch.random.get_rng_state(), state)


class _Masked(nn.Module):
    """A BatchNorm on masked sequences that records the batch sizes and constant keywords it sees."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(1)
        self.calls: list[tuple] = []
        self.fail_at = fail_at

    def forward(self, x: torch.Tensor, observed_mask: torch.Tensor, sampling_rate: float = 1.0) -> torch.Tensor:
        self.calls.append((len(x), len(observed_mask), sampling_rate))
        if len(self.calls) == self.fail_at:
            raise RuntimeError("out of memory")
        return self.norm(x * observed_mask.unsqueeze(1))


def test_per_sample_keywords_are_sliced_and_others_passed_unchanged():
    model = _Masked()
    recalibrate_batch_norm(
        model, torch.randn(10, 1, 5), batch_size=4, observed_mask=torch.ones(10, 5), sampling_rate=8000
    )
    assert model.calls == [(4, 4, 8000), (4, 4, 8000), (2, 2, 8000)]


def test_a_last_batch_of_one_sample_joins_the_one_before():
    model = _Masked()
    recalibrate_batch_norm(model, torch.randn(9, 1, 1), batch_size=4, observed_mask=torch.ones(9, 1))
    assert [calls[0] for calls in model.calls] == [4, 5]  # [1, 1, 1] alone: "more than 1 value per channel"


def test_a_forward_that_fails_leaves_the_statistics_as_they_were():
    model = _Masked()
    recalibrate_batch_norm(model, torch.randn(8, 1, 5) + 3.0, batch_size=4, observed_mask=torch.ones(8, 5))
    before = {k: v.clone() for k, v in model.norm.state_dict().items()}
    model.calls, model.fail_at = [], 2
    with pytest.raises(RuntimeError, match="out of memory"):
        recalibrate_batch_norm(model, torch.randn(8, 1, 5) - 3.0, batch_size=4, observed_mask=torch.ones(8, 5))
    for key, value in model.norm.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model.norm.momentum == 0.1


@pytest.mark.parametrize(
    ("inputs", "kwargs", "error", "words"),
    [
        (torch.randn(8, 1, 8, 8).numpy(), {}, TypeError, "must be a tensor"),
        (torch.randn(8), {}, ValueError, r"batch \[N, ...\] of samples"),
        (torch.randn(1, 1, 8, 8), {}, ValueError, "at least 2 samples"),
        (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), {}, TypeError, "floating point"),
        (torch.full((4, 1, 8, 8), float("nan")), {}, ValueError, "NaN"),
        (torch.randn(4, 1, 8, 8), {"observed_mask": torch.ones(3, 8, 8)}, ValueError, "observed_mask has 3 samples"),
        (torch.randn(4, 1, 8, 8), {"batch_size": 1}, ValueError, "batch_size"),
    ],
)
def test_bad_inputs_are_refused_and_the_statistics_kept(inputs, kwargs, error, words):
    model = _model()
    before = copy.deepcopy(_statistics(model))
    with pytest.raises(error, match=words):
        recalibrate_batch_norm(model, inputs, **kwargs)
    for now, then in zip(_statistics(model), before):
        assert torch.equal(now, then)


def test_a_model_without_batch_norm_is_refused_by_name():
    with pytest.raises(ValueError, match="Sequential has no BatchNorm"):
        recalibrate_batch_norm(nn.Sequential(nn.Conv1d(1, 2, 3), nn.LayerNorm(6)), torch.randn(4, 1, 8))


@pytest.mark.slow
def test_released_mnist_model_at_28x28_gains_from_statistics_at_28x28():
    """The use the README documents: the 14x14 release on 28x28 digits (the built-in test split),
    with statistics from 256 unlabelled 28x28 training digits instead of the 14x14 ones (512 test digits)."""
    from ccnn_hf.data.mnist import load_mnist

    model = ccnn_hf.CCNNForImageClassification.from_pretrained(ccnn_hf.released_weights("mnist2d")).eval()
    digits = load_mnist(resolution=28)
    test = digits.test.inputs[:512], digits.test.labels[:512]

    def loss_and_accuracy() -> tuple[float, float]:
        with torch.no_grad():
            logits = model(pixel_values=test[0]).logits
        return torch.nn.functional.cross_entropy(logits, test[1]).item(), (
            logits.argmax(-1) == test[1]
        ).float().mean().item()

    loss, accuracy = loss_and_accuracy()
    chosen = torch.randperm(len(digits.train.inputs), generator=torch.Generator().manual_seed(0))[:256]
    recalibrate_batch_norm(model, digits.train.inputs[chosen])
    new_loss, new_accuracy = loss_and_accuracy()
    print(loss, accuracy, new_loss, new_accuracy)
    assert new_loss < 0.8 * loss and new_accuracy >= accuracy
