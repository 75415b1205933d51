"""The accelerate config files in configs/accelerate parse with accelerate's own loader, and the FSDP wrap classes
exist in the models they name and are the blocks `flowrl.train.sharding` wraps.
Run: pytest tests/models -q -k accelerate
"""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_config_parses(name):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(CONFIGS / name))
    assert cfg.num_processes >= 2 and cfg.num_machines >= 1


def test_every_launch_mode_has_a_config():
    assert {"ddp.yaml", "multi_node.yaml", "fsdp_flux.yaml", "fsdp_sd3.yaml", "deepspeed_zero2.yaml"} <= {
        p.name for p in CONFIGS.glob("*.yaml")
    }


@pytest.mark.parametrize("name,model", [("fsdp_flux.yaml", "flux"), ("fsdp_sd3.yaml", "sd3")])
def test_fsdp_wrap_classes_exist_in_the_model(name, model):
    import torch
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils.dataclasses import get_module_class_from_name
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    from flowrl.models.transformer_configs import FLUX_TINY, SD3_TINY
    from flowrl.train.sharding import BLOCK_CLASSES

    cfg = load_config_from_file(str(CONFIGS / name))
    with torch.device("meta"):
        if model == "flux":
            m = FluxTransformer2DModel(**FLUX_TINY)
        else:
            m = SD3Transformer2DModel(**SD3_TINY)
    names = [n.strip() for n in cfg.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(",")]
    assert all(get_module_class_from_name(m, n) is not None for n in names)
    assert set(names) <= set(BLOCK_CLASSES)  # the blocks flowrl.train.sharding wraps (the file restates them)
