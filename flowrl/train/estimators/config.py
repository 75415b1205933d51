"""`method.*` of an image run translated into the `FlowMethod` of one iteration (`flowrl.flow.methods`).

The plan builders keep the papers' defaults; this module applies what the config overrides (clip range, KL weight,
advantage clip and scale, log-prob pooling, KL form, CPS scoring, LayerTuning-RL hooks) and refuses options that
the method's estimator family would ignore.
"""

from __future__ import annotations

from functools import partial

from flowrl.config import ConfigError
from flowrl.flow.methods import FlowMethod, TreeRPOHooks, build_method
from flowrl.train.image_config import ImageTrainConfig
from flowrl.train.layer_tuning import reward_adaptive_clip_bounds

MODEL_GRIDS = {"shapeworld": "sd3", "sd3": "sd3", "flux": "linear"}  # method.grid when unset: the pipeline's grid

# options of the step log-probability loss, with whether the config sets them (forward-process methods refuse them)
_STEP_LOSS_OPTIONS = (
    ("method.clip_range", lambda cfg: cfg.method.clip_range is not None),
    ("method.logprob_pool", lambda cfg: cfg.method.logprob_pool != 1),
    ("method.kl_form", lambda cfg: cfg.method.kl_form != "exact"),
    ("method.cps_logprob", lambda cfg: cfg.method.cps_logprob != "gaussian"),
    ("train.step_split", lambda cfg: cfg.train.step_split != "prompts"),
    ("method.sft_weight", lambda cfg: cfg.method.sft_weight > 0),
    ("method.adaptive_clip_scale", lambda cfg: cfg.method.adaptive_clip_scale > 0),
)


def grid_name(cfg: ImageTrainConfig) -> str:
    """`method.grid`, or the grid of the model kind's pipeline when unset (`MODEL_GRIDS`)."""
    return cfg.method.grid or MODEL_GRIDS[cfg.model.kind]


def make_method(cfg: ImageTrainConfig, iteration: int, *, default_shift: float = 3.0) -> FlowMethod:
    """The method of this iteration; the model's time shift unless `method.kwargs.shift` sets one, and the time grid
    of `grid_name` unless `method.kwargs.grid` sets one."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.method.kwargs.items()}
    kwargs.setdefault("shift", default_shift)
    kwargs.setdefault("grid", grid_name(cfg))
    try:
        method = build_method(cfg.method.name, iteration=iteration, guard=cfg.method.guard, **kwargs)
    except TypeError as e:  # an unknown kwarg of the plan builder
        raise ConfigError(f"method.kwargs {sorted(kwargs)} do not fit method {cfg.method.name!r}: {e}") from e
    except ValueError as e:  # an unknown method, or GRPO-Guard on a method without step ratios
        raise ConfigError(str(e)) from e
    if method.forward is not None:  # options of the edge loss would be silently ignored: refuse them
        unused = [name for name, is_set in _STEP_LOSS_OPTIONS if is_set(cfg)]
        if unused:
            raise ConfigError(
                f"{', '.join(unused)} apply to the step log-probability loss; {cfg.method.name!r} trains on the "
                "forward process and has no step ratios. Leave them unset (its knobs are method.kwargs)."
            )
    if cfg.method.clip_range is not None:
        method = method._replace(clip_range=cfg.method.clip_range)
    if cfg.method.kl_beta is not None:
        method = method._replace(kl_beta=cfg.method.kl_beta)
    return _with_loss_options(cfg, _with_advantage_options(cfg, method))


def _with_advantage_options(cfg: ImageTrainConfig, method: FlowMethod) -> FlowMethod:
    """`method.adv_clip`, `method.adv_scale`, `train.advantage_std`, `train.unbiased_std` in the estimator kwargs."""
    kw = dict(method.advantage_kwargs)
    if cfg.method.adv_clip is not None:
        kw["clip"] = cfg.method.adv_clip
    if cfg.method.adv_scale is not None:
        if method.advantage != "group":
            raise ConfigError(
                f"method.adv_scale applies to group advantages; {cfg.method.name!r} uses {method.advantage!r} "
                "(tree estimators normalise per node). Leave method.adv_scale unset for it."
            )
        kw["scale"] = cfg.method.adv_scale
    if cfg.train.advantage_std == "global":
        if method.advantage != "group" or kw.get("scale", "group") not in ("group", "batch"):
            raise ConfigError(
                f"train.advantage_std=global divides group advantages by the iteration's reward std; "
                f"{cfg.method.name!r} uses {method.advantage!r} with scale "
                f"{kw.get('scale', 'group')!r}. Use train.advantage_std=group with it."
            )
        kw["scale"] = "batch"
    if not cfg.train.unbiased_std:
        if method.advantage not in ("group", "per_sibling"):
            raise ConfigError(
                f"train.unbiased_std=false (numpy's biased std, flow_grpo / TempFlow) applies to the group and "
                f"per-sibling estimators; {cfg.method.name!r} uses {method.advantage!r}. Leave it true."
            )
        kw["unbiased"] = False
    return method._replace(advantage_kwargs=kw)


def _with_loss_options(cfg: ImageTrainConfig, method: FlowMethod) -> FlowMethod:
    """Log-prob pooling, KL form, CPS scoring and the Dynamic-TreeRPO hooks of the step log-probability loss."""
    if cfg.method.logprob_pool != 1:
        method = method._replace(logprob_pool=cfg.method.logprob_pool)
    if cfg.method.kl_form != "exact":
        method = method._replace(kl_form=cfg.method.kl_form)
    if cfg.method.cps_logprob != "gaussian":
        method = method._replace(cps_logprob=cfg.method.cps_logprob)
    if cfg.method.sft_weight > 0 or cfg.method.adaptive_clip_scale > 0:
        base = method.hooks or TreeRPOHooks()
        clip_bounds = base.clip_bounds
        if cfg.method.adaptive_clip_scale > 0:
            clip_bounds = partial(reward_adaptive_clip_bounds, scale=cfg.method.adaptive_clip_scale)
        weight = cfg.method.sft_weight
        method = method._replace(hooks=TreeRPOHooks(sft_weight=lambda it: weight, clip_bounds=clip_bounds))
    return method
