"""`scripts/bench_gpu.py --tiny` runs on the CPU (keeps the GPU benchmark from rotting): every phase reports a
throughput, an MFU in (0, 1] and the published full-size configurations build on the meta device with the expected
parameter counts. Run: pytest tests/models/test_bench_gpu.py -q
"""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_gpu")


def test_tiny_benchmark_runs_on_cpu(bench, tmp_path):
    out = tmp_path / "bench.json"
    argv = [
        "--tiny",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--resolution",
        "16",
        "--batch",
        "1",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--out",
        str(out),
    ]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["tiny"] and report["matmul_peak_tflops"] > 0
    assert [r["model"] for r in report["results"]] == ["sd35m", "flux"]
    for r in report["results"]:
        for key in ("rollout_images_per_s", "train_lora_edges_per_s", "train_full_edges_per_s"):
            assert isinstance(r[key], float) and r[key] > 0, (r["model"], key, r[key])
        for key in ("rollout_mfu", "train_lora_mfu", "train_full_mfu"):
            assert 0 < r[key] <= 1.5, (r["model"], key, r[key])  # small matmuls can beat the 256^3 "peak" a little
        assert r["train_full_trainable"] == r["params"] and r["train_lora_trainable"] > 0


def test_full_size_configs_have_the_published_parameter_counts(bench):
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    with torch.device("meta"):
        sd3 = SD3Transformer2DModel(**bench.SD35M)
        flux = FluxTransformer2DModel(**bench.FLUX_DEV)
    # SD3.5-Medium is a 2.5B-parameter MMDiT-X; FLUX.1-dev a 12B-parameter transformer (model cards)
    assert 2.2e9 < sum(p.numel() for p in sd3.parameters()) < 2.6e9
    assert 11.5e9 < sum(p.numel() for p in flux.parameters()) < 12.2e9
