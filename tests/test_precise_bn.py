"""ccnn-train's BatchNorm re-estimation after training sees every part of a class-sorted split."""

from __future__ import annotations

import torch
from torch import nn

from ccnn_hf.data import ArrayDataset
from ccnn_hf.training.model import adapt_batch_norm


class _Norm(nn.Module):
    """A BatchNorm on the input, called with the inputs and, for a masked split, its masks."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(1)

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(input_values)


def _sorted_split(masks: bool) -> ArrayDataset:
    """4 096 sequences listed class by class, as folders list them: class 0 around +5, class 1 around -5."""
    inputs = torch.cat([torch.full((2048, 1, 8), 5.0), torch.full((2048, 1, 8), -5.0)])
    inputs += 0.1 * torch.randn(inputs.shape, generator=torch.Generator().manual_seed(0))
    labels = torch.cat([torch.zeros(2048), torch.ones(2048)]).long()
    attention = torch.ones(4096, 8, dtype=torch.bool) if masks else None
    return ArrayDataset(inputs, labels, attention_mask=attention)


def test_statistics_come_from_the_whole_split_not_its_first_classes():
    for masks in (False, True):
        model = _Norm()
        seen = adapt_batch_norm(model, _sorted_split(masks), batch_size=128)
        assert seen == 2048
        # the first 2 048 samples alone would give mean +5 and variance 0.01
        assert abs(model.norm.running_mean.item()) < 1.0, masks
        assert model.norm.running_var.item() > 20, masks


def test_the_draw_is_fixed_and_leaves_the_global_generator_alone():
    split = _sorted_split(False)
    torch.manual_seed(3)
    before = torch.random.get_rng_state()
    first, second = _Norm(), _Norm()
    adapt_batch_norm(first, split, batch_size=128)
    adapt_batch_norm(second, split, batch_size=128)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(first.norm.running_mean, second.norm.running_mean)


def test_a_model_without_batch_norm_is_left_alone_and_counts_no_samples():
    model = nn.Sequential(nn.Conv1d(1, 1, 3), nn.LayerNorm(6))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert adapt_batch_norm(model, _sorted_split(False), batch_size=128) == 0
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
