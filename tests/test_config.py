"""The config machinery: presets, overrides, strict errors, YAML round trip. Run: pytest tests/test_config.py -q"""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from flowrl.config import (
    ConfigError,
    describe,
    dump_yaml,
    field_docs,
    from_dict,
    load_yaml_file,
    load_yaml_text,
    parse_overrides,
    resolve,
)


@dataclass
class Optim:
    lr: float = 1e-4
    """Learning rate."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas."""


@dataclass
class Run:
    name: str = "demo"
    """Run name."""
    steps: int = 10
    """Optimizer steps."""
    kind: Literal["full", "lora"] = "lora"
    """Fine-tuning mode."""
    rank: int | None = None
    """LoRA rank; None = default."""
    rewards: dict[str, float] = field(default_factory=lambda: {"shapes": 1.0})
    """Reward weights by name."""
    optim: Optim = field(default_factory=Optim)
    """Optimizer settings."""

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def test_precedence_defaults_preset_cli():
    cfg = resolve(Run, preset={"steps": 5, "optim": {"lr": 3e-4}}, overrides=["optim.lr=1e-3", "kind=full"])
    assert (cfg.steps, cfg.kind, cfg.optim.lr, cfg.optim.betas) == (5, "full", 1e-3, (0.9, 0.999))


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"Unknown key 'lrr' in `optim`\. Valid keys: lr, betas"):
        resolve(Run, overrides=["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"Unknown key 'stepz' in Run\. Valid keys: name, steps"):
        from_dict(Run, {"stepz": 3})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("steps=ten", r"`steps` = 'ten' must be an integer"),
        ("steps=2.5", r"`steps` = 2.5 must be an integer"),
        ("kind=qlora", r"`kind` = 'qlora' is not valid; expected one of \['full', 'lora'\]"),
        ("optim.betas=[0.9]", r"`optim.betas` = \[0.9\] must have 2 items"),
        ("rewards.shapes=high", r"`rewards.shapes` = 'high' must be a number"),
        ("optim=3", r"`optim` must be a mapping"),
        ("steps=0", r"steps must be >= 1, got 0"),
        ("rank=x", r"`rank` = 'x' does not match"),
    ],
)
def test_wrong_types_name_field_value_and_type(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve(Run, overrides=[override])


def test_int_is_accepted_for_float_and_none_for_optional():
    cfg = resolve(Run, overrides=["optim.lr=1", "rank=null", "rewards={ocr: 2}"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float) and cfg.rank is None
    assert cfg.rewards == {"ocr": 2.0}


def test_yaml_round_trip_is_equal_and_documented():
    cfg = resolve(Run, overrides=["name=x y", "rank=8", "optim.betas=[0.5, 0.6]", "rewards={a: 1, b: 0.5}"])
    text = dump_yaml(cfg)
    assert "# Learning rate." in text and "# Optimizer settings." in text
    assert load_yaml_text(Run, text) == cfg


def test_field_docs_and_describe():
    assert field_docs(Run)["kind"] == "Fine-tuning mode."
    rows = {key: (tp, doc) for key, tp, doc in describe(Run)}
    assert rows["optim.lr"] == ("float", "Learning rate.")
    assert rows["kind"][0] == "one of 'full', 'lora'"


def test_bad_override_syntax_and_files(tmp_path):
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_overrides(["steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml_file(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_yaml_file(tmp_path / "list.yaml")
