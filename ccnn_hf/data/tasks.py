"""Every dataset ``ccnn-train`` reads, as one task: built-in datasets, ``aeon:`` archives, image/audio
folders (or zips), saved and Hub datasets.

Everything becomes a :class:`TaskData`: normalised float tensors for train and test, the facts a
model needs (channels, classes, resolution or sampling rate), and the test set at the other
resolutions or sampling rates to evaluate. Images go through :class:`CCNNImageProcessor`, audio
through :class:`CCNNFeatureExtractor` at its own sampling rate.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import BUILTIN_DATASETS, ArrayDataset, load_builtin
from .images import resize_images
from ..presets import CIFAR10_STATS, CIFAR100_STATS, MNIST_STATS
from ..settings import MIN_SIZE
from .errors import UserError
from .memory import check_fits, render_bytes

__all__ = [
    "TaskData",
    "EvalPoint",
    "load_task_data",
    "check_task",
    "looks_like_path",
    "known_dataset",
]

# Image datasets with official normalisation constants: (mean, std), channels, image size. A folder,
# zip or Hub dataset is recognised by its name and must have that dataset's channels and size.
KNOWN_IMAGES = {
    "cifar10": (CIFAR10_STATS, 3, (32, 32)),
    "cifar100": (CIFAR100_STATS, 3, (32, 32)),
    "mnist": (MNIST_STATS, 1, (28, 28)),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass(frozen=True)
class EvalPoint:
    """One evaluation setting: a resolution (grid size) or a sampling rate, and its test inputs."""

    label: str
    resolution: tuple[int, ...] | None
    sampling_rate: float | None
    data: ArrayDataset


@dataclass
class TaskData:
    """A classification task ready for training."""

    name: str
    modality: str  # "image" | "sequence" | "audio" | "tokens"
    data_dim: int
    in_channels: int
    num_classes: int
    label_names: list[str]
    base_resolution: tuple[int, ...]
    sampling_rate: float | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: ArrayDataset
    test: ArrayDataset
    render_test: Callable[[tuple[int, ...] | None, float | None], ArrayDataset] | None = field(default=None, repr=False)
    # (image side or sampling rate, training indices) -> those samples' normalised inputs at that setting
    render_train: Callable[[float, torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    # what a length means to the model (the length_semantics setting): the built-in sequences are
    # images read row by row or resampled signals (field of view), archives are time series (duration)
    length_semantics: str = "auto"
    known: str | None = None  # the image dataset recognised (KNOWN_IMAGES): its official constants normalise it
    # after hold_out: each training sample's index in the training split as loaded (errors name that one)
    train_source_index: torch.Tensor | None = field(default=None, repr=False)

    def eval_points(self, spec: Sequence[str] | None) -> tuple[list[EvalPoint], list[str]]:
        """Test sets for ``spec`` entries: ``"2x"`` (a multiple of the base), ``"64"`` (a size, or
        Hz for audio). Defaults: 0.5x, 1x, 2x (audio: 1x and 2x). Returns the points and, for
        default settings the data cannot be rendered at, a note saying which and why; a requested
        setting that cannot be rendered is a :class:`UserError`."""
        requested = bool(spec)
        spec = list(spec) if spec else (["1x", "2x"] if self.modality == "audio" else ["0.5x", "1x", "2x"])
        points, skipped = [], []
        for entry in spec:
            entry = str(entry).strip()
            try:
                point = self._point(entry)
            except ValueError as error:
                if requested:
                    raise UserError(f"--eval_resolutions {entry}: {error}") from None
                skipped.append(f"at {entry} skipped: {error}")
                continue
            points.append(point)
        return points, skipped

    def _point(self, entry: str) -> EvalPoint:
        """One evaluation setting; a ValueError says why the data has none at ``entry``."""
        try:
            factor = float(entry[:-1]) if entry.endswith("x") else None
            value = float(entry) if factor is None else None
        except ValueError:
            raise ValueError("expected a multiple such as 2x or a size / rate such as 64") from None
        setting = factor if factor is not None else value
        if not (np.isfinite(setting) and setting > 0):
            raise ValueError("expected a positive, finite setting")
        if self.modality == "audio":
            rate = self.sampling_rate * factor if factor is not None else value
            data = self.test if rate == self.sampling_rate else self._render(None, rate)
            return EvalPoint(f"{rate / 1000:g} kHz", None, rate, data)
        if factor is None and value != int(value):
            raise ValueError("a size must be a whole number")
        size = (
            tuple(round(n * factor) for n in self.base_resolution)
            if factor is not None
            else (int(value),) * self.data_dim
        )
        if min(size) < MIN_SIZE:
            raise ValueError(
                f"that is {'x'.join(map(str, size))}, below the smallest size a CCNN runs at ({MIN_SIZE} per axis)"
            )
        data = self.test if size == self.base_resolution else self._render(size, None)
        return EvalPoint("x".join(map(str, size)), size, None, data)

    def _render(self, size: tuple[int, ...] | None, rate: float | None) -> ArrayDataset:
        if self.render_test is None:
            raise ValueError(f"{self.name}'s test set exists only at its base setting")
        shape = size if size is not None else self.input_shape(rate)
        at = "x".join(map(str, size)) if size is not None else f"{rate / 1000:g} kHz"
        check_fits(
            f"the test set at {at} ({len(self.test)} samples)", render_bytes(len(self.test), self.in_channels, shape)
        )
        return self.render_test(size, rate)

    def input_shape(self, setting: float) -> tuple[int, ...]:
        """The shape of one input at ``setting``: an image side or sequence length, or for audio a
        sampling rate (the base clip length scaled by the rate)."""
        if self.modality == "audio":
            return (max(1, round(self.base_resolution[0] * setting / self.sampling_rate)),)
        return (int(setting),) * self.data_dim


# -- built-in -----------------------------------------------------------------------------------


def _from_builtin(name: str, seed: int, options: dict) -> TaskData:
    try:
        ds = load_builtin(name, seed=seed, **options)
    except (TypeError, ValueError) as error:  # an option the dataset does not take, or a bad value
        raise UserError(f"--dataset_option: {error}") from None
    except RuntimeError as error:  # a missing program (espeak-ng)
        raise UserError(f"--dataset {name}: {error}") from None
    modality = "tokens" if name == "listops" else ds.modality

    def render(size, rate):
        return ds.test_at(resolution=size, sampling_rate=rate)

    def render_train(side, indices):
        return ds.render_train((int(side),) * ds.data_dim, indices)

    return TaskData(
        name,
        modality,
        ds.data_dim,
        ds.in_channels,
        ds.num_classes,
        list(ds.label_names),
        tuple(ds.base_resolution),
        ds.sampling_rate,
        tuple(ds.mean),
        tuple(ds.std),
        ds.train,
        ds.test,
        render if ds.render_test is not None else None,
        render_train if ds.render_train is not None else None,
        "field_of_view" if modality == "sequence" else "auto",
    )


# -- aeon archives (aeon:NAME) ----------------------------------------------------------------------


def _from_aeon(dataset: str, drop_rate: float, drop_seed: int) -> TaskData:
    from .aeon_archive import AEON_PREFIX, load_aeon

    try:
        ds = load_aeon(dataset[len(AEON_PREFIX) :], drop_rate=drop_rate, drop_seed=drop_seed)
    except (ImportError, ValueError) as error:
        raise UserError(f"--dataset {dataset}: {error}") from None
    return TaskData(
        ds.name,
        ds.modality,
        ds.data_dim,
        ds.in_channels,
        ds.num_classes,
        list(ds.label_names),
        tuple(ds.base_resolution),
        None,
        tuple(ds.mean),
        tuple(ds.std),
        ds.train,
        ds.test,
        length_semantics="duration",
    )


# -- image / audio folders and zips (imagefolder / audiofolder layout) ---------------------------


class _Folder:
    """Read ``split/label/file`` entries from a directory or a zip archive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_file() and zipfile.is_zipfile(path):
            self.zip = zipfile.ZipFile(path)
            names = [n for n in self.zip.namelist() if not n.endswith("/")]
        elif path.is_dir():
            self.zip = None
            names = [str(p.relative_to(path)) for p in sorted(path.rglob("*")) if p.is_file()]
        else:
            raise UserError(f"--dataset {path} is neither a directory nor a zip archive")
        self.entries: dict[str, list[tuple[str, str]]] = {}
        for name in sorted(names):
            parts = Path(name).parts
            if len(parts) >= 3 and Path(name).suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES:
                self.entries.setdefault(parts[-3], []).append((parts[-2], name))
        if not self.entries:
            raise UserError(f"--dataset {path}: no files in the imagefolder/audiofolder layout split/label/file")

    def read(self, name: str) -> bytes:
        return self.zip.read(name) if self.zip is not None else (self.path / name).read_bytes()

    def describe(self, name: str) -> str:
        """How to name entry ``name`` in a message."""
        return f"{self.path}/{name}" if self.zip is None else f"{name} in {self.path}"

    def image(self, name: str):
        """Entry ``name`` as a PIL image (not yet decoded), or a UserError naming the file."""
        from PIL import Image, UnidentifiedImageError

        try:
            return Image.open(io.BytesIO(self.read(name)))
        except Image.DecompressionBombError as error:
            raise UserError(
                f"{self.describe(name)} is refused as a possible decompression bomb ({_short(error)}); "
                "resize or remove it"
            ) from None
        except (UnidentifiedImageError, OSError) as error:
            raise UserError(
                f"{self.describe(name)} is not a readable image ({_short(error)}); fix or remove it"
            ) from None

    def audio(self, name: str) -> tuple[np.ndarray, int]:
        """Entry ``name`` as int16 samples ``[frames, channels]`` and its rate, or a UserError naming the file."""
        import soundfile

        try:
            return soundfile.read(io.BytesIO(self.read(name)), dtype="int16", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as error:
            raise UserError(
                f"{self.describe(name)} is not readable audio ({_short(error)}); fix or remove it"
            ) from None


def _short(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _spread(entries: list, limit: int | None) -> list:
    """At most ``limit`` entries, evenly spaced (folders are sorted by class: every class stays in)."""
    if not limit or len(entries) <= limit:
        return entries
    return [entries[i * len(entries) // limit] for i in range(limit)]


def _split_names(folder: _Folder, train_split: str, test_split: str) -> tuple[str, str]:
    for split in (train_split, test_split):
        if split not in folder.entries:
            raise UserError(
                f"--dataset {folder.path}: no split {split!r}; found {sorted(folder.entries)} "
                "(--train_split / --test_split choose them)"
            )
    return train_split, test_split


def _image_task(
    name: str, folder: _Folder, train_split: str, test_split: str, image_size: int | None, max_samples: int | None
) -> TaskData:
    from ..image_processing_ccnn import CCNNImageProcessor

    train_split, test_split = _split_names(folder, train_split, test_split)
    labels = sorted({label for split in (train_split, test_split) for label, _ in folder.entries[split]})
    index = {label: i for i, label in enumerate(labels)}

    chosen = {split: _spread(folder.entries[split], max_samples) for split in (train_split, test_split)}
    mode = "RGB" if any(_is_colour(folder.image(f)) for entries in chosen.values() for _, f in entries) else "L"
    if image_size is not None:  # before any picture is decoded or resized
        count = sum(len(entries) for entries in chosen.values())
        check_fits(
            f"--image_size {image_size}: {count} images at {image_size}x{image_size}",
            render_bytes(count, 3 if mode == "RGB" else 1, (image_size, image_size)),
        )

    def load(split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The split's pictures (resized to --image_size), labels, and pictures as read."""
        entries = chosen[split]
        pics = [np.asarray(_eight_bit(_decoded(folder, f)).convert(mode)) for _, f in entries]
        sizes = {p.shape[:2] for p in pics}
        if len(sizes) > 1 and image_size is None:
            raise UserError(
                f"--dataset {folder.path}: {split} images have different sizes {sorted(sizes)[:4]}; "
                "pass --image_size to resize them all"
            )
        originals = torch.stack([torch.from_numpy(p.reshape(*p.shape[:2], -1).copy()).permute(2, 0, 1) for p in pics])
        arrays = originals
        if image_size is not None:
            arrays = resize_images(arrays.float(), (image_size, image_size)).round().clamp(0, 255).to(torch.uint8)
        return arrays, torch.tensor([index[label] for label, _ in entries]), originals

    train_raw, train_y, train_source = load(train_split)
    test_raw, test_y, _ = load(test_split)
    channels = train_raw.shape[1]
    known = known_dataset(name, channels, tuple(train_source.shape[-2:]))
    if known is not None:  # the official constants, as the official data pipeline normalises it
        mean, std = KNOWN_IMAGES[known][0]
    else:
        scaled = train_raw.float() / 255.0
        mean = tuple(scaled.mean(dim=(0, 2, 3)).tolist())
        std = tuple(scaled.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist())
    processor = CCNNImageProcessor(image_mean=list(mean), image_std=list(std), num_channels=channels)

    def process(raw: torch.Tensor) -> torch.Tensor:
        out = [processor(list(chunk), return_tensors="pt")["pixel_values"] for chunk in raw.split(1024)]
        return torch.cat(out)

    def render(size, rate):
        return ArrayDataset(
            process(resize_images(test_raw.float(), size).round().clamp(0, 255).to(torch.uint8)), test_y
        )

    def render_train(side, indices):  # from the pictures as read (before --image_size)
        return process(
            resize_images(train_source[indices].float(), (int(side),) * 2).round().clamp(0, 255).to(torch.uint8)
        )

    return TaskData(
        name,
        "image",
        2,
        channels,
        len(labels),
        labels,
        tuple(train_raw.shape[-2:]),
        None,
        mean,
        std,
        ArrayDataset(process(train_raw), train_y),
        ArrayDataset(process(test_raw), test_y),
        render,
        render_train,
        known=known,
    )


def known_dataset(name: str, channels: int, size: tuple[int, ...]) -> str | None:
    """The :data:`KNOWN_IMAGES` dataset that a folder, zip or Hub dataset named ``name`` is
    (``cifar10_imagefolder``, ``CIFAR-10``, ``uoft-cs/cifar10`` are CIFAR-10; ``fashion_mnist`` is
    not MNIST), when its images have that dataset's channels and size; else None."""
    import re

    word = re.match(r"[a-z0-9]+", Path(name).name.lower().replace("-", ""))
    entry = KNOWN_IMAGES.get(word.group(0)) if word else None
    return word.group(0) if entry is not None and entry[1:] == (channels, tuple(size)) else None


def _is_colour(image) -> bool:
    """Whether a PIL image has colour (a grey image converts to RGB losslessly; the reverse loses colour)."""
    return image.mode not in ("L", "1", "I", "I;16", "F", "LA")


def _eight_bit(image):
    """``image`` with 8-bit pixels, as the pipeline reads them: 16-bit greyscale (a 16-bit PNG, PIL
    mode ``I;16``, or ``I`` in PIL before 10) is scaled by 255 / 65535, where PIL's ``convert``
    would clip every value above 255 to white. (PNG, JPEG, BMP, GIF and WebP hold no wider pixels.)"""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        wide = np.asarray(image).astype(np.int64).clip(0, 65535)
        return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8))
    return image


def _decoded(folder: _Folder, name: str):
    """Entry ``name`` decoded (a truncated file fails here, not at open), or a UserError naming it."""
    image = folder.image(name)
    try:
        image.load()
    except (OSError, SyntaxError) as error:
        raise UserError(
            f"{folder.describe(name)} is not a readable image ({_short(error)}); fix or remove it"
        ) from None
    return image


def _audio_task(
    name: str,
    folder: _Folder,
    train_split: str,
    test_split: str,
    sampling_rate: float | None,
    clip_seconds: float,
    max_samples: int | None,
) -> TaskData:
    from ..feature_extraction_ccnn import CCNNFeatureExtractor

    train_split, test_split = _split_names(folder, train_split, test_split)
    labels = sorted({label for split in (train_split, test_split) for label, _ in folder.entries[split]})
    index = {label: i for i, label in enumerate(labels)}

    def read(split: str) -> tuple[list[np.ndarray], int, torch.Tensor]:
        entries = _spread(folder.entries[split], max_samples)
        waves, rates = [], set()
        for _, f in entries:
            wave, rate = folder.audio(f)
            if not len(wave):
                raise UserError(f"{folder.describe(f)} holds no audio samples; fix or remove it")
            waves.append(wave.mean(axis=1).astype(np.int16))
            rates.add(rate)
        if len(rates) != 1:
            raise UserError(
                f"--dataset {folder.path}: {split} clips have several sampling rates {sorted(rates)}; "
                "resample them to one rate"
            )
        return waves, rates.pop(), torch.tensor([index[label] for label, _ in entries])

    train_waves, native, train_y = read(train_split)
    test_waves, test_native, test_y = read(test_split)
    rate = float(sampling_rate or native)
    train_clips = _fixed_clips(train_waves, native, rate, clip_seconds)
    scaled = train_clips.astype(np.float32) / 2**15  # the extractor's scale for 16-bit audio
    mean, std = float(scaled.mean()), float(scaled.std())
    extractor = CCNNFeatureExtractor(sampling_rate=int(rate), mean=mean, std=std)

    def extract(clips: np.ndarray, target_rate: float) -> torch.Tensor:
        """The extractor's mono ``[N, L]`` waveforms as the network's ``[N, 1, L]``."""
        return torch.from_numpy(extractor(list(clips), sampling_rate=int(target_rate))["input_values"])[:, None]

    def render(size, target_rate):
        clips = _fixed_clips(test_waves, test_native, target_rate, clip_seconds)
        return ArrayDataset(extract(clips, target_rate), test_y)

    def render_train(target_rate, indices):
        clips = _fixed_clips([train_waves[i] for i in indices.tolist()], native, target_rate, clip_seconds)
        return extract(clips, target_rate)

    train = ArrayDataset(extract(train_clips, rate), train_y)
    test = render(None, rate)
    return TaskData(
        name,
        "audio",
        1,
        1,
        len(labels),
        labels,
        (train.inputs.shape[-1],),
        rate,
        (mean,),
        (std,),
        train,
        test,
        render,
        render_train,
    )


def _fixed_clips(waves: list[np.ndarray], native: int, rate: float, seconds: float) -> np.ndarray:
    """Resample int16 clips from ``native`` to ``rate`` Hz and centre-pad or centre-crop them to ``seconds``."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    ratio = Fraction(int(rate), int(native)).limit_denominator(1000)
    length = int(round(seconds * rate))
    out = np.zeros((len(waves), length), dtype=np.float32)
    for i, wave in enumerate(waves):
        x = wave.astype(np.float32)
        if ratio != 1:
            x = resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)
        start = max(0, (len(x) - length) // 2)
        x = x[start : start + length]
        offset = (length - len(x)) // 2
        out[i, offset : offset + len(x)] = x
    return np.clip(np.round(out), -(2**15), 2**15 - 1).astype(np.int16)


# -- Hugging Face datasets ----------------------------------------------------------------------


def _hf_task(
    name: str,
    source: str,
    train_split: str,
    test_split: str,
    image_column: str | None,
    audio_column: str | None,
    label_column: str,
    dataset_config: str | None,
    image_size: int | None,
    sampling_rate: float | None,
    clip_seconds: float,
    max_samples: int | None,
) -> TaskData:
    try:
        import datasets
    except ImportError:
        raise UserError(f"--dataset {source}: reading Hugging Face datasets needs `pip install datasets`") from None

    path = Path(source)
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        try:
            data = datasets.load_from_disk(str(path))
        except (OSError, ValueError, KeyError, IndexError) as error:  # datasets fails on an empty split with IndexError
            raise UserError(
                f"--dataset {source}: datasets could not read this saved dataset ({type(error).__name__}: "
                f"{_short(error)}){'; an empty split causes this' if isinstance(error, IndexError) else ''}"
            ) from None
    else:
        try:
            data = datasets.load_dataset(source, dataset_config)
        except (OSError, ValueError, ConnectionError) as error:  # not found, offline, no access, unreadable files
            raise UserError(
                f"--dataset {source}: no local folder by that name, and it could not be loaded as a "
                f"Hugging Face dataset ({_short(error)})"
            ) from None
    if not isinstance(data, datasets.DatasetDict):
        raise UserError(
            f"--dataset {source} holds a single split; save a DatasetDict with "
            f"{train_split!r} and {test_split!r} splits"
        )
    for split in (train_split, test_split):
        if split not in data:
            raise UserError(
                f"--dataset {source}: no split {split!r}; found {list(data)} (--train_split / --test_split choose them)"
            )
    columns = data[train_split].column_names
    if label_column not in columns:
        raise UserError(
            f"--dataset {source}: no label column {label_column!r}; columns are {columns} (--label_column chooses it)"
        )
    column = audio_column or image_column
    if column is None:
        column = next((c for c in ("image", "img", "audio") if c in columns), None)
    if column not in columns:
        raise UserError(
            f"--dataset {source}: no input column {column!r}; columns are {columns} "
            "(choose one with --image_column or --audio_column)"
        )
    feature = data[train_split].features[label_column]
    names = list(feature.names) if hasattr(feature, "names") else None  # a ClassLabel column: ints index names
    is_audio = audio_column is not None or column == "audio"
    folder = _InMemoryFolder(data, column, label_column, names, (train_split, test_split), max_samples, is_audio)
    if is_audio:
        return _audio_task(name, folder, train_split, test_split, sampling_rate, clip_seconds, None)
    return _image_task(name, folder, train_split, test_split, image_size, None)


class _InMemoryFolder(_Folder):
    """Present an HF dataset's rows as ``split/label/file`` entries of encoded bytes."""

    def __init__(self, data, column, label_column, names, splits, max_samples, is_audio) -> None:
        self.path = Path(str(column))
        self.zip = None
        self.blobs: dict[str, bytes] = {}
        self.entries = {}
        for split in splits:
            rows = data[split].select(range(min(len(data[split]), max_samples))) if max_samples else data[split]
            for i, row in enumerate(rows):
                key = f"{split}/{i}"
                self.blobs[key] = _encode(row[column], is_audio)
                value = row[label_column]
                if value is None or (isinstance(value, (int, np.integer)) and value < 0):
                    raise UserError(
                        f"{split} row {i}: label {value} in column {label_column!r} marks an unlabelled "
                        "sample (as -1 does in Hugging Face datasets); drop such rows or use a labelled split"
                    )
                if names is not None and not 0 <= value < len(names):
                    raise UserError(f"{split} row {i}: label {value} outside the {len(names)} classes {names}")
                self.entries.setdefault(split, []).append((names[value] if names is not None else str(value), key))

    def read(self, name: str) -> bytes:
        return self.blobs[name]

    def describe(self, name: str) -> str:
        split, _, row = name.partition("/")
        return f"{split} row {row} (column {str(self.path)!r})"


def _encode(value, is_audio: bool) -> bytes:
    buffer = io.BytesIO()
    if is_audio:
        import soundfile

        soundfile.write(buffer, np.asarray(value["array"]), int(value["sampling_rate"]), format="WAV", subtype="PCM_16")
    else:
        value.save(buffer, format="PNG")
    return buffer.getvalue()


# -- entry point ------------------------------------------------------------------------------------


def load_task_data(
    dataset: str,
    *,
    seed: int = 0,
    options: dict | None = None,
    train_split: str = "train",
    test_split: str = "test",
    image_column: str | None = None,
    audio_column: str | None = None,
    label_column: str = "label",
    dataset_config: str | None = None,
    image_size: int | None = None,
    sampling_rate: float | None = None,
    clip_seconds: float = 1.0,
    labels: Sequence[int] | None = None,
    max_samples: int | None = None,
    drop_rate: float = 0.0,
    drop_seed: int = 0,
) -> TaskData:
    """Load ``dataset``: a built-in name, ``aeon:NAME`` (a UCR/UEA archive shipped with aeon), an
    imagefolder/audiofolder directory or zip, a dataset saved with ``datasets.save_to_disk``, or a
    Hugging Face Hub dataset name.

    ``image_size`` resizes images (built-in images too), ``sampling_rate`` resamples audio for
    training, ``labels`` keeps only those classes (renumbered in that order). ``drop_rate`` (aeon
    archives) drops that fraction of every series' time points, chosen by ``drop_seed``
    (:mod:`ccnn_hf.data.aeon_archive`).
    """
    options = dict(options or {})
    path = Path(dataset).expanduser()
    if not 0 <= drop_rate < 1:
        raise UserError(f"--drop_rate must be in [0, 1), got {drop_rate!r}")
    is_aeon = dataset.startswith("aeon:")
    if drop_rate and not is_aeon:
        raise UserError(f"--drop_rate applies to aeon:NAME time-series archives, not to {dataset}")
    if is_aeon:
        if options:
            raise UserError(f"--dataset_option does not apply to {dataset}")
        task = _from_aeon(dataset, drop_rate, drop_seed)
    elif dataset in BUILTIN_DATASETS:
        task = _from_builtin(dataset, seed, options)
        if sampling_rate is not None and task.modality == "audio" and sampling_rate != task.sampling_rate:
            if sampling_rate != int(sampling_rate):
                raise UserError(f"--sampling_rate {sampling_rate:g}: {dataset} is rendered at a whole number of Hz")
            task = _from_builtin(dataset, seed, {**options, "sampling_rate": int(sampling_rate)})
        if image_size is not None:
            task = _resize_task(task, image_size)
    elif options:
        raise UserError(
            f"--dataset_option applies to the built-in datasets ({', '.join(BUILTIN_DATASETS)}), not to {dataset}"
        )
    elif path.exists() and not (
        path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists())
    ):
        folder = _Folder(path)
        sample = next(iter(folder.entries.values()))[0][1]
        if Path(sample).suffix.lower() in AUDIO_SUFFIXES:
            task = _audio_task(path.stem, folder, train_split, test_split, sampling_rate, clip_seconds, max_samples)
        else:
            task = _image_task(path.stem, folder, train_split, test_split, image_size, max_samples)
    elif path.exists() or _is_hub_id(dataset):
        task = _hf_task(
            path.name or dataset,
            dataset,
            train_split,
            test_split,
            image_column,
            audio_column,
            label_column,
            dataset_config,
            image_size,
            sampling_rate,
            clip_seconds,
            max_samples,
        )
    elif looks_like_path(dataset):
        raise UserError(f"--dataset {dataset}: no such file or folder")
    else:
        raise UserError(
            f"unknown dataset {dataset!r}: use a built-in name ({', '.join(BUILTIN_DATASETS)}), "
            "aeon:NAME, an imagefolder/audiofolder directory or zip, a saved datasets folder, or a Hub dataset id"
        )
    if labels is not None:
        task = _subset_labels(task, list(labels))
    return task


def looks_like_path(text: str) -> bool:
    """A value meant as a local path: absolute, relative to ., .. or ~, or with a file suffix or several parts."""
    return (
        text.startswith(("/", "./", "../", "~", "\\"))
        or Path(text).suffix.lower() in (".zip", ".tar", ".gz")
        or text.count("/") > 1
        or "\\" in text
        or ":" in text[:3]
    )


def _is_hub_id(text: str) -> bool:
    """``name`` or ``org/name`` as the Hub spells repository ids (checked only after no local path matched)."""
    import re

    return (
        not looks_like_path(text)
        and re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", text) is not None
        and "/" in text
    )


def _resize_task(task: TaskData, size: int) -> TaskData:
    """Train (and test) at ``size`` x ``size``: training images resized, test images re-rendered."""
    if task.modality != "image":
        raise UserError(f"--image_size applies to image data; {task.name} is {task.modality} data")
    target = (size, size)
    if target == task.base_resolution:
        return task
    count = len(task.train) + len(task.test)
    check_fits(
        f"--image_size {size}: the {count} {task.name} images at {size}x{size}",
        render_bytes(count, task.in_channels, target),
    )
    train = ArrayDataset(resize_images(task.train.inputs, target), task.train.labels)
    test = (
        task.render_test(target, None)
        if task.render_test
        else ArrayDataset(resize_images(task.test.inputs, target), task.test.labels)
    )
    return TaskData(
        task.name,
        task.modality,
        task.data_dim,
        task.in_channels,
        task.num_classes,
        task.label_names,
        target,
        task.sampling_rate,
        task.mean,
        task.std,
        train,
        test,
        task.render_test,
        task.render_train,
        task.length_semantics,
        task.known,
    )


def _subset_labels(task: TaskData, keep: list[int]) -> TaskData:
    bad = [k for k in keep if not 0 <= k < task.num_classes]
    if bad:
        raise UserError(f"--labels {bad} outside the dataset's classes 0..{task.num_classes - 1}")
    mapping = torch.full((task.num_classes,), -1, dtype=torch.long)
    mapping[torch.tensor(keep)] = torch.arange(len(keep))

    def select(split: ArrayDataset) -> ArrayDataset:
        new = mapping[split.labels]
        mask = new >= 0
        return replace(split.subset(mask), labels=new[mask])

    render = (lambda res, rate: select(task.render_test(res, rate))) if task.render_test is not None else None
    kept = torch.nonzero(mapping[task.train.labels] >= 0).flatten()  # subset index -> index in task.train
    render_train = (
        (lambda setting, indices: task.render_train(setting, kept[indices])) if task.render_train is not None else None
    )
    return TaskData(
        task.name,
        task.modality,
        task.data_dim,
        task.in_channels,
        len(keep),
        [task.label_names[k] for k in keep],
        task.base_resolution,
        task.sampling_rate,
        task.mean,
        task.std,
        select(task.train),
        select(task.test),
        render,
        render_train,
        task.length_semantics,
        task.known,
    )


def check_task(task: TaskData) -> None:
    """Refuse data a run cannot learn from or would learn wrongly from: samples below
    :data:`~ccnn_hf.settings.MIN_SIZE`, an empty split, labels outside ``0..num_classes-1``, fewer
    than two classes, non-finite inputs (one NaN sample would turn every BatchNorm statistic into
    NaN), and classes found only in the test split; each named with the sample or class to fix."""
    if task.modality != "audio" and min(task.base_resolution) < MIN_SIZE:
        raise UserError(
            f"{task.name} samples are {'x'.join(map(str, task.base_resolution))}, below the smallest size a CCNN "
            f"runs at ({MIN_SIZE} per axis)" + (": pass a larger --image_size" if task.modality == "image" else "")
        )
    if task.num_classes < 2:
        raise UserError(
            f"{task.name} has {task.num_classes} class(es) {task.label_names}; a classifier needs at least two"
        )
    for split_name, split in (("train", task.train), ("test", task.test)):
        if len(split) == 0:
            raise UserError(
                f"{task.name} has no {split_name} samples (after --labels / --max_samples); "
                "give it data for both splits"
            )
        if split.labels.min() < 0 or split.labels.max() >= task.num_classes:
            raise UserError(
                f"{task.name} {split_name} labels range over {int(split.labels.min())}.."
                f"{int(split.labels.max())}, outside the {task.num_classes} classes"
            )
        finite = torch.isfinite(split.inputs.reshape(len(split), -1)).all(dim=1)
        if not finite.all():
            bad = torch.nonzero(~finite).flatten().tolist()
            raise UserError(
                f"{task.name} {split_name} sample(s) {bad[:10]} hold non-finite values (NaN or inf); fix or drop them"
            )
    unseen = sorted(set(task.test.labels.tolist()) - set(task.train.labels.tolist()))
    if unseen:
        raise UserError(
            f"{task.name}: class(es) {[task.label_names[k] for k in unseen]} occur only in the test split; a model "
            "cannot learn them (each such test sample would count as an error): add training samples of them, "
            "remove them from the test split, or pick classes with --labels"
        )
