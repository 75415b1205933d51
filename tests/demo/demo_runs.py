"""Run folders for the demo tests: the ``config.yaml`` the loader reads (`flowrl.eval.load_model`)."""

from pathlib import Path


def write_run_config(run: Path, model: Path, *, lora_rank: int = 0, ema_decay: float = 0.0) -> None:
    """The ``config.yaml`` of a ShapeWorld run on `model` (what the loader reads: kind, path, LoRA, EMA)."""
    from flowrl.config import dump_yaml
    from flowrl.train.image_cli import load_config

    overrides = [f"model.path={model}", f"model.lora_rank={lora_rank}", f"train.ema_decay={ema_decay}"]
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(dump_yaml(load_config(preset=None, overrides=overrides)))
