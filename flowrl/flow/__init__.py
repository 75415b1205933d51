"""The flow-matching MDP: time grids, step kernels, rollout plans, the tree sampler and its hand-off to the core.

Imports only torch and `flowrl.grpo` (docs/architecture.md, Layers). Typical iteration::

    method = build_method("mixgrpo", iteration=it)                     # plan + estimator + weights + clip
    with torch.no_grad():
        tree = rollout(policy, method.plan, cond, noise)               # noise: (P, R, *latent)
    adv = edge_advantages(method.advantage, tree, rewards, **method.advantage_kwargs)   # rewards per leaf
    current = evaluate_edges(policy, tree, cond)                       # one forward per parent
    batch = policy_batch(tree, current, adv, weights=step_weights(tree, noise_aware=method.noise_aware,
                                                                  guard=method.guard), guard=method.guard)
"""

from flowrl.flow.advantages import ADVANTAGES, edge_advantages, edge_leaf_map, leaf_values
from flowrl.flow.broadcast import append_dims
from flowrl.flow.grid import GRIDS, flux_mu, flux_time_grid, named_grid, sd3_time_grid, shift_sigmas, time_grid
from flowrl.flow.kernels import KERNELS, Step, cps, dance_sde, dpmpp_2m, flow_sde, gaussian_logprob, ode_euler
from flowrl.flow.loss import EdgeEval, evaluate_edges, policy_batch, step_weights
from flowrl.flow.methods import METHODS, FlowMethod, Pruning, TreeRPOHooks, build_method, with_guard
from flowrl.flow.plan import FinishSpec, ProbeSpec, RolloutPlan, StepSpec, check_plan, finish_grids
from flowrl.flow.schedules import WINDOW_SCHEDULES, window_start, window_steps
from flowrl.flow.tree import Edges, Tree, rollout, split_tree
from flowrl.flow.velocity import VelocityModel

__all__ = [
    "ADVANTAGES",
    "GRIDS",
    "KERNELS",
    "METHODS",
    "WINDOW_SCHEDULES",
    "EdgeEval",
    "Edges",
    "FinishSpec",
    "FlowMethod",
    "ProbeSpec",
    "Pruning",
    "RolloutPlan",
    "Step",
    "StepSpec",
    "Tree",
    "TreeRPOHooks",
    "VelocityModel",
    "append_dims",
    "build_method",
    "check_plan",
    "cps",
    "dance_sde",
    "dpmpp_2m",
    "edge_advantages",
    "edge_leaf_map",
    "evaluate_edges",
    "finish_grids",
    "flow_sde",
    "flux_mu",
    "flux_time_grid",
    "gaussian_logprob",
    "leaf_values",
    "ode_euler",
    "named_grid",
    "policy_batch",
    "rollout",
    "sd3_time_grid",
    "shift_sigmas",
    "split_tree",
    "step_weights",
    "time_grid",
    "window_start",
    "window_steps",
    "with_guard",
]
