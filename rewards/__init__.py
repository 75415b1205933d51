"""Reward functions for flowrl, usable on their own: `(images, prompts, metadata) -> (B,) float32`.

The package is filled by the rewards issue; today it holds nothing but this namespace.
"""
