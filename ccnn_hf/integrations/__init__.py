"""Bridges from the CCNN to other code: timm's registry, transformers' Auto classes and import
hooks, the official checkpoints, the shipped releases, deployment and kernel plots."""
