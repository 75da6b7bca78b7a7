"""Packaging for ccnn_hf: Continuous CNNs (CCNN) for PyTorch, timm and transformers."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="ccnn_hf",
    version="0.1.0",
    description="Continuous CNN (CCNN) for any length, resolution and dimension, in the timm and Hugging Face ecosystems",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["ccnn_hf", "ccnn_hf.*"]),
    package_data={"ccnn_hf": ["weights/*/*", "model_card_template.md", "configs/*.yaml"]},
    install_requires=[
        "torch>=2.4,<=2.14.1",
        "torchvision",
        "timm>=1.0.20",
        "transformers>=5.0",
        "huggingface-hub>=1.0",
        "safetensors>=0.4",
        "accelerate>=1.0",
        "numpy",
        "pillow",
        "scikit-learn",
        "tqdm",
        "matplotlib",
        "pyyaml",
        "scipy",
        "mlxtend",
    ],
    extras_require={
        "dev": ["pytest>=8", "hypothesis>=6", "pytest-timeout", "scipy", "soundfile", "tensorboard", "datasets",
                "parameterized", "onnx", "onnxruntime", "onnxscript"],
        "data": ["soundfile", "scipy", "datasets", "aeon>=1.6,<1.7"],
    },
    entry_points={"console_scripts": ["ccnn-train=ccnn_hf.train:main"]},
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
