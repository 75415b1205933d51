"""`scripts/compare_methods.py` on a tiny random ShapeWorld model: a comparison writes its table, plot and JSON, and
`--add-to` adds a preset's row to it with the same settings (and refuses different ones)."""

from __future__ import annotations

import json
import sys

import pytest


@pytest.fixture(scope="module")
def compare(load_script):
    return load_script("compare_methods")


def _run(compare, monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["compare_methods.py", *argv])
    compare.main()


def test_comparison_and_an_added_row(compare, monkeypatch, tmp_path, tiny_model):
    common = ["--model", str(tiny_model), "--nfe-budget", "300", "--prompts-per-family", "1", "--seeds", "1"]
    common += ["--out", str(tmp_path / "runs"), "--docs", str(tmp_path / "docs"), "train.prompts_per_iteration=2"]
    _run(compare, monkeypatch, "--presets", "shapes_flow_grpo", *common)
    (first,) = (tmp_path / "runs").glob("*/compare_methods.json")
    data = json.loads(first.read_text())
    assert [r["method"] for r in data["runs"]] == ["flow_grpo"] and data["runs"][0]["nfe"] >= 300
    assert (tmp_path / "docs" / "compare_methods.png").is_file()

    _run(compare, monkeypatch, "--presets", "shapes_awm", "--add-to", str(first), *common)
    table = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "| flow_grpo |" in table and "| awm |" in table and "Rows awm were added" in table
    assert table.count("<!-- compare-methods:start -->") == 1  # the section is replaced, not appended
    combined = [p for p in (tmp_path / "runs").glob("*/compare_methods.json") if p != first]
    assert [r["method"] for r in json.loads(combined[0].read_text())["runs"]] == ["flow_grpo", "awm"]

    with pytest.raises(SystemExit, match="nfe_budget differ"):
        _run(compare, monkeypatch, "--presets", "shapes_awm", "--add-to", str(first), *common[:3], "301", *common[4:])


def test_equal_wall_time_has_its_own_section_and_paired_changes(compare, monkeypatch, tmp_path, tiny_model):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "benchmarks.md").write_text(
        "# Benchmarks\n\n<!-- compare-methods:start -->\nNFE table\n<!-- compare-methods:end -->\n"
    )
    argv = ["--model", str(tiny_model), "--minutes", "0.01", "--prompts-per-family", "1", "--seeds", "2"]
    argv += [
        "--eval-every",
        "0",
        "--out",
        str(tmp_path / "runs"),
        "--docs",
        str(docs),
        "train.prompts_per_iteration=2",
    ]
    _run(compare, monkeypatch, "--presets", "shapes_diffusion_nft", *argv)
    (path,) = (tmp_path / "runs").glob("*/compare_methods.json")
    data = json.loads(path.read_text())
    (run,) = data["runs"]
    assert data["minutes"] == 0.01 and run["iterations"] >= 1  # stops after the iteration that crosses the time
    assert len(data["base_outcomes"]) == 5 * 2  # one per held-out prompt and seed, the pairing of the change
    mean, se = run["change"]
    final = run["final"]["overall"]
    assert mean == pytest.approx(final - data["base"]["overall"]) and se >= 0
    text = (docs / "benchmarks.md").read_text()
    assert "NFE table" in text  # the equal-NFE section stays
    assert "<!-- compare-methods-time:start -->" in text and "## Image methods at equal wall time" in text
    assert (docs / "compare_methods_time.png").is_file()
