"""The training progress bar: tqdm, switched off when stderr is not a terminal (logs, CI) unless forced on.

Postfix values must already be Python numbers (e.g. the dict returned by `MetricsLogger.log`), so drawing the bar
never forces an extra host sync.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from tqdm import tqdm


class Progress(tqdm):
    """`tqdm` whose `set_postfix` refuses tensors (they would sync the device at every redraw)."""

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        """Show `key=value` pairs after the bar, e.g. `bar.set_postfix(reward=row["reward_mean"])`."""
        values = {**(ordered_dict or {}), **kwargs}
        tensors = [k for k, v in values.items() if isinstance(v, torch.Tensor)]
        if tensors:
            raise TypeError(
                f"Progress postfix {tensors[0]!r} is a tensor; pass Python numbers, e.g. the values returned by "
                "MetricsLogger.log, so the bar does not sync the device."
            )
        super().set_postfix(values, refresh=refresh)


def progress(total: int, *, desc: str, disable: bool | None = None, initial: int = 0) -> Progress:
    """A progress bar over `total` steps.

    Args:
        total (`int`): Number of steps (e.g. optimizer steps of the run).
        desc (`str`): Label in front of the bar.
        disable (`bool`, *optional*, defaults to `None`): `None` hides the bar when stderr is not a TTY;
            `False` forces it on, `True` forces it off (e.g. on non-main ranks).
        initial (`int`, defaults to `0`): Starting count, e.g. the resume step.

    Returns:
        `Progress`: use `.update(n)`, `.set_postfix(reward=...)` and `.close()` (or a `with` block).
    """
    if disable is None:
        disable = not sys.stderr.isatty()
    return Progress(total=total, desc=desc, disable=disable, initial=initial, dynamic_ncols=True, file=sys.stderr)
