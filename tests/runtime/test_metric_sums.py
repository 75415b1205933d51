"""MetricSums: weighted means, counts, ratio moments (plain and per group), merging processes' sums.
Expected values written out by hand. Run: pytest tests/runtime/test_metric_sums.py -q"""

import math

import pytest
import torch

from flowrl.runtime.metric_sums import MetricSums


def test_weighted_means_counts_and_divide():
    sums = MetricSums()
    sums.add_weighted({"loss": torch.tensor(1.0), "kl": 0.5}, torch.tensor(2.0))
    sums.add_weighted({"loss": torch.tensor(4.0)}, 1.0)  # a Python weight
    sums.add_weighted({"unused": torch.tensor(9.0)}, 0.0)  # zero weight: left out
    sums.add_count("edges", 3)
    sums.add_count("grad_norm", torch.tensor(5.0))
    out = sums.means(divide={"grad_norm": 2.0})
    assert out == {"loss": (2 * 1 + 4) / 3, "kl": 0.5, "edges": 3.0, "grad_norm": 2.5}


def test_pre_summed_values_weigh_by_their_item_count():
    sums = MetricSums()
    sums.add_weighted_sums({"loss": torch.tensor([1.0, 2.0, 3.0]).sum()}, 3)
    sums.add_weighted_sums({"loss": torch.tensor(10.0)}, 1)
    assert sums.means() == {"loss": 16.0 / 4}


def test_moments_and_grouped_moments():
    ratio = torch.tensor([1.0, 1.5, 0.5, 2.0])
    sums = MetricSums()
    sums.add_moments("all", ratio, torch.tensor([True, True, True, False]))
    sums.add_grouped_moments("step", ratio, torch.tensor([0, 0, 2, 2]), 4)
    out = sums.means()
    # all (masked): r - 1 = 0, 0.5, -0.5 -> mean 1.0, std sqrt(1/6)
    assert out["ratio_mean/all"] == 1.0 and out["ratio_std/all"] == pytest.approx(math.sqrt(1 / 6))
    # step 0: r - 1 = 0, 0.5 -> mean 1.25, std 0.25; step 2: -0.5, 1.0 -> mean 1.25, std 0.75; steps 1, 3: no entry
    assert out["ratio_mean/step_0"] == 1.25 and out["ratio_std/step_0"] == pytest.approx(0.25)
    assert out["ratio_mean/step_2"] == 1.25 and out["ratio_std/step_2"] == pytest.approx(0.75)
    assert not any(k.endswith(("step_1", "step_3")) for k in out)


def test_merged_processes_equal_one_process():
    ratio, group = torch.tensor([1.0, 1.5, 0.5, 2.0]), torch.tensor([0, 1, 1, 0])
    one = MetricSums()
    one.add_weighted({"loss": torch.tensor(1.0)}, 2)
    one.add_weighted({"loss": torch.tensor(3.0)}, 2)
    one.add_count("edges", 4)
    one.add_grouped_moments("step", ratio, group, 2)
    a, b = MetricSums(), MetricSums()
    a.add_weighted({"loss": torch.tensor(1.0)}, 2)
    a.add_count("edges", 2)
    a.add_grouped_moments("step", ratio[:2], group[:2], 2)
    b.add_weighted({"loss": torch.tensor(3.0)}, 2)
    b.add_count("edges", 2)
    b.add_grouped_moments("step", ratio[2:], group[2:], 2)
    merged = MetricSums().merge(a.to_cpu()).merge(b.to_cpu())
    assert merged.means() == one.means()


def test_empty_sums_give_no_metrics():
    assert MetricSums().means() == {}
