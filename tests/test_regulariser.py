"""ccnn-train's official L2-norm penalty, eager and compiled (--compile): the same value and gradients."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ccnn_hf import build_ccnn
from ccnn_hf.training.model import l2_norm_penalty
from ccnn_hf.training.speed import regulariser


def test_compiled_penalty_is_one_graph_with_the_eager_value_and_gradients(monkeypatch):
    compile_function = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile_function(fn, **{**kw, "backend": "aot_eager"}))
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = build_ccnn("cifar10_4_140", hidden=16, blocks=2, kernel_hidden=8).train()
    model.set_static_kernel_shapes()  # as compile_for_training does (its graphs are not needed here)
    F.cross_entropy(model(torch.randn(4, 3, 12, 12)), torch.tensor([0, 1, 2, 3]))  # plans at the base
    penalty = regulariser(model, compiled=True)
    for step in range(2):
        model.zero_grad()
        expected = l2_norm_penalty(model)
        expected.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        with torch._dynamo.config.patch(error_on_recompile=True):
            got = penalty()
        got.backward()
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        assert grads.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
        for name, grad in grads.items():
            torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, rtol=1e-4, atol=1e-6)
        with torch.no_grad():  # an optimiser step: the mask widths move, the graph stays
            for conv in model.continuous_convs():
                conv.mask_width.mul_(0.9)


def test_compiled_penalty_makes_the_base_plans_a_graph_cannot_make(monkeypatch):
    """ccnn-train --compile --train_resolutions: the first step may run at another size than the
    base, so no kernel plan for the base grid exists when the compiled penalty first runs."""
    compile_function = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile_function(fn, **{**kw, "backend": "eager"}))
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = build_ccnn("cifar10_4_140", hidden=16, blocks=2, kernel_hidden=8).train()
    model.set_static_kernel_shapes()
    model(torch.randn(2, 3, 16, 16))  # half the base resolution only
    got = regulariser(model, compiled=True)()
    torch.testing.assert_close(got, l2_norm_penalty(model), rtol=1e-5, atol=1e-6)
