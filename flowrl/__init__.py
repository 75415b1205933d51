"""flowrl: reinforcement learning for flow-matching image models (and LLMs) on one tree sampler and one GRPO core.

Layers (imports point down only): `flowrl.cli` -> `flowrl.train` -> `flowrl.models` / `flowrl.text` ->
`rewards` -> `flowrl.flow` -> `flowrl.grpo`. Importing `flowrl` itself loads nothing heavy.
"""

__version__ = "0.1.0"
