"""`flowrl eval`: score images (a folder plus a prompts file, or samples generated from a ShapeWorld model) with any
list of rewards, summarise them with bootstrap confidence intervals, write a Markdown report with the best and worst
samples, and compare two score files prompt by prompt. The entry point is `flowrl.eval.cli.main`.
"""

from flowrl.eval.cli import main

__all__ = ["main"]
