"""Checks with messages that name the problem: model inputs, the rules of single settings (the
table that uses them is :mod:`ccnn_hf.settings`), ``resolution=`` / ``sampling_rate=`` at call
time, and checkpoints before loading."""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping, Sequence

import torch

__all__ = [
    "check_input",
    "resolve_kernel_size",
    "Rule",
    "is_integer",
    "integer_rule",
    "real_rule",
    "one_of",
    "flag_rule",
    "kernel_size_rule",
    "normalisation_problems",
    "call_scale",
    "MAX_SCALE",
    "dtype_problems",
    "key_problems",
    "refuse_checkpoint",
    "value_problems",
    "MAX_MASK_WIDTH",
]

# Largest |mask_width| a checkpoint may hold, in kernel coordinates (the kernel's domain is [-1, 1],
# 2 long when causal). The width is used squared and, in continuous mode, bounded smoothly into
# [sigma_min, sigma_max], so its sign and a zero are harmless (released weights hold -0.72 and
# -5e-13); trained widths stay near the domain (|w| <= 1.4 in every release). A larger one is
# no mask at all, and squared it overflows float32 from about 1.8e19.
MAX_MASK_WIDTH = 1e3

_AXES = {
    1: "[batch, channels, length]",
    2: "[batch, channels, height, width]",
    3: "[batch, channels, depth, height, width]",
}


def check_input(
    x: torch.Tensor, data_dim: int, in_chans: int, check_finite: bool = False, dtype: torch.dtype | None = None
) -> None:
    """Raise a ValueError/TypeError describing what is wrong with a model input, if anything.

    ``dtype``: the model's floating point type; another input precision is refused outside
    autocast (float64 images for a float32 model), where it would fail deep inside a layer.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != data_dim + 2:
        raise ValueError(
            f"expected a {data_dim + 2}-D input {_AXES[data_dim]} for a model with data_dim={data_dim}, "
            f"got shape {tuple(x.shape)}"
            + (" (add a batch dimension with x.unsqueeze(0))" if x.ndim == data_dim + 1 else "")
        )
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"expected a floating point input, got dtype {x.dtype} (convert with x.float())")
    if dtype is not None and x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(
            f"the input is {x.dtype} and the model {dtype}: convert one of them "
            f"(x.to({dtype}) or model.to({x.dtype})), or run under torch.autocast"
        )
    if x.shape[1] != in_chans:
        raise ValueError(f"expected {in_chans} input channel(s), got {x.shape[1]} (input shape {tuple(x.shape)})")
    if x.shape[0] == 0 or any(n < 1 for n in x.shape[2:]):
        raise ValueError(f"input is empty: shape {tuple(x.shape)}")
    if check_finite and not torch.isfinite(x).all():
        raise ValueError("input contains NaN or infinite values")


def resolve_kernel_size(
    kernel_size: int | str | Sequence[int], base_resolution: Sequence[int], causal: bool
) -> tuple[int, ...]:
    """Turn ``"same"`` / an int / a per-axis sequence into kernel taps per axis.

    ``"same"``: as long as the base input along each axis; centred kernels need an odd
    size, so an even length is rounded up by one.
    """
    data_dim = len(base_resolution)
    problem = kernel_size_rule("kernel_size", kernel_size)
    if problem:
        raise ValueError(problem)
    if isinstance(kernel_size, str):  # "same"
        sizes = tuple(int(r) if causal or r % 2 else int(r) + 1 for r in base_resolution)
    else:
        sizes = (int(kernel_size),) * data_dim if is_integer(kernel_size) else tuple(int(k) for k in kernel_size)
    if len(sizes) != data_dim:
        raise ValueError(f"kernel_size must give one size per axis ({data_dim}), got {kernel_size!r}")
    if not causal and any(k % 2 == 0 for k in sizes):
        raise ValueError(f"centred (non-causal) kernels need odd sizes, got {sizes}")
    return sizes


# -- rules of single settings (the table of settings is ccnn_hf.settings) --------------------------

Rule = Callable[[str, Any], "str | None"]  # rule(name, value) -> a problem naming both, or None


def is_integer(value: Any) -> bool:
    """An int (numpy ints too; bools, floats such as 2.7 or 32.0, and strings are refused)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer_rule(minimum: int) -> Rule:
    """An integer >= ``minimum``."""

    def rule(name: str, value: Any) -> str | None:
        if not is_integer(value) or value < minimum:
            return f"{name} must be an integer >= {minimum}, got {value!r}"
        return None

    return rule


def real_rule(low: float, high: float | None, low_open: bool, high_open: bool = True, optional: bool = False) -> Rule:
    """A finite number in an interval (NaN and inf always fail); None too when ``optional``."""
    span = f"{'(' if low_open else '['}{low:g}, {'inf' if high is None else f'{high:g}'}{')' if high_open else ']'}"

    def rule(name: str, value: Any) -> str | None:
        if optional and value is None:
            return None
        ok = _is_real(value) and math.isfinite(value)
        ok = ok and (value > low if low_open else value >= low)
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if not ok:
            return f"{name} must be a finite number in {span}{' or None' if optional else ''}, got {value!r}"
        return None

    return rule


def one_of(*allowed: Any) -> Rule:
    """One of ``allowed`` (bools never pass for 0 / 1)."""

    def rule(name: str, value: Any) -> str | None:
        if isinstance(value, bool) or value not in allowed:
            return f"{name} must be one of {allowed}, got {value!r}"
        return None

    return rule


def flag_rule(name: str, value: Any) -> str | None:
    """True or False."""
    if not isinstance(value, bool):
        return f"{name} must be True or False, got {value!r}"
    return None


def kernel_size_rule(name: str, value: Any) -> str | None:
    """``"same"``, an integer >= 1 or one such integer per axis."""
    sizes = value if isinstance(value, (list, tuple)) else [value]
    if value != "same" and (not sizes or not all(is_integer(k) and k >= 1 for k in sizes)):
        return f"{name} must be 'same', an integer >= 1 or one such integer per axis, got {value!r}"
    return None


def normalisation_problems(mean: Any, std: Any, channels: Any, names: tuple[str, str] = ("mean", "std")) -> list[str]:
    """Problems of per-channel normalisation statistics (None: not given): finite means, finite
    standard deviations > 0, one entry per channel."""
    problems = []
    for name, values, low in ((names[0], mean, None), (names[1], std, 0.0)):
        if values is None:
            continue
        allowed = "finite numbers" if low is None else "finite numbers > 0"
        if (
            not isinstance(values, (list, tuple))
            or not all(_is_real(v) and math.isfinite(v) for v in values)
            or (low is not None and not all(v > low for v in values))
        ):
            problems.append(f"{name} must be a list of {allowed}, one per input channel, got {values!r}")
        elif is_integer(channels) and len(values) != channels:
            problems.append(f"{name} must have one entry per input channel ({channels}), got {len(values)}: {values!r}")
    return problems


# -- resolution= / sampling_rate= at call time --------------------------------------------------

MAX_SCALE = 64.0  # resolution= / sampling_rate= may lie at most this factor from the base, per axis


def _positive(name: str, value: Any) -> float:
    """A finite number > 0 (bools and strings are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _plain(value: Any) -> Any:
    """Tensors (e.g. a processor's ``sampling_rate``) as Python numbers / lists."""
    return value.tolist() if isinstance(value, torch.Tensor) else value


def _within_bounds(name: str, given: Any, scales: Sequence[float], base: Any) -> None:
    if any(not 1 / MAX_SCALE <= s <= MAX_SCALE for s in scales):
        ratio = ", ".join(f"{s:.3g}" for s in scales)
        raise ValueError(
            f"{name}={given!r} is {ratio} x the model's base {base!r}; allowed is 1/{MAX_SCALE:g} to "
            f"{MAX_SCALE:g} x per axis (the kernels are resampled by that factor)"
        )


def call_scale(
    resolution: Any,
    sampling_rate: Any,
    base_resolution: Sequence[int],
    base_sampling_rate: float | None,
) -> tuple[float, ...] | None:
    """Input scale per axis from the ``resolution=`` / ``sampling_rate=`` of a forward call
    (None when neither is given), with a TypeError / ValueError naming a bad argument."""
    if resolution is not None and sampling_rate is not None:
        raise ValueError("pass resolution= (grid-defined inputs) or sampling_rate= (rate-defined inputs), not both")
    data_dim = len(base_resolution)
    if sampling_rate is not None:
        given = _plain(sampling_rate)
        rates = [_positive("sampling_rate", r) for r in (given if isinstance(given, list) else [given])]
        if not rates or any(r != rates[0] for r in rates):
            raise ValueError(f"sampling_rate must be one rate for the whole batch, got {given!r}")
        rate = rates[0]
        if base_sampling_rate is None:
            raise ValueError(
                "sampling_rate= needs a model with base_sampling_rate (a rate-defined model); "
                "use resolution= for grid-defined inputs"
            )
        _within_bounds("sampling_rate", given, [rate / base_sampling_rate], base_sampling_rate)
        return (rate / base_sampling_rate,) * data_dim
    if resolution is None:
        return None
    sizes = _plain(resolution)
    sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes] * data_dim
    if len(sizes) != data_dim:
        raise ValueError(f"resolution must hold {data_dim} size(s) (one per axis) or one number, got {resolution!r}")
    sizes = [_positive("resolution", r) for r in sizes]
    if min(sizes) < 1:
        raise ValueError(f"resolution sizes must be >= 1 (grid points per axis), got {resolution!r}")
    scales = [r / b for r, b in zip(sizes, base_resolution)]
    _within_bounds("resolution", resolution, scales, tuple(base_resolution))
    return tuple(scales)


# -- checkpoints ------------------------------------------------------------------------------------


def _kind(dtype: torch.dtype | str) -> str:
    """floating point / integer / bool / complex, of a torch dtype or a safetensors dtype name (F32, I32...)."""
    name = str(dtype).removeprefix("torch.").upper()
    if name == "BOOL":
        return "bool"
    if name.startswith("C"):
        return "complex"
    return "floating point" if name.startswith(("F", "BF")) else "integer"


def dtype_problems(stored: Mapping[str, torch.dtype | str], expected: Mapping[str, torch.dtype]) -> list[str]:
    """Checkpoint tensors of another kind than the model's (an int32 weight for a float parameter):
    casting them would change the values without a word. Float precisions may differ (bf16 files)."""
    return [
        f"{key} is stored as {stored[key]} but the model holds {_kind(expected[key])} ({expected[key]})"
        for key in sorted(set(stored) & set(expected))
        if _kind(stored[key]) != _kind(expected[key])
    ]


def key_problems(
    missing: Sequence[str],
    unexpected: Sequence[str],
    model_keys: Sequence[str],
    new_heads: Sequence[str],
    extra_heads: Sequence[str],
) -> list[str]:
    """Missing and unexpected tensors, with two exceptions for modules outside the backbone
    (module prefixes): a module of ``new_heads`` may be missing as a whole (a backbone checkpoint
    gets a new classifier), and a module of ``extra_heads`` that the model lacks may be extra (a
    classifier checkpoint loaded as a backbone)."""

    def module(key: str, prefixes: Sequence[str]) -> str | None:
        return next((p for p in prefixes if key.startswith(p + ".")), None)

    def whole(prefix: str) -> bool:
        keys = {k for k in model_keys if module(k, [prefix])}
        return bool(keys) and keys <= set(missing)

    owned = {module(k, extra_heads) for k in model_keys} - {None}
    bad_missing = sorted(k for k in missing if not (module(k, new_heads) and whole(module(k, new_heads))))
    bad_unexpected = sorted(k for k in unexpected if module(k, extra_heads) is None or module(k, extra_heads) in owned)
    problems = ([f"missing tensors: {', '.join(bad_missing)}"] if bad_missing else []) + (
        [f"unexpected tensors: {', '.join(bad_unexpected)}"] if bad_unexpected else []
    )
    if problems:
        problems[-1] += " (to load part of a checkpoint on purpose, use model.load_state_dict(state, strict=False))"
    return problems


def value_problems(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Tensors of a checkpoint (or of a loaded model) no model should run on: NaN or infinity in
    any floating-point tensor (the outputs would be NaN), and a ``mask_width`` beyond
    :data:`MAX_MASK_WIDTH`."""
    problems = []
    for key, tensor in sorted(tensors.items()):
        if not isinstance(tensor, torch.Tensor) or tensor.is_meta or not tensor.is_floating_point():
            continue
        if not bool(torch.isfinite(tensor).all()):
            problems.append(f"{key} holds NaN or infinity")
        elif key.endswith("mask_width") and bool((tensor.abs() > MAX_MASK_WIDTH).any()):
            problems.append(f"{key} is {tensor.tolist()}, beyond the largest mask width +-{MAX_MASK_WIDTH:g}")
    return problems


def refuse_checkpoint(source: str, problems: Sequence[str]) -> None:
    """Raise a ValueError listing ``problems`` of the checkpoint ``source``, if any."""
    if problems:
        raise ValueError(f"{source} does not match the model (refusing to load it): " + "; ".join(problems))
