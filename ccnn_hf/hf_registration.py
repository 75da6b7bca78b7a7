"""Registers the CCNN family with transformers' Auto classes (runs on ``import ccnn_hf``).

``register_for_auto_class`` makes every saved folder and Hub repo carry the modelling code,
so it also loads with ``trust_remote_code=True`` where ccnn_hf is not installed.
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
)

from .configuration_ccnn import CCNNConfig
from .feature_extraction_ccnn import CCNNFeatureExtractor
from .image_processing_ccnn import CCNNImageProcessor
from .modeling_ccnn import (
    CCNNForAudioClassification,
    CCNNForImageClassification,
    CCNNForSequenceClassification,
    CCNNModel,
)

AutoConfig.register("ccnn", CCNNConfig, exist_ok=True)
for auto, model in (
    (AutoModel, CCNNModel),
    (AutoModelForImageClassification, CCNNForImageClassification),
    (AutoModelForSequenceClassification, CCNNForSequenceClassification),
    (AutoModelForAudioClassification, CCNNForAudioClassification),
):
    auto.register(CCNNConfig, model, exist_ok=True)
    model.register_for_auto_class(auto.__name__)
AutoImageProcessor.register(CCNNConfig, image_processor_classes={"torchvision": CCNNImageProcessor}, exist_ok=True)
AutoFeatureExtractor.register(CCNNConfig, CCNNFeatureExtractor, exist_ok=True)
CCNNConfig.register_for_auto_class()
CCNNImageProcessor.register_for_auto_class("AutoImageProcessor")
CCNNFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
