"""ccnn_hf: Continuous CNNs (CCNN) for any length, resolution and dimension.

The core (:class:`CCNN`, :func:`build_ccnn`, :data:`PRESETS`, the settings table
:mod:`ccnn_hf.settings`) needs torch alone, and ``import ccnn_hf`` imports nothing more. The layers
over it register themselves when their library is imported, before or after ccnn_hf: the
transformers classes (``CCNNConfig``, ``CCNNFor*``, the processors; ``pip install ccnn_hf[hf]``)
with transformers' Auto classes, and the ``ccnn_2d*`` models with timm's registry (``pip install
ccnn_hf[timm]``); see :mod:`ccnn_hf.integrations.import_hooks`. The transformers classes are imported on first
use (``from ccnn_hf import CCNNForImageClassification``); without transformers they raise an
ImportError saying what to install.
"""

from .training.cli_env import prefer_passive_openmp

prefer_passive_openmp()  # ccnn-train: before torch loads OpenMP (see cli_env)

from .batch_norm import recalibrate_batch_norm  # noqa: E402
from .ccnn import CCNN, CCNNBlock, CCNNHead, CCNNStem, build_ccnn  # noqa: E402
from .continuous_conv import SeparableContinuousConv  # noqa: E402
from .integrations.deploy import FrozenCCNN, freeze  # noqa: E402
from . import continuous_kernel  # noqa: E402
from .integrations import hf_registration, import_hooks  # noqa: E402
from .kernel_nets import MAGNet, SIREN  # noqa: E402
from .integrations.kernel_plots import plot_kernels  # noqa: E402
from .integrations.original import convert_original_state_dict, load_original_state_dict  # noqa: E402
from .presets import PRESETS, Preset, get_preset, list_presets, preset_model_kwargs  # noqa: E402
from .integrations.released import RELEASES, available_releases, released_weights  # noqa: E402

__version__ = "0.1.0"

# The transformers layer: name -> module.
_HF_NAMES = {
    "CCNNConfig": "configuration_ccnn",
    "CCNNFeatureExtractor": "feature_extraction_ccnn",
    "CCNNImageProcessor": "image_processing_ccnn",
    "CCNNModel": "modeling_ccnn",
    "CCNNPreTrainedModel": "modeling_ccnn",
    "CCNNForImageClassification": "modeling_ccnn",
    "CCNNForSequenceClassification": "modeling_ccnn",
    "CCNNForAudioClassification": "modeling_ccnn",
}

hf_registration.install()  # the Auto classes, and remote code for saved folders, once transformers is imported
import_hooks.after_import("torch._dynamo", continuous_kernel.keep_plans_out_of_graphs)  # the compiler: seconds, ~150 MB
import_hooks.after_import(
    "timm", lambda: import_hooks.import_optional("ccnn_hf.integrations.timm_models")
)  # timm's registry


def __getattr__(name: str):
    """The transformers classes, imported on first use (an ImportError naming the extra without transformers)."""
    if name not in _HF_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(f".{_HF_NAMES[name]}", __name__)
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in import_hooks.OPTIONAL:
            raise
        raise ImportError(
            f"ccnn_hf.{name} needs {missing}: pip install 'ccnn_hf[{import_hooks.OPTIONAL[missing]}]'"
        ) from error
    return getattr(module, name)


__all__ = [
    "CCNN",
    "CCNNBlock",
    "CCNNHead",
    "CCNNStem",
    "SeparableContinuousConv",
    "MAGNet",
    "SIREN",
    "build_ccnn",
    "preset_model_kwargs",
    "freeze",
    "FrozenCCNN",
    "load_original_state_dict",
    "convert_original_state_dict",
    "PRESETS",
    "Preset",
    "get_preset",
    "list_presets",
    "__version__",
    "RELEASES",
    "available_releases",
    "released_weights",
    "plot_kernels",
    "recalibrate_batch_norm",
    *_HF_NAMES,
]
