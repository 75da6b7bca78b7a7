"""Built-in datasets: shapes, determinism, caching, resolution changes and task-specific labels."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import torch

from ccnn_hf.data import BUILTIN_DATASETS, BuiltinDataset, listops, load_builtin, mnist, spoken

# Small, fast settings per dataset (defaults are larger).
SMALL = {
    "digits": {},
    "digits_seq": {},
    "mnist1d": {"n_train": 200, "n_test": 50},
    "mnist": {"n_test": 500},
    "smnist": {"n_test": 500},
    "pmnist": {"n_test": 500},
    "spoken_digits": {"n_train": 20, "n_test": 10},
    "pathfinder": {"n_train": 40, "n_test": 20},
    "listops": {"n_train": 60, "n_test": 20, "max_depth": 4, "max_args": 4, "min_length": 10, "max_length": 64},
}
GENERATED = ("mnist1d", "pathfinder", "listops", "spoken_digits")
HAS_ESPEAK = shutil.which("espeak-ng") is not None


def _needs_espeak(name: str) -> None:
    if name == "spoken_digits" and not HAS_ESPEAK:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")


def _load(name: str, cache_dir, seed: int = 0, **overrides) -> BuiltinDataset:
    _needs_espeak(name)
    return load_builtin(name, cache_dir=cache_dir, seed=seed, **{**SMALL[name], **overrides})


def test_registry_lists_every_dataset() -> None:
    assert set(BUILTIN_DATASETS) == set(SMALL)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="mnist1d.*pathfinder"):
        load_builtin("imagenet")


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(TypeError, match="n_train"):
        load_builtin("mnist1d", n_trian=10)


@pytest.mark.parametrize("value", ["abc", 1.5, -5, 0, True, None])
def test_option_values_must_be_positive_integers(value) -> None:
    with pytest.raises(ValueError, match=f"mnist1d option length must be a positive integer, got {value!r}"):
        load_builtin("mnist1d", length=value)


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_shapes_dtypes_and_labels(name: str, tmp_path) -> None:
    ds = _load(name, tmp_path)
    assert ds.name == name
    assert len(ds.label_names) == ds.num_classes
    for split in (ds.train, ds.test):
        assert split.inputs.dtype == torch.float32 and split.labels.dtype == torch.int64
        assert split.inputs.shape == (len(split), ds.in_channels, *ds.base_resolution)
        assert split.inputs.ndim == 2 + ds.data_dim
        assert torch.isfinite(split.inputs).all()
        assert 0 <= split.labels.min() and split.labels.max() < ds.num_classes
        x, y = split[0]  # usable as a torch Dataset
        assert x.shape == split.inputs.shape[1:] and y.ndim == 0
    assert len(ds.mean) == len(ds.std) == ds.in_channels
    assert (ds.sampling_rate is not None) == (ds.modality == "audio")
    if name != "listops":  # listops feeds raw token ids
        assert abs(ds.train.inputs.mean()) < 0.1 and abs(ds.train.inputs.std() - 1) < 0.1


def test_expected_sizes_of_real_datasets() -> None:
    digits = load_builtin("digits")
    assert (len(digits.train), len(digits.test)) == (1437, 360)
    assert digits.base_resolution == (8, 8)
    assert load_builtin("digits_seq").base_resolution == (64,)
    images = load_builtin("mnist")
    assert (len(images.train), len(images.test)) == (4000, 1000)
    assert (images.mean, images.std) == ((0.1307,), (0.3081,))
    assert torch.bincount(images.test.labels).tolist() == [100] * 10  # stratified: 500 images per class


@pytest.mark.parametrize("seed", [0, 3])
def test_sequence_views_match_images(seed: int) -> None:
    images = load_builtin("mnist", seed=seed, n_test=500)
    rows = load_builtin("smnist", seed=seed, n_test=500)
    permuted = load_builtin("pmnist", seed=seed, n_test=500)
    torch.testing.assert_close(rows.train.inputs, images.train.inputs.flatten(2))
    # the documented permutation is the same for every seed
    order = torch.as_tensor(np.random.default_rng(mnist.PERMUTATION_SEED).permutation(784))
    torch.testing.assert_close(permuted.test.inputs, rows.test.inputs[..., order])
    assert torch.equal(permuted.train.labels, images.train.labels)


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_same_seed_same_data_other_seed_other_data(name: str, tmp_path) -> None:
    a = _load(name, tmp_path / "a", seed=0)
    b = _load(name, tmp_path / "b", seed=0)  # separate cache: really generated twice
    c = _load(name, tmp_path / "c", seed=1)
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.inputs, c.train.inputs)


@pytest.mark.parametrize("name", GENERATED)
def test_cache_hit_is_identical_and_fast(name: str, tmp_path) -> None:
    options = {"pathfinder": {"n_train": 200, "n_test": 50}}.get(name, {})
    start = time.perf_counter()
    first = _load(name, tmp_path, **options)
    generate = time.perf_counter() - start
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith(name) and files[0].endswith(".npz")
    start = time.perf_counter()
    second = _load(name, tmp_path, **options)
    reload = time.perf_counter() - start
    assert torch.equal(first.train.inputs, second.train.inputs)
    assert torch.equal(first.test.labels, second.test.labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # no new or temporary files
    if name in ("pathfinder", "spoken_digits"):  # expensive to generate: the cache must pay off
        assert reload < generate / 2


def test_cache_key_changes_with_options_and_seed(tmp_path) -> None:
    _load("pathfinder", tmp_path)
    _load("pathfinder", tmp_path, contour_length=6)
    _load("pathfinder", tmp_path, resolution=16)
    _load("pathfinder", tmp_path, seed=5)
    _load("pathfinder", tmp_path, n_train=40, n_test=20)  # same as the first: no new file
    assert len(list(tmp_path.glob("pathfinder-*.npz"))) == 4


def test_default_cache_dir_follows_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CCNN_HF_CACHE", str(tmp_path))
    load_builtin("mnist1d", n_train=20, n_test=10)
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1


def test_corrupt_cache_file_is_regenerated(tmp_path) -> None:
    good = _load("mnist1d", tmp_path)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"not a zip file")
    again = _load("mnist1d", tmp_path)
    assert torch.equal(good.train.inputs, again.train.inputs)


def test_digits_at_16x16_are_the_same_test_images() -> None:
    ds = load_builtin("digits")
    big = ds.test_at(16)
    assert big.inputs.shape == (360, 1, 16, 16)
    assert torch.equal(big.labels, ds.test.labels)
    shrunk = torch.nn.functional.avg_pool2d(big.inputs, 2)
    assert torch.corrcoef(torch.stack([shrunk.flatten(), ds.test.inputs.flatten()]))[0, 1] > 0.9
    assert ds.test_at(8) is ds.test
    with pytest.raises(
        ValueError, match="length 256 would be a 16x16 image read row by row, which is not a resampling"
    ):
        load_builtin("digits_seq").test_at(256)  # a flattened 16x16 image is no finer sampling of the 8x8 one's rows


def test_mnist_trained_small_is_tested_on_the_original_images() -> None:
    small = load_builtin("mnist", resolution=14)
    full = load_builtin("mnist")
    assert small.train.inputs.shape[-2:] == (14, 14) and small.base_resolution == (14, 14)
    torch.testing.assert_close(small.test_at(28).inputs, full.test.inputs)
    assert torch.equal(small.test_at(28).labels, full.test.labels)


def test_mnist1d_at_80_rerenders_the_same_signals(tmp_path) -> None:
    ds = _load("mnist1d", tmp_path)
    long = ds.test_at(80)
    assert long.inputs.shape == (50, 1, 80)
    assert torch.equal(long.labels, ds.test.labels)
    on_40 = np.array([np.interp(np.linspace(0, 1, 40), np.linspace(0, 1, 80), row) for row in long.inputs[:, 0]])
    assert np.corrcoef(on_40.ravel(), ds.test.inputs[:, 0].numpy().ravel())[0, 1] > 0.95
    assert _load("mnist1d", tmp_path, length=80).train.inputs.shape == (200, 1, 80)


def test_mnist1d_is_learnable_but_not_trivial(tmp_path) -> None:
    """MNIST-1D's signature: a linear model stays far below a perfect score but well above chance."""
    from sklearn.linear_model import LogisticRegression

    ds = _load("mnist1d", tmp_path, n_train=2000, n_test=500)
    clf = LogisticRegression(max_iter=500).fit(ds.train.inputs[:, 0], ds.train.labels)
    assert 0.2 < clf.score(ds.test.inputs[:, 0], ds.test.labels) < 0.5  # the paper reports 32%


def test_pathfinder_at_64_rerenders_the_same_images(tmp_path) -> None:
    ds = _load("pathfinder", tmp_path)
    big = ds.test_at(64)
    assert big.inputs.shape == (20, 1, 64, 64)
    assert torch.equal(big.labels, ds.test.labels)
    shrunk = torch.nn.functional.avg_pool2d(big.inputs, 2)
    assert torch.corrcoef(torch.stack([shrunk.flatten(), ds.test.inputs.flatten()]))[0, 1] > 0.95


def test_pathfinder_labels_are_balanced(tmp_path) -> None:
    ds = _load("pathfinder", tmp_path, n_train=100, n_test=40)
    assert 0.4 <= ds.train.labels.float().mean() <= 0.6
    assert 0.4 <= ds.test.labels.float().mean() <= 0.6
    assert ds.label_names == ["disconnected", "connected"]


@pytest.mark.parametrize(
    "expression, value",
    [
        ("7", 7),
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[MIN 3 [MAX 5 8 ] 1 ]", 1),
        ("[SM 5 6 7 ]", 8),  # 18 mod 10
        ("[MED 1 9 3 ]", 3),
        ("[MED 2 7 ]", 4),  # even count: mean of the middle pair, rounded down
        ("( [SM [MED 4 6 5 1 ] 9 ] )", 3),  # LRA-style round brackets are ignored; median 4 (4.5 down)
    ],
)
def test_listops_evaluator(expression: str, value: int) -> None:
    assert listops.evaluate(listops.encode(expression)) == value


@pytest.mark.parametrize("expression", ["[MAX 2 ]]", "[MIN 3", "2 3", "]"])
def test_listops_rejects_malformed_expressions(expression: str) -> None:
    with pytest.raises(ValueError):
        listops.evaluate(listops.encode(expression))


def test_listops_sequences_are_left_padded_and_labelled(tmp_path) -> None:
    ds = _load("listops", tmp_path)
    assert ds.in_channels == 1 and ds.base_resolution == (64,)
    tokens = ds.train.inputs[:, 0].long()
    assert tokens.max() < len(listops.VOCAB) == 16
    lengths = (tokens != listops.PAD).sum(1)
    assert (lengths > 10).all() and (lengths < 64).all()
    for row, label in zip(tokens, ds.train.labels):
        body = row[64 - int((row != listops.PAD).sum()) :]
        assert (body != listops.PAD).all()  # all padding sits on the left
        assert listops.evaluate(body.tolist()) == label
    all_rows = {tuple(r.tolist()) for r in torch.cat([ds.train.inputs, ds.test.inputs])[:, 0].long()}
    assert len(all_rows) == len(ds.train) + len(ds.test)  # no duplicates, no train/test leakage
    with pytest.raises(ValueError):
        ds.test_at(128)


def test_spoken_digits_at_16khz(tmp_path) -> None:
    ds = _load("spoken_digits", tmp_path)
    assert ds.modality == "audio" and ds.sampling_rate == 8000 and ds.base_resolution == (8000,)
    assert ds.label_names[7] == "seven"
    hi = ds.test_at(sampling_rate=16000)
    assert hi.inputs.shape == (10, 1, 16000)
    assert torch.equal(hi.labels, ds.test.labels)
    assert ds.test_at(sampling_rate=8000) is ds.test
    with pytest.raises(ValueError):
        ds.test_at(resolution=16000)
    assert not set(spoken.TRAIN_VARIANTS) & set(spoken.TEST_VARIANTS)


def test_spoken_digits_without_espeak_says_how_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(spoken.shutil, "which", lambda _name: None)
    spoken.espeak_version.cache_clear()
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        load_builtin("spoken_digits", cache_dir=tmp_path, n_train=10, n_test=10)
    spoken.espeak_version.cache_clear()


def test_test_at_rejects_arguments_that_do_not_fit(tmp_path) -> None:
    digits = load_builtin("digits")
    with pytest.raises(ValueError):
        digits.test_at(sampling_rate=16000)
    with pytest.raises(ValueError):
        digits.test_at((8, 8, 8))
    with pytest.raises(ValueError):
        load_builtin("pmnist", n_test=500).test_at(196)
