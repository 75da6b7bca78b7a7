"""Spoken digits "zero" .. "nine" synthesised with the ``espeak-ng`` command-line program.

espeak-ng is GPL-3.0, so it is only ever *run* as an external command (``subprocess``); nothing
here links to it or imports a binding. Install it with ``apt-get install espeak-ng`` (Debian/Ubuntu)
or ``brew install espeak-ng`` (macOS).

Every clip draws an English accent, a voice variant, a speaking rate and a pitch. The voice
variants of the test split are never used for training (``TEST_VARIANTS``), so the test measures
generalisation to unseen voices. espeak-ng is deterministic, so variety comes from these draws plus
a random gain, a random placement of the word inside a 1 s window and light white noise. The words
are synthesised once (cached on disk, trimmed, at 16 kHz); placement and noise are then applied at
16 kHz and the result is resampled to the training rate with ``scipy.signal.resample_poly``.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from functools import cache

import numpy as np
from scipy.signal import resample_poly
from tqdm.auto import tqdm

from .base import ArrayDataset, BuiltinDataset, Resolution, channel_stats, make_split, normalise
from .cache import cache_path, cached_arrays, split_keys

VERSION = "1"
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m8", "f1", "f2", "f3", "klatt", "klatt2", "klatt4", "croak")
TEST_VARIANTS = ("m7", "f4", "f5", "klatt3")
RATES = (130, 200)  # words per minute, uniform; fast enough for single words to fit into 1 s
PITCHES = (20, 80)  # espeak pitch 0-99, uniform
RENDER_RATE = 16_000  # Hz: synthesis is resampled to this master rate
WINDOW = 1.0  # seconds per clip
GAIN = (0.3, 0.9)  # peak amplitude of the word
NOISE = (0.001, 0.01)  # std of the added white noise (at 16 kHz)
_SILENCE = 0.01  # samples quieter than this fraction of the peak are trimmed at both ends


def espeak_executable() -> str:
    """Path of ``espeak-ng``, or a RuntimeError that says how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError(
            "the spoken_digits dataset needs the espeak-ng program (GPL-3.0, run only as an external "
            "command): install it with `apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)"
        )
    return path


@cache
def espeak_version() -> str:
    """First line of ``espeak-ng --version`` (part of the cache key: other versions sound different)."""
    result = subprocess.run([espeak_executable(), "--version"], capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[0]


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono 16-bit PCM from WAV bytes streamed by espeak-ng (its size fields are placeholders)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError("espeak-ng did not return a WAV stream")
    pos, rate = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"fmt ":
            _, channels, rate = struct.unpack("<HHI", data[pos + 8 : pos + 16])
            if channels != 1:
                raise RuntimeError(f"expected mono audio from espeak-ng, got {channels} channels")
        elif chunk == b"data":
            body = data[pos + 8 : pos + 8 + size]  # the size may exceed the stream: slicing clips it
            return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2"), rate
        pos += 8 + size
    raise RuntimeError("espeak-ng WAV stream has no data chunk")


def synthesise(word: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    """One word as float32 at ``RENDER_RATE`` with leading and trailing silence trimmed."""
    command = [espeak_executable(), "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", word]
    samples, source_rate = _parse_wav(subprocess.run(command, capture_output=True, check=True).stdout)
    ratio = Fraction(RENDER_RATE, source_rate)
    audio = resample_poly(samples.astype(np.float32) / 32768.0, ratio.numerator, ratio.denominator)
    loud = np.flatnonzero(np.abs(audio) > _SILENCE * np.abs(audio).max())
    return audio[loud[0] : loud[-1] + 1].astype(np.float32)


def _synthesise_split(n: int, variants: tuple[str, ...], rng: np.random.Generator, desc: str) -> dict[str, np.ndarray]:
    """Draw ``n`` (word, voice, rate, pitch) settings with balanced words and synthesise them."""
    labels = rng.permutation(np.arange(n) % 10)
    accents = rng.integers(len(ACCENTS), size=n)
    voices = [f"{ACCENTS[a]}+{variants[v]}" for a, v in zip(accents, rng.integers(len(variants), size=n))]
    rates = rng.integers(RATES[0], RATES[1] + 1, size=n)
    pitches = rng.integers(PITCHES[0], PITCHES[1] + 1, size=n)
    jobs = [(WORDS[w], v, int(r), int(p)) for w, v, r, p in zip(labels, voices, rates, pitches)]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        clips = list(tqdm(pool.map(lambda job: synthesise(*job), jobs), total=n, desc=desc, delay=1.0, leave=False))
    clips = [clip[: int(WINDOW * RENDER_RATE)] for clip in clips]  # rare overlong words lose their tail
    return {
        "labels": labels.astype(np.int64),
        "clips": np.round(np.clip(np.concatenate(clips), -1, 1) * 32767).astype(np.int16),
        "offsets": np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64),
    }


def _place(clips: np.ndarray, offsets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put each trimmed word at a random position of a silent 1 s window, scale it and add noise."""
    width = int(WINDOW * RENDER_RATE)
    n = len(offsets) - 1
    out = np.zeros((n, width), dtype=np.float32)
    gains = rng.uniform(*GAIN, size=n)
    starts = rng.random(n)
    for i in range(n):
        clip = clips[offsets[i] : offsets[i + 1]].astype(np.float32)
        start = int(starts[i] * (width - len(clip) + 1))
        out[i, start : start + len(clip)] = clip * (gains[i] / max(np.abs(clip).max(), 1e-6))
    out += rng.uniform(*NOISE, size=(n, 1)).astype(np.float32) * rng.standard_normal((n, width), dtype=np.float32)
    return out


def _resample(audio: np.ndarray, sampling_rate: float) -> np.ndarray:
    ratio = Fraction(sampling_rate / RENDER_RATE).limit_denominator(1000)
    if ratio == 1:
        return audio
    return resample_poly(audio, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def load_spoken_digits(
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    n_train: int = 1000,
    n_test: int = 300,
    sampling_rate: int = 8000,
) -> BuiltinDataset:
    """``spoken_digits``: ``[N, 1, sampling_rate]`` one-second waveforms, 10 classes, unseen test voices."""
    # The cache holds the clean 16 kHz words, so the training rate is not part of its key.
    options = {"n_train": n_train, "n_test": n_test, "espeak": espeak_version()}

    def build() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        train = _synthesise_split(n_train, TRAIN_VARIANTS, rng, "espeak-ng train")
        test = _synthesise_split(n_test, TEST_VARIANTS, rng, "espeak-ng test")
        return {f"train_{k}": v for k, v in train.items()} | {f"test_{k}": v for k, v in test.items()}

    arrays = cached_arrays(
        cache_path(cache_dir, "spoken_digits", VERSION, options, seed),
        build,
        split_keys("labels", "clips", "offsets"),
    )
    rng = np.random.default_rng([seed, 1])  # placement and noise: cheap, redrawn on every load
    train_16k = _place(arrays["train_clips"], arrays["train_offsets"], rng)
    test_16k = _place(arrays["test_clips"], arrays["test_offsets"], rng)
    train_raw = _resample(train_16k, sampling_rate)[:, None]
    mean, std = channel_stats(train_raw)

    def render_test(_resolution: Resolution | None, rate: float | None) -> ArrayDataset:
        return make_split(normalise(_resample(test_16k, rate)[:, None], mean, std), arrays["test_labels"])

    return BuiltinDataset(
        name="spoken_digits",
        modality="audio",
        data_dim=1,
        num_classes=10,
        label_names=list(WORDS),
        in_channels=1,
        base_resolution=tuple(train_raw.shape[2:]),
        sampling_rate=float(sampling_rate),
        train=make_split(normalise(train_raw, mean, std), arrays["train_labels"]),
        test=render_test(None, sampling_rate),
        mean=mean,
        std=std,
        render_test=render_test,
    )
