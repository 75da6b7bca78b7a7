"""ccnn_hf: Continuous CNNs (CCNN) for any length, resolution and dimension.

The core (:class:`CCNN`, :func:`build_ccnn`, :data:`PRESETS`) is plain PyTorch.
"""
from .ccnn import CCNN, CCNNBlock, CCNNHead, CCNNStem
from .continuous_conv import SeparableContinuousConv
from .factory import build_ccnn, preset_model_kwargs
from .kernel_nets import MAGNet, SIREN
from .original import convert_original_state_dict, load_original_state_dict
from .presets import PRESETS, Preset, get_preset, list_presets

__version__ = "0.1.0"

__all__ = [
    "CCNN", "CCNNBlock", "CCNNHead", "CCNNStem", "SeparableContinuousConv", "MAGNet", "SIREN",
    "build_ccnn", "preset_model_kwargs", "load_original_state_dict", "convert_original_state_dict",
    "PRESETS", "Preset", "get_preset", "list_presets", "__version__",
]
