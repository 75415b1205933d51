"""Syn-GRPO's data server: bounded queue, a trainer that never waits, draining on stop, right answers, guidance."""

import math
import threading
import time

import pytest
import torch

from flowrl.shapes.grader import detect_objects
from flowrl.shapes.questions import answer_question, parse_question
from flowrl.shapes.render import render_prompts
from flowrl.shapes.scene import scene_from_detections
from flowrl.vlm.synth import SynServer, diversity_reward, family_probabilities


def rendered(prompts, seed):  # the ShapeWorld renderer as the image source (exact scenes, graded strictly)
    return render_prompts(prompts, seed=seed)


def _wait(cond, seconds=120.0):
    end = time.monotonic() + seconds
    while not cond() and time.monotonic() < end:
        time.sleep(0.05)
    return cond()


def test_diversity_reward_and_guidance_by_hand():
    # multisets {red:1, circle:1} vs {red:1, square:1}: |&| = 1, |U| = 3 -> 1 - 1/3
    assert diversity_reward("red circle", ["red square"]) == pytest.approx(2 / 3)
    assert diversity_reward("red circle", ["red circle", "blue square"]) == 0.0
    assert diversity_reward("red circle", []) == 1.0
    p = family_probabilities({"a": 1.0, "b": 0.9}, tau=0.1)  # softmax(10, 9)
    assert p["a"] == pytest.approx(1 / (1 + math.exp(-1.0)))


def test_queue_is_bounded_and_drains_on_stop():
    server = SynServer(rendered, maxsize=5, batch=4, seed=0).start()
    assert _wait(lambda: server.stats["waits"] > 0)  # the worker filled the queue and waits
    assert server.queue.qsize() == 5
    drained = server.stop()
    assert len(drained) == 5 and server.queue.qsize() == 0 and not server._thread.is_alive()
    for row in drained:  # the answer is right for the image that was synthesised
        scene = scene_from_detections(detect_objects(torch.from_numpy(row["pixels"]).permute(2, 0, 1)[None] / 255)[0],
                                      size=32)  # fmt: skip
        assert answer_question(parse_question(row["prompt"][len("<image> ") :]), scene) == row["answer"]


def test_take_never_waits_for_a_slow_generator():
    release = threading.Event()

    def slow(prompts, seed):
        release.wait(60)
        return render_prompts(prompts, seed=seed)

    server = SynServer(slow, maxsize=4, batch=2).start()
    t0 = time.monotonic()
    assert server.take(8) == []  # nothing yet: returns at once instead of waiting for the generator
    assert time.monotonic() - t0 < 1.0
    release.set()
    assert _wait(lambda: server.queue.qsize() > 0)
    assert 1 <= len(server.take(8)) <= 4
    server.stop()


def test_a_failing_generator_surfaces_in_take():
    def broken(prompts, seed):
        raise OSError("pipeline folder missing")

    server = SynServer(broken).start()
    assert _wait(lambda: server.error is not None)
    with pytest.raises(RuntimeError, match="pipeline folder missing"):
        server.take(1)


@pytest.mark.slow
def test_the_shipped_pipeline_synthesises_question_rows():
    from flowrl.vlm.synth import pipeline_generator

    server = SynServer(pipeline_generator("assets/shapeworld"), maxsize=8, batch=16, seed=0).start()
    assert _wait(lambda: server.stats["generated"] >= 16, 600)
    rows = server.stop()
    assert server.stats["generated"] >= 16
    assert all(r["pixels"].shape == (32, 32, 3) for r in rows)
