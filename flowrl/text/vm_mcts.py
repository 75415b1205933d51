"""VM-MCTS (ReST-RL stage 2, arXiv 2508.19576; code THUDM/ReST-RL at e03a987, `algorithms/MCTS/mcts.py`,
`tasks/MCTS/task.py`, `tasks/MCTS/tree_utils.py`): Monte-Carlo tree search over partial solutions, used twice:

- **collect** (no annotation): rollouts' final rewards, verified by the task, are back-propagated to every prefix on
  their path, so each expanded node's value is the mean verified reward of the completions sampled below it. These
  (state, value) pairs and the (completion, reward) pairs are the value model's training targets (`value_targets`).
- **decode**: the same search with the trained value model (VM) in place of the verifier: new nodes are scored by the
  VM, and the answer is the completion of the whole tree with the highest VM score (`best_completion`).

A node's state is a partial completion (text after the prompt). One iteration (`search`, batched over problems):

    selection      from the root, while the node is expanded: go to the visible child with the highest
                   UCT(s) = V(s) + c sqrt((1 + ln N(parent)) / (eps + N(s)))                (c 0.2 collect, 0.1 decode;
                   ties broken at random)                                                     eps 0.1)
    expansion      (non-terminal leaf) sample num_sample continuations o_1..o_k of s from the policy (T 0.7); each
                   o_j gives the action a_j = o_j up to and including its first step delimiter (terminal if o_j has
                   none: a_j = o_j) and the completion s + o_j; new child s + a_j per distinct action. decode:
                   V(s + a) = VM(s + a), N = 1; a repeated action adds N += 1, sum += V. When more than num_decision
                   children exist, all but the num_decision with the highest V become invisible (never selected).
    rollout        collect: r_j = verifier(s + o_j); (n, sum) = (k, sum_j r_j).  decode: the completions are scored by
                   the VM (kept for the answer); (n, sum) = (sum_children N, sum_children sum).
                   A terminal leaf: (1, V) if visited, else (1, score of its own completion).
    backpropagation  for s and every ancestor: sum += sum_new, N += n, V = sum / N.

Steps here are the chain task's '=' segments (the code's are code lines, delimiter '\\n'). Values: iteration_limit
100 / 15 (collect / decode), num_sample 5, num_decision 3 (the README's commands pass 5), c 0.2 / 0.1, eps 0.1,
T 0.7 (README and script defaults; docs/papers_llm.md). The policy and the scorer are callables, so this module holds
only the search (tested on hand-set trees and values); `flowrl/text/value_model.py` binds a causal LM and a VM.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

LOW = -10_000.0  # the code's placeholder score of a completion not scored yet (and UCT's floor)


class Completion(NamedTuple):
    text: str  # the whole completion (text after the prompt)
    ended: bool  # it ended with EOS (a truncated completion is a wrong one)


class MctsParams(NamedTuple):
    """Search knobs (module docstring; defaults are the decoding values of the official evaluation script)."""

    iterations: int = 15  # iteration_limit: 100 to collect value targets, 15 to decode
    num_sample: int = 5  # continuations sampled per expansion
    num_decision: int = 3  # visible children kept per node
    c: float = 0.1  # exploration constant: 0.2 to collect, 0.1 to decode
    eps: float = 0.1  # UCT's zero-visit guard
    delimiter: str = "="  # a step ends at this string


@dataclass(eq=False)
class Node:
    """A partial solution in the search tree (`DecisionNode`)."""

    state: str  # partial completion
    parent: Node | None = None
    terminal: bool = False
    ended: bool = False  # a terminal state that ended with EOS
    n: float = 0.0  # visits N
    v: float = 0.0  # value V = total / N
    total: float = 0.0  # sum of back-propagated rewards
    expanded: bool = False
    visible: bool = True
    children: dict[tuple[str, bool], Node] = field(default_factory=dict)  # (action, ended) -> child
    completions: list[list] = field(default_factory=list)  # [Completion, score] sampled from this node

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1


def uct(v: float, n: float, n_parent: float, *, c: float, eps: float) -> float:
    """UCT(s) = V + c sqrt((1 + ln N_parent) / (eps + N)) (`MCTS.UCT`)."""
    return v + c * math.sqrt((1 + math.log(n_parent)) / (eps + n))


def best_child(node: Node, *, c: float, eps: float, rng: random.Random) -> Node:
    """The visible child with the highest UCT, ties drawn uniformly (`MCTS.getBestChild`)."""
    best, best_value = [], LOW
    for child in node.children.values():
        if not child.visible:
            continue
        value = uct(child.v, child.n, node.n, c=c, eps=eps)
        if value > best_value:
            best, best_value = [child], value
        elif value == best_value:
            best.append(child)
    return best[0] if len(best) == 1 else rng.choice(best)


def select(root: Node, *, c: float, eps: float, rng: random.Random) -> Node:
    """Descend by `best_child` while the node is expanded."""
    node = root
    while node.expanded:
        node = best_child(node, c=c, eps=eps, rng=rng)
    return node


def split_action(sample: str, *, delimiter: str) -> tuple[str, bool]:
    """(action, terminal): the sample up to and including its first delimiter, or the whole sample when it has none
    (a terminal action). ``"4+3=7"`` -> ``("4+3=", False)``; ``"7"`` -> ``("7", True)``."""
    sample = sample.rstrip()
    at = sample.find(delimiter)
    if at < 0:
        return sample, True
    return sample[: at + len(delimiter)], False


def expand(node: Node, samples: list[Completion], *, delimiter: str) -> tuple[list[Node], list[Node]]:
    """Add the children of `node` from its sampled continuations; record each completion s + o_j (score LOW).
    Returns the new children and, per repeated action, the existing child again (in sample order)."""
    new, repeats, seen = [], [], set()
    for sample in samples:
        action, terminal = split_action(sample.text, delimiter=delimiter)
        key = (action, sample.ended if terminal else False)
        text = node.state + (action if terminal else sample.text.rstrip())
        node.completions.append([Completion(text, sample.ended), LOW])
        if key not in seen:
            seen.add(key)
            child = Node(node.state + action, parent=node, terminal=terminal, ended=key[1])
            node.children[key] = child
            new.append(child)
        else:
            repeats.append(node.children[key])
    return new, repeats


def prune(node: Node, *, num_decision: int) -> None:
    """Keep the `num_decision` children with the highest V visible (stable order on ties), hide the rest."""
    if len(node.children) > num_decision:
        ranked = sorted(node.children.values(), key=lambda ch: ch.v, reverse=True)
        for child in ranked[num_decision:]:
            child.visible = False


def backpropagate(node: Node | None, n: float, total: float) -> None:
    """sum += total, N += n, V = sum / N, for `node` and every ancestor."""
    while node is not None:
        node.total += total
        node.n += n
        node.v = node.total / node.n
        node = node.parent


Sampler = Callable[[list[tuple[int, str]]], list[list[Completion]]]
"""(problem index, state) per leaf -> its num_sample sampled continuations (text after the state)."""
Scorer = Callable[[list[tuple[int, Completion]]], list[float]]
"""(problem index, completion or state) -> a score: the verified reward (collect) or the VM's value (decode)."""


def search(
    roots: list[Node],
    *,
    params: MctsParams,
    sample: Sampler,
    score: Scorer,
    phase: Literal["collect", "decode"],
    rng: random.Random,
) -> None:
    """`params.iterations` rounds of selection, expansion, rollout and back-propagation on every tree, in lockstep
    (one `sample` call and at most two `score` calls per round over all trees)."""
    decode = phase == "decode"
    for _ in range(params.iterations):
        leaves = [select(root, c=params.c, eps=params.eps, rng=rng) for root in roots]
        grow = [i for i, leaf in enumerate(leaves) if not leaf.terminal]
        samples = sample([(i, leaves[i].state) for i in grow]) if grow else []
        expansions = {}
        for i, ss in zip(grow, samples, strict=True):
            expansions[i] = expand(leaves[i], ss, delimiter=params.delimiter)
        if decode:  # the VM scores every new child: V = VM(s + a), N = 1
            fresh = [(i, ch) for i in grow for ch in expansions[i][0]]
            values = score([(i, Completion(ch.state, ch.ended)) for i, ch in fresh]) if fresh else []
            for (_, ch), value in zip(fresh, values, strict=True):
                ch.v, ch.n, ch.total = value, 1.0, value
            for i in grow:  # a repeated action counts as one more visit at the child's value
                for ch in expansions[i][1]:
                    ch.n += 1
                    ch.total += ch.v
        for i in grow:
            prune(leaves[i], num_decision=params.num_decision)
            leaves[i].expanded = True
        # rollout: score the new completions (and unvisited terminal leaves) in one call
        queries = [(i, c[0]) for i in grow for c in leaves[i].completions if c[1] == LOW]
        fresh_terminal = [i for i, leaf in enumerate(leaves) if leaf.terminal and leaf.n == 0]
        queries += [(i, Completion(leaves[i].state, leaves[i].ended)) for i in fresh_terminal]
        scores = score(queries) if queries else []
        k = 0
        for i in grow:
            for c in leaves[i].completions:
                if c[1] == LOW:
                    c[1], k = scores[k], k + 1
        terminal_score = dict(zip(fresh_terminal, scores[k:], strict=True))
        for i, leaf in enumerate(leaves):
            if leaf.terminal:
                n, total = 1.0, leaf.v if leaf.n > 0 else terminal_score[i]
            elif decode:
                n = sum(ch.n for ch in leaf.children.values())
                total = sum(ch.total for ch in leaf.children.values())
            else:
                scored = [c[1] for c in leaf.completions]
                n, total = float(len(scored)), float(sum(scored))
            backpropagate(leaf, n, total)


def nodes(root: Node) -> list[Node]:
    """The tree in preorder (children in insertion order)."""
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        out.append(node)
        stack += reversed(list(node.children.values()))
    return out


class ValueTarget(NamedTuple):
    completion: Completion  # a whole completion, or an expanded node's state (ended False)
    target: float  # the completion's verified reward, or the node's value V
    is_state: bool


def value_targets(root: Node) -> list[ValueTarget]:
    """The VM's training pairs of a collect tree (`process_gen_data.py`, method MCTS): every completion with its
    verified reward, then every expanded node's state with its value V (preorder)."""
    out = [ValueTarget(c[0], float(c[1]), False) for node in nodes(root) for c in node.completions]
    out += [ValueTarget(Completion(node.state, False), node.v, True) for node in nodes(root) if node.expanded]
    return out


def best_completion(root: Node) -> Completion:
    """The answer of a decode tree: the completion with the highest score, the first in preorder on ties
    (`evaluation/eval.py`); an empty, unended completion if the tree has none."""
    best, best_score = Completion("", False), LOW
    for node in nodes(root):
        for c in node.completions:
            if c[1] > best_score:
                best, best_score = c[0], c[1]
    return best


__all__ = [
    "Completion",
    "MctsParams",
    "Node",
    "backpropagate",
    "best_child",
    "best_completion",
    "expand",
    "nodes",
    "prune",
    "search",
    "select",
    "split_action",
    "uct",
    "value_targets",
    "ValueTarget",
]
