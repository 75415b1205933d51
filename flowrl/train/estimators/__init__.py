"""The two estimator families of the image trainer behind one interface (`base.Estimator`), and the translation of
`method.*` into a method (`config`). `make_estimator` picks the family of a method."""

from __future__ import annotations

from flowrl.flow.methods import FlowMethod
from flowrl.models.base import ImageAdapter
from flowrl.train.ema import EMA
from flowrl.train.estimators.base import Estimator, PromptRollout, StepContext
from flowrl.train.estimators.config import MODEL_GRIDS, grid_name, make_method
from flowrl.train.estimators.forward_process import ForwardProcess, SampleCredit
from flowrl.train.estimators.step_logprob import EdgeCredit, StepLogProb

__all__ = [
    "MODEL_GRIDS",
    "EdgeCredit",
    "Estimator",
    "ForwardProcess",
    "PromptRollout",
    "SampleCredit",
    "StepContext",
    "StepLogProb",
    "grid_name",
    "make_estimator",
    "make_method",
    "samples_with_lagged_policy",
]


def samples_with_lagged_policy(method: FlowMethod) -> bool:
    """Whether the method's estimator samples with a lagged policy (an `EMA` the run keeps and checkpoints)."""
    return method.forward is not None


def make_estimator(cfg, adapter: ImageAdapter, method: FlowMethod, *, old: EMA | None) -> Estimator:
    """The estimator of `method`'s family: `ForwardProcess` (with the lagged policy `old`) or `StepLogProb`."""
    if samples_with_lagged_policy(method):
        if old is None:
            raise ValueError(f"{method.name!r} samples with a lagged policy: pass old=EMA(params, decay=0.0).")
        return ForwardProcess(cfg, adapter, method, old=old)
    return StepLogProb(cfg, adapter, method)
