"""plot_kernels: one picture of every layer's masked kernels at the base resolution."""
import matplotlib
import numpy as np
import pytest
import torch

from ccnn_hf import build_ccnn
from ccnn_hf.kernel_plots import continuous_convs, plot_kernels

matplotlib.use("Agg")

TINY = dict(hidden=6, blocks=2, kernel_width=8)


def test_2d_figure_shows_each_layers_kernels_as_the_layer_computes_them(tmp_path):
    model = build_ccnn("cifar10_4_140", **TINY).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    figure = plot_kernels(model, tmp_path / "kernels.png", max_channels=4)
    layers = continuous_convs(model)
    assert len(layers) == 3  # stem + 2 blocks
    assert np.asarray(figure.axes).size == 3 * 4
    assert (tmp_path / "kernels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the picture of row 1, channel 2 is that layer's base-grid kernel, channel 2
    conv = layers[1][1].eval()
    with torch.no_grad():
        expected = conv.kernel()[2].numpy()
    shown = figure.axes[1 * 4 + 2].images[0].get_array()
    np.testing.assert_allclose(np.asarray(shown), expected, rtol=1e-6, atol=1e-7)
    # drawing changes neither the weights nor the mode
    model.train()
    plot_kernels(model, max_channels=2)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_1d_kernels_are_curves_and_stem_channels_limit_the_columns():
    model = build_ccnn("smnist_4_140", **TINY)
    figure = plot_kernels(model, max_channels=8)  # the stem has 1 channel, the blocks 6
    axes = np.asarray(figure.axes).reshape(3, 6)
    with torch.no_grad():
        stem_kernel = continuous_convs(model)[0][1].eval().kernel()[0].numpy()
    np.testing.assert_allclose(axes[0, 0].lines[0].get_ydata(), stem_kernel, rtol=1e-6, atol=1e-7)
    assert not axes[0, 1].axison and axes[1, 5].lines  # the stem row has one kernel, block rows six


def test_a_model_without_continuous_convs_is_refused():
    with pytest.raises(ValueError, match="Linear has no continuous convolution"):
        plot_kernels(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="max_channels must be an integer >= 1, got 0"):
        plot_kernels(build_ccnn("cifar10_4_140", **TINY), max_channels=0)
