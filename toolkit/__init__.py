"""Checkpoints, images, inference and the ``pcarn`` CLI around the PCARN models."""
