"""plot_kernels: one picture of every layer's masked kernels at the base resolution."""

import matplotlib
import numpy as np
import pytest
import torch

from ccnn_hf import build_ccnn
from ccnn_hf.integrations.kernel_plots import continuous_convs, plot_kernels

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


def test_released_cards_show_their_kernel_picture():
    """Every shipped release has its kernel picture and its card (Hub README) shows it."""
    from ccnn_hf.integrations.released import WEIGHTS_DIR, available_releases

    names = available_releases()
    if not names:
        pytest.skip("no released weights in this installation")
    for name in names:
        folder = WEIGHTS_DIR / name
        assert (folder / "kernels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        card = (folder / "README.md").read_text(encoding="utf-8")
        assert "](kernels.png)" in card and card.index("What the kernels learned") < card.index("## Citation"), name


def test_card_has_a_kernel_section_only_when_given_a_picture():
    from ccnn_hf.training.model_card import make_model_card

    results = {
        "modality": "image",
        "base_setting": "14x14",
        "dataset": "mnist",
        "preset": "ccnn_2d_4_140",
        "params": 1000,
        "evaluation": [{"setting": "14x14", "mode": "continuous", "accuracy": 0.9}],
    }
    with_picture = make_model_card(results, "org/model", kernels_image="kernels.png").text
    without = make_model_card(results, "org/model").text
    assert "## What the kernels learned" in with_picture and "](kernels.png)" in with_picture
    assert "What the kernels learned" not in without
