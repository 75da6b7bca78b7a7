"""Where each layer keeps the CCNN's tensors: one home for state-dict key mappings.

The core / timm name every tensor as :class:`ccnn_hf.CCNN` does (``stem.*``, ``blocks.*``,
``norm.*``, ``head.fc.*``). The transformers classifiers hold the backbone under
``ccnn.encoder.`` and the classifier as ``classifier.``; a bare ``CCNNModel`` holds the backbone
under ``encoder.``. Training checkpoints may wrap a state dict (``state_dict`` / ``model``
entries) and carry DistributedDataParallel's ``module.`` prefix. Plain Python: no torch import.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["CORE_CLASSIFIER", "HF_CLASSIFIER", "HF_BACKBONE", "unwrap", "to_core_keys", "to_transformers_keys"]

CORE_CLASSIFIER = "head.fc."
HF_CLASSIFIER = "classifier."
HF_BACKBONE = "ccnn.encoder."
_HF_BARE_BACKBONE = "encoder."  # CCNNModel
_DDP = "module."


def unwrap(state_dict: Mapping[str, Any]) -> Mapping[str, Any]:
    """The state dict inside a training checkpoint (its ``state_dict`` or ``model`` entry), else itself."""
    for wrapper in ("state_dict", "model"):
        if isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
    return state_dict


def to_core_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Any CCNN checkpoint (core / timm, transformers classifier or ``CCNNModel``, wrapped or with
    ``module.`` prefixes) under the core keys."""
    out = {}
    for key, value in unwrap(state_dict).items():
        key = key.removeprefix(_DDP)
        for prefix, replacement in ((HF_BACKBONE, ""), (_HF_BARE_BACKBONE, ""), (HF_CLASSIFIER, CORE_CLASSIFIER)):
            if key.startswith(prefix):
                key = replacement + key[len(prefix) :]
                break
        out[key] = value
    return out


def to_transformers_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Core / timm keys under the keys of the transformers classification heads (a state dict
    already in transformers' keys is returned as it is)."""
    if any(key.startswith(HF_BACKBONE) for key in state_dict):
        return dict(state_dict)

    def renamed(key: str) -> str:
        return HF_CLASSIFIER + key[len(CORE_CLASSIFIER) :] if key.startswith(CORE_CLASSIFIER) else HF_BACKBONE + key

    return {renamed(key): value for key, value in state_dict.items()}
