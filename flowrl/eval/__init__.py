"""`flowrl eval`: score images (a folder plus a prompts file, or samples generated from any model `flowrl train`
accepts: a ShapeWorld or SD3 / FLUX pipeline folder, a LoRA on it, or a training run) with any list of rewards,
summarise them with bootstrap confidence intervals, write a Markdown report with the best and worst samples, and
compare two evaluations prompt by prompt. The entry point is `flowrl.eval.cli.main`.

`load_model` (the loader `flowrl sample`, `flowrl eval` and `flowrl demo` share) and `generate` (the seeded sampler)
live here too.
"""

from flowrl.eval.cli import main

__all__ = ["main"]
