"""ListOps (Nangia & Bowman 2018) as generated for the Long Range Arena (Tay et al. 2021).

A sample is a random expression tree written in prefix form, e.g. ``[MAX 2 9 [MIN 4 7 ] 0 ]``; the
label is its value (0-9). Operators: MIN, MAX, MED (median, rounded down) and SM (sum modulo 10).
Each node below ``max_depth`` is an operator with probability ``VALUE_P = 0.25`` (else a digit) and
has 2 to ``max_args`` arguments; expressions are kept when ``min_length < tokens < max_length``
and are unique across both splits. Defaults are LRA's (depth 10, up to 10 arguments, 500-2000
tokens). Tokens are ids in a 16-token vocabulary (:data:`VOCAB`, 0 = padding); each sequence is
left-padded to ``max_length`` and fed as float ids in one channel, unnormalised, as the official
CCNN did.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .base import BuiltinDataset, make_split
from .cache import cache_path, cached_arrays, split_keys

VERSION = "1"
VOCAB = ("<pad>",) + tuple(str(d) for d in range(10)) + ("[MIN", "[MAX", "[MED", "[SM", "]")
PAD, DIGIT0, MIN, MAX, MED, SM, CLOSE = 0, 1, 11, 12, 13, 14, 15
OPERATORS = (MIN, MAX, MED, SM)
VALUE_P = 0.25  # probability that a node above the depth limit is an operator (LRA's name for it)
LABEL_NAMES = [str(d) for d in range(10)]


def encode(expression: str) -> list[int]:
    """Token ids of an expression such as ``"[MAX 2 9 [MIN 4 7 ] 0 ]"`` (round brackets are ignored)."""
    ids = {token: i for i, token in enumerate(VOCAB)}
    tokens = expression.replace("(", " ").replace(")", " ").split()
    unknown = [t for t in tokens if t not in ids or t == VOCAB[PAD]]
    if unknown:
        raise ValueError(f"unknown ListOps tokens {unknown}; expected digits, [MIN [MAX [MED [SM and ]")
    return [ids[t] for t in tokens]


def _apply(op: int, args: list[int]) -> int:
    if op == MIN:
        return min(args)
    if op == MAX:
        return max(args)
    if op == MED:
        ordered = sorted(args)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2
    return sum(args) % 10


def evaluate(tokens: Iterable[int]) -> int:
    """Value of a token-id expression; padding ids are skipped."""
    stack: list[list[int]] = [[]]  # stack[0] collects the top-level value; frames are [op, args...]
    for token in tokens:
        if token == PAD:
            continue
        if token in OPERATORS:
            stack.append([token])
        elif token == CLOSE:
            if len(stack) < 2 or len(stack[-1]) < 2:
                raise ValueError("malformed ListOps expression: ']' without an open operator and arguments")
            op, *args = stack.pop()
            stack[-1].append(_apply(op, args))
        elif DIGIT0 <= token < DIGIT0 + 10:
            stack[-1].append(token - DIGIT0)
        else:
            raise ValueError(f"token id {token} is not in the ListOps vocabulary")
    if len(stack) != 1 or len(stack[0]) != 1:
        raise ValueError("malformed ListOps expression")
    return stack[0][0]


def _grow(rnd: random.Random, depth: int, max_depth: int, max_args: int, limit: int, out: list[int]) -> None:
    """Append a random subtree to ``out``; stop early once ``out`` reaches ``limit`` tokens."""
    if len(out) >= limit:
        return
    if depth < max_depth and rnd.random() < VALUE_P:
        out.append(OPERATORS[int(rnd.random() * len(OPERATORS))])
        for _ in range(2 + int(rnd.random() * (max_args - 1))):
            _grow(rnd, depth + 1, max_depth, max_args, limit, out)
        out.append(CLOSE)
    else:
        out.append(DIGIT0 + int(rnd.random() * 10))


def generate(
    n: int, seed: int, max_depth: int, max_args: int, min_length: int, max_length: int
) -> list[tuple[int, ...]]:
    """``n`` distinct random expressions (token-id tuples) with ``min_length < len < max_length``."""
    rnd = random.Random(seed)
    seen: dict[tuple[int, ...], None] = {}  # insertion-ordered set
    with tqdm(total=n, desc="listops", delay=1.0, leave=False) as progress:
        while len(seen) < n:
            tokens: list[int] = []
            _grow(rnd, 1, max_depth, max_args, max_length, tokens)
            if min_length < len(tokens) < max_length and tuple(tokens) not in seen:
                seen[tuple(tokens)] = None
                progress.update()
    return list(seen)


def _pack(expressions: Sequence[tuple[int, ...]], length: int) -> np.ndarray:
    """Left-pad token tuples with ``PAD`` into a ``[N, length]`` uint8 array."""
    out = np.full((len(expressions), length), PAD, dtype=np.uint8)
    for row, tokens in zip(out, expressions):
        row[length - len(tokens) :] = tokens
    return out


def _build(seed: int, n_train: int, n_test: int, **rules: int) -> dict[str, np.ndarray]:
    expressions = generate(n_train + n_test, seed, **rules)
    tokens = _pack(expressions, rules["max_length"])
    labels = np.array([evaluate(e) for e in expressions], dtype=np.int64)
    return {
        "train_tokens": tokens[:n_train],
        "train_labels": labels[:n_train],
        "test_tokens": tokens[n_train:],
        "test_labels": labels[n_train:],
    }


def load_listops(
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    n_train: int = 5000,
    n_test: int = 1000,
    max_depth: int = 10,
    max_args: int = 10,
    min_length: int = 500,
    max_length: int = 2000,
) -> BuiltinDataset:
    """``listops``: ``[N, 1, max_length]`` float token ids (left-padded), 10 classes."""
    if not 0 <= min_length < max_length - 1 or max_args < 2 or max_depth < 2:
        raise ValueError("listops needs max_depth >= 2, max_args >= 2 and 0 <= min_length < max_length - 1")
    rules = {"max_depth": max_depth, "max_args": max_args, "min_length": min_length, "max_length": max_length}
    arrays = cached_arrays(
        cache_path(cache_dir, "listops", VERSION, {"n_train": n_train, "n_test": n_test, **rules}, seed),
        lambda: _build(seed, n_train, n_test, **rules),
        split_keys("tokens", "labels"),
    )
    return BuiltinDataset(
        name="listops",
        modality="sequence",
        data_dim=1,
        num_classes=10,
        label_names=LABEL_NAMES,
        in_channels=1,
        base_resolution=(max_length,),
        sampling_rate=None,
        train=make_split(arrays["train_tokens"][:, None], arrays["train_labels"]),
        test=make_split(arrays["test_tokens"][:, None], arrays["test_labels"]),
        mean=(0.0,),
        std=(1.0,),
    )
