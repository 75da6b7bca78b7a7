"""ccnn_hf: Continuous CNNs (CCNN) for any length, resolution and dimension.

The core (:class:`CCNN`, :func:`build_ccnn`, :data:`PRESETS`) is plain PyTorch. Importing the
package also registers the CCNN family with transformers' Auto classes and timm's registry.
"""
from .cli_env import prefer_passive_openmp

prefer_passive_openmp()  # ccnn-train: before torch loads OpenMP (see cli_env)

from .ccnn import CCNN, CCNNBlock, CCNNHead, CCNNStem
from .continuous_conv import SeparableContinuousConv
from .deploy import FrozenCCNN, freeze
from .factory import build_ccnn, preset_model_kwargs
from .kernel_nets import MAGNet, SIREN
from .kernel_plots import plot_kernels
from .original import convert_original_state_dict, load_original_state_dict
from .presets import PRESETS, Preset, get_preset, list_presets
from .released import RELEASES, available_releases, released_weights
from . import hf_registration  # noqa: F401  (registers the Auto classes)
from . import timm_models  # noqa: F401  (registers the ccnn_2d* models with timm)
from .configuration_ccnn import CCNNConfig
from .feature_extraction_ccnn import CCNNFeatureExtractor
from .image_processing_ccnn import CCNNImageProcessor
from .modeling_ccnn import (
    CCNNForAudioClassification,
    CCNNForImageClassification,
    CCNNForSequenceClassification,
    CCNNModel,
    CCNNPreTrainedModel,
)

__version__ = "0.1.0"

__all__ = [
    "CCNN", "CCNNBlock", "CCNNHead", "CCNNStem", "SeparableContinuousConv", "MAGNet", "SIREN",
    "build_ccnn", "preset_model_kwargs", "freeze", "FrozenCCNN", "load_original_state_dict", "convert_original_state_dict",
    "PRESETS", "Preset", "get_preset", "list_presets", "__version__", "RELEASES", "available_releases",
    "released_weights", "plot_kernels",
    "CCNNConfig", "CCNNModel", "CCNNPreTrainedModel", "CCNNForImageClassification", "CCNNForSequenceClassification",
    "CCNNForAudioClassification", "CCNNImageProcessor", "CCNNFeatureExtractor",
]
