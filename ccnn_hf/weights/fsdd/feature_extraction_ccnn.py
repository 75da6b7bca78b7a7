"""Feature extractor of CCNN audio models: raw waveforms at their own sampling rate."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import TensorType

__all__ = ["CCNNFeatureExtractor"]


class CCNNFeatureExtractor(SequenceFeatureExtractor):
    """Turns mono waveforms into ``input_values [B, L]`` (as transformers' audio extractors, e.g.
    Wav2Vec2's, give them; the CCNN audio and sequence heads read ``[B, L]`` as one channel) and
    passes their ``sampling_rate`` on as a plain number, never a tensor: transformers' collators
    (pipelines with ``batch_size``, ``DataCollatorWithPadding``) pad the waveforms and masks of
    clips of different lengths, and the model takes one rate or a list of equal ones.

    Normalisation follows the official raw Speech Commands pipeline: 16-bit integer audio is
    scaled by 2^-15, then standardised with training-set statistics (``mean``, ``std``; the
    official code kept one pair per time step of its fixed 1 s clips, which cannot extend to
    other lengths or rates, so one global pair is stored). Audio is never resampled: the
    model samples its continuous kernels on the grid of the given rate (a model trained at
    16 kHz reads 8 kHz audio on a twice coarser grid).

    Args:
        sampling_rate: the rate the model was trained at (the default for calls without one).
        mean, std: standardisation statistics of the training waveforms.
        do_normalize: apply the standardisation.
        padding_value: value used to pad batches of different lengths.
        return_attention_mask: also return ``attention_mask [B, L]`` (1 at real samples, 0 at
            padding). CCNN models leave padded positions out of every layer, so a clip gets the
            same logits in a padded batch as alone; without the mask the padding counts as silence.
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = 16000,
        padding_value: float = 0.0,
        mean: float = 0.0,
        std: float = 1.0,
        do_normalize: bool = True,
        return_attention_mask: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):  # NaN fails every comparison
            raise ValueError(f"mean must be finite and std finite and > 0, got mean={mean!r}, std={std!r}")
        self.mean, self.std, self.do_normalize = float(mean), float(std), do_normalize

    def __call__(
        self,
        raw_speech: np.ndarray | list,
        sampling_rate: int | None = None,
        padding: bool | str = "longest",
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | TensorType | None = None,
        return_attention_mask: bool | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Normalise one waveform or a batch; returns ``input_values``, ``sampling_rate`` and, unless
        turned off, ``attention_mask``. ``padding``, ``max_length``, ``truncation`` (cut clips to
        ``max_length``) and ``pad_to_multiple_of`` act as in transformers' feature extractors."""
        rate = int(sampling_rate or self.sampling_rate)
        if rate <= 0:
            raise ValueError(f"sampling_rate must be positive, got {rate}")
        batched = isinstance(raw_speech, (list, tuple)) and len(raw_speech) and not np.isscalar(raw_speech[0])
        batched = batched or (isinstance(raw_speech, np.ndarray) and raw_speech.ndim == 2)
        waves = [self._to_float(w) for w in (raw_speech if batched else [raw_speech])]
        if not waves or any(w.size == 0 for w in waves):
            raise ValueError("empty waveform")
        if self.do_normalize:
            waves = [(w - self.mean) / (self.std + 1e-5) for w in waves]
        with_mask = self.return_attention_mask if return_attention_mask is None else return_attention_mask
        padded = self.pad(
            BatchFeature({"input_values": waves}),
            padding=padding,
            max_length=max_length,
            truncation=truncation,
            pad_to_multiple_of=pad_to_multiple_of,
            return_attention_mask=with_mask,
            return_tensors=None,
        )
        lengths = sorted({len(w) for w in padded["input_values"]})
        if len(lengths) > 1:
            raise ValueError(
                f"clips of lengths {lengths[0]}..{lengths[-1]} do not fit one batch with padding={padding!r}, "
                f"max_length={max_length}: pad to the longest clip, or pass truncation=True to cut them to max_length"
            )
        features = {"input_values": np.stack(padded["input_values"]).astype(np.float32)}  # [B, L]
        if with_mask:
            features["attention_mask"] = np.stack(padded["attention_mask"]).astype(np.int64)  # [B, L]
        return BatchFeature(
            {**features, "sampling_rate": rate}, tensor_type=return_tensors, skip_tensor_conversion={"sampling_rate"}
        )

    def pad(self, processed_features, *args, **kwargs) -> BatchFeature:
        """transformers' padding (what ``DataCollatorWithPadding`` calls) of examples as
        :meth:`__call__` gives them, ``input_values [L]`` each; a ValueError names an example of
        another shape (``[1, L]`` examples were stored by versions that gave ``[B, 1, L]``)."""
        examples = processed_features
        if isinstance(examples, (list, tuple)) and examples and isinstance(examples[0], Mapping):
            values = [example.get("input_values") for example in examples]
        else:
            values = examples.get("input_values") if isinstance(examples, Mapping) else None
        shapes = [tuple(np.shape(v)) for v in ([] if values is None else values) if np.ndim(v) != 1]
        if shapes:
            raise ValueError(
                f"input_values examples must be mono waveforms of shape [L], got shape {shapes[0]}: "
                "drop the channel axis (CCNNFeatureExtractor gives input_values [B, L])"
            )
        return super().pad(processed_features, *args, **kwargs)

    @staticmethod
    def _to_float(wave) -> np.ndarray:
        wave = np.asarray(wave)
        if wave.ndim != 1:
            raise ValueError(f"expected mono waveforms of shape [L], got shape {wave.shape}")
        if np.issubdtype(wave.dtype, np.integer):
            return wave.astype(np.float32) / 2**15
        if not np.isfinite(wave).all():
            raise ValueError("waveform contains NaN or infinite values")
        return wave.astype(np.float32)
