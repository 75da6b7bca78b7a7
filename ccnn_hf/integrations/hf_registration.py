"""Registers the CCNN family with transformers' Auto classes, without importing transformers.

:func:`install` (run by ``import ccnn_hf``) registers each CCNN class with its Auto class as soon
as both are imported, in either order: importing ``ccnn_hf.modeling_ccnn`` registers the models
(importing ``AutoModel``), and once transformers' ``modeling_auto`` is imported (``from
transformers import AutoModel``, a pipeline, any transformers model) ``ccnn_hf.modeling_ccnn`` is
imported and so registered; the same for the config, the image processor and the feature
extractor. ``import ccnn_hf`` alone leaves transformers unimported.

``register_for_auto_class`` makes every saved folder and Hub repo carry the modelling code,
so it also loads with ``trust_remote_code=True`` where ccnn_hf is not installed.
"""

from __future__ import annotations

import sys

from .import_hooks import after_import, import_optional


def register_config() -> None:
    """``AutoConfig`` knows ``model_type="ccnn"``."""
    from transformers import AutoConfig

    from ..configuration_ccnn import CCNNConfig

    AutoConfig.register("ccnn", CCNNConfig, exist_ok=True)
    CCNNConfig.register_for_auto_class()


def register_models() -> None:
    """``AutoModel`` and the ``AutoModelFor*`` classes of the CCNN heads."""
    from transformers import (
        AutoModel,
        AutoModelForAudioClassification,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
    )

    from ..configuration_ccnn import CCNNConfig
    from ..modeling_ccnn import (
        CCNNForAudioClassification,
        CCNNForImageClassification,
        CCNNForSequenceClassification,
        CCNNModel,
    )

    for auto, model in (
        (AutoModel, CCNNModel),
        (AutoModelForImageClassification, CCNNForImageClassification),
        (AutoModelForSequenceClassification, CCNNForSequenceClassification),
        (AutoModelForAudioClassification, CCNNForAudioClassification),
    ):
        auto.register(CCNNConfig, model, exist_ok=True)
        model.register_for_auto_class(auto.__name__)


def register_image_processor() -> None:
    """``AutoImageProcessor`` (the torchvision backend)."""
    from transformers import AutoImageProcessor

    from ..configuration_ccnn import CCNNConfig
    from ..image_processing_ccnn import CCNNImageProcessor

    AutoImageProcessor.register(CCNNConfig, image_processor_classes={"torchvision": CCNNImageProcessor}, exist_ok=True)
    CCNNImageProcessor.register_for_auto_class("AutoImageProcessor")


def register_feature_extractor() -> None:
    """``AutoFeatureExtractor``."""
    from transformers import AutoFeatureExtractor

    from ..configuration_ccnn import CCNNConfig
    from ..feature_extraction_ccnn import CCNNFeatureExtractor

    AutoFeatureExtractor.register(CCNNConfig, CCNNFeatureExtractor, exist_ok=True)
    CCNNFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")


# ccnn_hf module -> (the transformers module of its Auto classes, the registration)
LAYERS = {
    "ccnn_hf.configuration_ccnn": ("transformers.models.auto.configuration_auto", register_config),
    "ccnn_hf.modeling_ccnn": ("transformers.models.auto.modeling_auto", register_models),
    "ccnn_hf.image_processing_ccnn": ("transformers.models.auto.image_processing_auto", register_image_processor),
    "ccnn_hf.feature_extraction_ccnn": ("transformers.models.auto.feature_extraction_auto", register_feature_extractor),
}
_MISSING: set[str] = set()  # layers whose optional library (torchvision) is not installed


def import_layers_of_loaded_autos() -> None:
    """Import (hence register) the layer of every Auto module transformers has loaded, once."""
    for layer, (auto, _) in LAYERS.items():
        if auto in sys.modules and layer not in sys.modules and layer not in _MISSING:
            if not import_optional(layer):
                _MISSING.add(layer)


def install() -> None:
    """Register each layer once it is imported, and import a layer once its Auto module is."""
    for layer, (_, register) in LAYERS.items():
        after_import(layer, register)
    after_import("transformers", import_layers_of_loaded_autos)
