"""Syn-GRPO's data server (arXiv 2506.19713 [?]): new question images synthesised by flowrl's own ShapeWorld image
pipeline, in a background thread with a bounded queue, guided by a diversity reward.

The worker loop: choose a ShapeWorld prompt family (guided, below), draw training-split prompts of it, generate one
image per prompt with `generate(prompts, seed) -> (B, 3, H, W)` in [0, 1] (`pipeline_generator`: the trained
pipeline when given, the shipped base `assets/shapeworld` otherwise), keep only images the ShapeWorld grader passes
strictly for their prompt (so the answers computed from the detected scene are right), ask a question about each
(`flowrl.shapes.questions`), and put the rows in a queue of at most `maxsize` rows. When the queue is full the worker
waits in short slices and re-checks the stop flag; the trainer takes rows with `take(n)`, which never waits.
`stop()` ends the worker and drains the queue (returns the rows left).

Diversity guidance: a row's description is the reasoning text of its scene (the MLLM's ``<think>`` when a
`describe` function is given); its diversity reward is ``1 - max_k J(d, d_k)`` over the last `window` descriptions
(J = Jaccard of the word multisets), and a family's next draw has probability ``softmax(mean reward / tau)`` over the
families (tau [?] default 0.1, window [?] 64): families whose images keep being described differently are synthesised
more often. Our reading of Syn-GRPO's diversity reward, which scores the MLLM's image descriptions.
"""

from __future__ import annotations

import math
import queue
import random
import threading
from collections import Counter, deque
from collections.abc import Callable

import numpy as np
import torch

from flowrl.shapes.grader import detect_objects, grade
from flowrl.shapes.grammar import format_prompt, split_prompts
from flowrl.shapes.questions import QUESTION_FAMILIES, answer_question, describe, format_question, sample_question
from flowrl.shapes.scene import scene_from_detections

SYN_FAMILIES = ("single", "counting", "two_objects", "colors", "position")


def diversity_reward(description: str, recent: list[str]) -> float:
    """``1 - max_k J(d, d_k)`` with J the multiset Jaccard of words (1 when `recent` is empty)."""
    a = Counter(description.split())
    best = 0.0
    for other in recent:
        b = Counter(other.split())
        union = sum((a | b).values())
        best = max(best, sum((a & b).values()) / union if union else 1.0)
    return 1.0 - best


def family_probabilities(mean_rewards: dict[str, float], *, tau: float = 0.1) -> dict[str, float]:
    """``softmax(mean reward / tau)`` over the families."""
    m = max(mean_rewards.values())
    w = {f: math.exp((r - m) / tau) for f, r in mean_rewards.items()}
    z = sum(w.values())
    return {f: v / z for f, v in w.items()}


def pipeline_generator(model_path: str = "assets/shapeworld", *, num_inference_steps: int = 10):
    """`generate(prompts, seed)` from a ShapeWorld pipeline folder (or a run's final weights)."""
    from flowrl.runtime.paths import resolve_path
    from flowrl.shapes.model import load_shapeworld
    from flowrl.shapes.sampling import sample_images

    model = load_shapeworld(resolve_path(model_path, what="ShapeWorld pipeline folder"))

    def generate(prompts: list[str], seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return sample_images(model, prompts, generator=g, num_inference_steps=num_inference_steps)

    return generate


class SynServer:
    """The background data server (see the module docstring). Rows hold ``pixels`` (uint8 HWC) instead of a scene."""

    def __init__(
        self,
        generate: Callable[[list[str], int], torch.Tensor],
        *,
        maxsize: int = 64,
        batch: int = 8,
        seed: int = 0,
        tau: float = 0.1,
        window: int = 64,
        describe_fn: Callable[[np.ndarray], str] | None = None,
    ) -> None:
        if maxsize < 1 or batch < 1:
            raise ValueError(f"maxsize and batch must be >= 1, got {maxsize} and {batch}.")
        self.generate, self.batch, self.tau, self.describe_fn = generate, batch, tau, describe_fn
        self.queue: queue.Queue[dict] = queue.Queue(maxsize=maxsize)
        self.rng = random.Random(seed)
        self.recent: deque[str] = deque(maxlen=window)
        self.rewards = {f: deque([1.0], maxlen=window) for f in SYN_FAMILIES}
        self.stats = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.pools = {f: split_prompts(f, "train") for f in SYN_FAMILIES}

    # ---------------------------------------------------------------------------------------------- worker

    def _rows(self, round_: int) -> list[dict]:
        probs = family_probabilities({f: sum(r) / len(r) for f, r in self.rewards.items()}, tau=self.tau)
        family = self.rng.choices(list(probs), weights=list(probs.values()))[0]
        prompts = [format_prompt(self.rng.choice(self.pools[family])) for _ in range(self.batch)]
        images = self.generate(prompts, round_).float().clamp(0, 1)  # (B, 3, H, W)
        passed = grade(images, prompts).strict
        self.stats["generated"] += len(prompts)
        rows = []
        for img, det, ok in zip(images, detect_objects(images), passed.tolist(), strict=True):
            if not ok:
                continue
            scene = scene_from_detections(det, size=img.shape[-1])
            pixels = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            text = self.describe_fn(pixels) if self.describe_fn is not None else describe(scene)
            reward = diversity_reward(text, list(self.recent))
            self.recent.append(text)
            self.rewards[family].append(reward)
            for qf in self.rng.sample(QUESTION_FAMILIES, len(QUESTION_FAMILIES)):
                q = sample_question(qf, scene, self.rng)
                if q is not None:
                    rows.append({
                        "prompt": f"<image> {format_question(q)}", "answer": answer_question(q, scene),
                        "family": q.family, "think": describe(scene), "image_family": family, "pixels": pixels,
                        "diversity": reward,
                    })  # fmt: skip
                    break
        self.stats["kept"] += len(rows)
        return rows

    def _run(self) -> None:
        round_ = 0
        try:
            while not self._stop.is_set():
                for row in self._rows(round_):
                    while not self._stop.is_set():
                        try:
                            self.queue.put(row, timeout=0.05)  # bounded: wait in slices, re-check the stop flag
                            break
                        except queue.Full:
                            self.stats["waits"] += 1
                round_ += 1
        except BaseException as e:  # surfaced to the trainer by take()
            self.error = e

    # ---------------------------------------------------------------------------------------------- trainer side

    def start(self) -> SynServer:
        self._thread = threading.Thread(target=self._run, name="flowrl-syn-grpo", daemon=True)
        self._thread.start()
        return self

    def take(self, n: int) -> list[dict]:
        """Up to `n` synthesised rows, without waiting (fewer, or none, when the queue holds fewer)."""
        if self.error is not None:
            raise RuntimeError(f"The Syn-GRPO data server failed: {self.error!r}") from self.error
        out = []
        while len(out) < n:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return out

    def stop(self, timeout: float = 60.0) -> list[dict]:
        """Stop the worker (it finishes its current generation) and drain the queue; returns the drained rows."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"The Syn-GRPO worker did not stop within {timeout} s.")
        return self.take(self.queue.qsize() + 1)


def renderer_generator():
    """`generate(prompts, seed)` drawing each prompt with the ShapeWorld renderer (exact scenes, no model): a control
    for the image model's drawings, and the tests' source."""
    from flowrl.shapes.render import render_prompts

    return lambda prompts, seed: render_prompts(prompts, seed=seed)


class SynFeed:
    """Syn-GRPO's rows in the text trainer's steps (`flowrl train-vlm synth.share=...`, config section `synth`).

    Each step asks the server for ``round(share * P)`` rows (P = the step's questions) without waiting, registers their
    images with the policy (`flowrl.vlm.tasks.bind_images`), and puts them in place of the step's last questions; with
    fewer rows in the queue, fewer are replaced (none at the start, while the worker makes its first batch). The step's
    rows become ``rows + synthesised`` and its indices point into that list, so the trainer's collect, rewards and
    update see ordinary task rows.
    """

    def __init__(self, server: SynServer, model, encode: Callable[[list[str]], list[list[int]]], *, share: float):
        if not 0.0 < share <= 1.0:
            raise ValueError(
                f"synth.share (the step's share of synthesised questions) must be in (0, 1], got {share}."
            )
        self.server, self.model, self.encode, self.share = server, model, encode, share
        self.used = 0

    def mix(
        self, rows: list[dict], prompt_ids: list[list[int]], indices: list[int]
    ) -> tuple[list[dict], list[list[int]], list[int], int]:
        """`(rows', prompt_ids', indices', n)`: the step's lists with `n` synthesised rows in place of the last `n`
        indices (the inputs themselves when the queue is empty)."""
        from flowrl.vlm.tasks import bind_images

        new = self.server.take(round(self.share * len(indices)))
        if not new:
            return rows, prompt_ids, indices, 0
        bound = bind_images(self.model, new)
        self.used += len(bound)
        start = len(rows)
        kept = indices[: len(indices) - len(bound)]
        return (
            rows + bound,
            prompt_ids + self.encode([r["prompt"] for r in bound]),
            kept + [start + i for i in range(len(bound))],
            len(bound),
        )

    def stats(self) -> dict[str, float]:
        """Server counters (generated, kept, waits) and the rows trained on so far."""
        return {f"synth/{k}": float(v) for k, v in self.server.stats.items()} | {"synth/used": float(self.used)}

    def stop(self) -> None:
        self.server.stop()


def start_feed(synth, model, encode: Callable[[list[str]], list[list[int]]], *, seed: int = 0) -> SynFeed:
    """Start the server of config section `synth` (`flowrl.text.config.SynthConfig`) and its feed for `model` (a
    `KeyedImageVLM`); `encode` turns prompts into token ids as the trainer does. Rows depend on when the worker is
    scheduled, so a run with Syn-GRPO is not bit-reproducible."""
    if synth.pipeline == "renderer":
        generate = renderer_generator()
    else:
        generate = pipeline_generator(synth.pipeline, num_inference_steps=synth.num_inference_steps)
    server = SynServer(generate, maxsize=synth.queue_size, batch=synth.batch, seed=seed, tau=synth.tau).start()
    return SynFeed(server, model, encode, share=synth.share)
