"""No transformers torchvision-fallback warning ("`CLIPImageProcessor` requires torchvision ... falling back to
`CLIPImageProcessorPil`") from the CLI, a ShapeWorld model load, or diffusers' SD3 / FLUX pipeline classes
(`flowrl.pipelines`). Run: pytest tests/test_no_torchvision_warnings.py -q"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOAD = """
from flowrl.pipelines import pipeline_class
from flowrl.shapes.model import load_shapeworld

load_shapeworld("assets/shapeworld")
pipeline_class("FluxPipeline"), pipeline_class("StableDiffusion3Pipeline")
import transformers  # now: importing diffusers' models replaces the module object in sys.modules
from transformers.utils import is_torchvision_available
if not is_torchvision_available():  # the classes transformers' own fallback would give
    assert transformers.CLIPImageProcessor is transformers.CLIPImageProcessorPil
    assert transformers.SiglipImageProcessor is transformers.SiglipImageProcessorPil
"""


def _stderr(*args: str) -> str:
    run = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stderr


def test_cli_and_show_config_print_no_torchvision_warning():
    assert "torchvision" not in _stderr("-c", "import flowrl.cli")
    assert "torchvision" not in _stderr("-m", "flowrl.cli", "train", "--show-config")


def test_shapeworld_and_pipeline_classes_load_without_the_warning():
    assert "torchvision" not in _stderr("-c", LOAD)
