"""transformers' own common model and config tests (``ModelTesterMixin``, ``ConfigTester``) on the
image, sequence and audio heads, with model testers written like transformers' ConvNeXt tester.

The two test files come from the sdist of the installed transformers (see ``upstream.py``); the
module skips, with the reason, when it cannot be had. The common tests recognise a model's task by
transformers' tables of built-in class names (``MODEL_FOR_..._MAPPING_NAMES``); CCNN is registered
with the Auto classes instead, so for the duration of this module its names are added to those
tables, as a built-in model's would be.
"""

from __future__ import annotations

import copy
import unittest

import pytest
import torch
from transformers.models.auto import modeling_auto

from ccnn_hf import (
    CCNNConfig,
    CCNNForAudioClassification,
    CCNNForImageClassification,
    CCNNForSequenceClassification,
    CCNNModel,
)
from upstream import transformers_common_tests

pytestmark = pytest.mark.hub  # also run against the oldest allowed versions (.ci/oldest)

modeling_common, configuration_common = transformers_common_tests()
ModelTesterMixin, ConfigTester = modeling_common.ModelTesterMixin, configuration_common.ConfigTester

BUILT_IN_NAMES = {
    "MODEL_MAPPING_NAMES": "CCNNModel",
    "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES": "CCNNForImageClassification",
    "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES": "CCNNForSequenceClassification",
    "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES": "CCNNForAudioClassification",
}


@pytest.fixture(scope="module", autouse=True)
def ccnn_in_the_built_in_name_tables():
    with pytest.MonkeyPatch.context() as patch:
        for table, name in BUILT_IN_NAMES.items():
            patch.setitem(getattr(modeling_auto, table), "ccnn", name)
        yield


class CCNNModelTester:
    """Tiny CCNN configs and inputs for one head (``"image"``, ``"sequence"`` or ``"audio"``)."""

    def __init__(
        self,
        parent: unittest.TestCase,
        head: str,
        batch_size: int = 2,
        num_labels: int = 3,
        hidden_size: int = 8,
        num_hidden_layers: int = 2,
        size: int = 8,
    ) -> None:
        self.parent, self.head = parent, head
        self.batch_size, self.num_labels = batch_size, num_labels
        self.hidden_size, self.num_hidden_layers, self.size = hidden_size, num_hidden_layers, size
        self.is_training = True

    def get_config(self) -> CCNNConfig:
        common = dict(
            hidden_channels=self.hidden_size,
            num_blocks=self.num_hidden_layers,
            kernel_hidden=8,
            kernel_layers=2,
            num_labels=self.num_labels,
            dropout=0.0,
        )
        if self.head == "image":
            return CCNNConfig.from_preset(
                "cifar10_4_140", base_resolution=[self.size] * 2, kernel_size=self.size + 1, **common
            )
        if self.head == "sequence":
            return CCNNConfig.from_preset("smnist_4_140", base_resolution=[4 * self.size], **common)
        return CCNNConfig.from_preset(
            "sc_raw_4_140", base_resolution=[4 * self.size], base_sampling_rate=4.0 * self.size, **common
        )

    def inputs(self) -> dict[str, torch.Tensor]:
        if self.head == "image":
            return {"pixel_values": torch.randn(self.batch_size, 3, self.size, self.size)}
        if self.head == "sequence":
            return {"input_values": torch.randn(self.batch_size, 1, 4 * self.size)}
        return {"input_values": torch.randn(self.batch_size, 4 * self.size)}

    def spatial_shape(self) -> tuple[int, ...]:
        return (self.size, self.size) if self.head == "image" else (4 * self.size,)

    def prepare_config_and_inputs(self) -> tuple[CCNNConfig, dict[str, torch.Tensor], torch.Tensor]:
        return self.get_config(), self.inputs(), torch.randint(0, self.num_labels, (self.batch_size,))

    def prepare_config_and_inputs_for_common(self) -> tuple[CCNNConfig, dict[str, torch.Tensor]]:
        config, inputs, _ = self.prepare_config_and_inputs()
        return config, inputs

    def create_and_check_model(self, config: CCNNConfig, inputs: dict[str, torch.Tensor]) -> None:
        model = CCNNModel(config).eval()
        with torch.no_grad():
            result = model(**inputs)
        shape = (self.batch_size, self.hidden_size, *self.spatial_shape())
        self.parent.assertEqual(tuple(result.last_hidden_state.shape), shape)
        self.parent.assertEqual(tuple(result.pooler_output.shape), (self.batch_size, self.hidden_size))

    def create_and_check_for_classification(self, model_class, config, inputs, labels) -> None:
        model = model_class(config).eval()
        with torch.no_grad():
            result = model(**inputs, labels=labels)
        self.parent.assertEqual(tuple(result.logits.shape), (self.batch_size, self.num_labels))
        self.parent.assertTrue(torch.isfinite(result.loss))


class _CCNNCommonTests(ModelTesterMixin):
    """The common tests plus CCNN's checks; subclasses name the head and its classes."""

    head = "image"
    classifier = CCNNForImageClassification
    has_attentions = False
    test_resize_embeddings = False

    def setUp(self) -> None:
        self.model_tester = CCNNModelTester(self, self.head)
        self.config_tester = ConfigTester(
            self,
            config_class=CCNNConfig,
            has_text_modality=False,
            common_properties=["num_channels", "hidden_channels", "num_blocks"],
        )

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if model_class is CCNNModel and "input_values" in inputs:  # the backbone reads sequences as [B, C, L]
            values = inputs["input_values"]
            inputs["input_values"] = values.unsqueeze(1) if values.ndim == 2 else values
        return inputs

    @unittest.skip(reason="CCNN does not support input and output embeddings")  # as ConvNeXt
    def test_model_get_set_embeddings(self) -> None:
        pass

    def test_config(self) -> None:
        self.config_tester.run_common_tests()

    def test_model(self) -> None:
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        self.model_tester.create_and_check_model(config, self._prepare_for_class(inputs, CCNNModel))

    def test_for_classification(self) -> None:
        config, inputs, labels = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_for_classification(self.classifier, config, inputs, labels)

    def test_hidden_states_output(self) -> None:
        # CCNN's hidden states are channels first at the input's size, [B, hidden, *spatial] (like
        # ConvNeXt's, whose tester replaces this test too), not [B, sequence, hidden].
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        shape = [self.model_tester.batch_size, self.model_tester.hidden_size, *self.model_tester.spatial_shape()]
        for model_class in self.all_model_classes:
            for via_config in (False, True):
                config = copy.deepcopy(config)
                config.output_hidden_states = via_config
                model = model_class(config).eval()
                kwargs = {} if via_config else {"output_hidden_states": True}
                with torch.no_grad():
                    hidden = model(**self._prepare_for_class(inputs, model_class), **kwargs).hidden_states
                self.assertEqual(len(hidden), self.model_tester.num_hidden_layers + 1)  # stem + every block
                self.assertTrue(all(list(h.shape) == shape for h in hidden))


class CCNNImageModelTest(_CCNNCommonTests, unittest.TestCase):
    all_model_classes = (CCNNModel, CCNNForImageClassification)


class CCNNSequenceModelTest(_CCNNCommonTests, unittest.TestCase):
    head = "sequence"
    classifier = CCNNForSequenceClassification
    all_model_classes = (CCNNForSequenceClassification,)

    @unittest.skip(reason="CCNN sequence models read raw values: no token embedding whose vocab_size could mismatch")
    def test_load_with_mismatched_shapes(self) -> None:
        pass


class CCNNAudioModelTest(_CCNNCommonTests, unittest.TestCase):
    head = "audio"
    classifier = CCNNForAudioClassification
    all_model_classes = (CCNNForAudioClassification,)
