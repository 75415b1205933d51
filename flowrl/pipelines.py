"""diffusers' pipeline classes, imported without transformers' torchvision fallback warnings.

diffusers' pipeline modules import ``CLIPImageProcessor`` / ``SiglipImageProcessor`` from transformers when they
load (for IP-Adapter inputs flowrl never passes). Without torchvision, transformers resolves those names to
``CLIPImageProcessorPil`` / ``SiglipImageProcessorPil`` on first access and logs a warning each process ("requires
torchvision (not installed); falling back to ..."). `pipeline_class` binds the names to the PIL classes first, as
that fallback does, so every run (a ShapeWorld run included) loads the same classes without the warning.
"""

from __future__ import annotations

# transformers image processors that diffusers' pipeline modules import at load time (SD3: Siglip; FLUX and the
# IP-Adapter loaders: CLIP)
PIPELINE_IMAGE_PROCESSORS = ("CLIPImageProcessor", "SiglipImageProcessor")


def bind_pil_image_processors() -> None:
    """Without torchvision, make ``transformers.<Name>ImageProcessor`` the ``<Name>ImageProcessorPil`` class for
    each of `PIPELINE_IMAGE_PROCESSORS` (what transformers' own fallback binds, minus its warning). Not cached:
    importing some diffusers models replaces the ``transformers`` module object in `sys.modules`, so each call
    binds on the current one."""
    import transformers
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        return
    for name in PIPELINE_IMAGE_PROCESSORS:
        if name not in vars(transformers):  # not yet resolved (by transformers' fallback or by us)
            setattr(transformers, name, getattr(transformers, f"{name}Pil"))


def pipeline_class(name: str) -> type:
    """``diffusers.<name>`` (e.g. "StableDiffusion3Pipeline", "FluxPipeline") after `bind_pil_image_processors`."""
    bind_pil_image_processors()
    import diffusers

    return getattr(diffusers, name)
