"""A quick look at a CCNN preset on real data: ``python -m ccnn_hf.demo [--preset NAME]``.

Builds the preset (narrowed for CPU speed unless ``--full``), feeds real handwritten digits
from scikit-learn at several resolutions, and prints shapes, logits and timings.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from .factory import build_ccnn
from .presets import get_preset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cifar10_4_140", help="a 2D preset name (default: %(default)s)")
    parser.add_argument("--mode", default="continuous", choices=["continuous", "reference"])
    parser.add_argument("--sizes", default="8,16,32,64", help="image sizes to run (default: %(default)s)")
    parser.add_argument("--full", action="store_true", help="use the preset's full width instead of a narrow copy")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images[:4], dtype=torch.float32).unsqueeze(1) / 16.0  # [4, 1, 8, 8]
    preset = get_preset(args.preset)
    if preset.model["data_dim"] != 2:
        parser.error(f"{args.preset} is not an image preset; pick one of the 2D presets")
    overrides = dict(in_channels=1, base_resolution=(8, 8), kernel_size="same")
    if not args.full:
        overrides.update(hidden=32, blocks=2, kernel_width=16)
    torch.manual_seed(0)
    model = build_ccnn(args.preset, mode=args.mode, **overrides).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.preset} ({args.mode} mode): {params:,} parameters, base resolution {model.base_resolution}")
    print(f"input: {len(images)} real 8x8 digits, labels {digits.target[:4].tolist()}")
    for size in (int(s) for s in args.sizes.split(",")):
        x = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        with torch.no_grad():
            model(x)  # warm-up: kernels for this grid are generated and cached
            start = time.perf_counter()
            logits = model(x)
            elapsed = time.perf_counter() - start
        kernel = model.blocks[0].conv.kernel(model.blocks[0].conv.input_scale(x))
        print(f"  {size:>3}x{size:<3} input {tuple(x.shape)} -> logits {tuple(logits.shape)}, "
              f"kernel {tuple(kernel.shape[1:])}, {elapsed * 1000:.1f} ms, first logits "
              f"{[round(v, 3) for v in logits[0, :4].tolist()]}")


if __name__ == "__main__":
    main()
