"""Parity of flowrl's reward models with the original implementations, on the same random checkpoints.

For each model-based reward this builds one random model in the original library (open_clip for HPSv2; transformers
CLIP + a LAION-layout MLP for PickScore, CLIPScore and the aesthetic predictor), saves it in the official file
layout, scores the same images and prompts with the original pipeline (the original preprocessing through
torchvision / transformers' processors, the original tokenizer, the original score formula) and with flowrl's
reward loaded from that file, and reports the largest absolute difference. ImageReward's package does not import
with transformers 5 (docs/rewards.md, Parity: it measured its BLIP key map to 0.0 difference), so its row
compares the original torchvision preprocessing with flowrl's, feeding both to the same model.

It needs torchvision and open_clip, which break the CPU-torch venv: run it in a separate one (about 5.5 GB):

    python3 -m venv /tmp/parity
    /tmp/parity/bin/pip install torch==2.14.1 torchvision==0.29.1 open_clip_torch transformers==5.24.0 \
        safetensors pillow numpy scipy pyyaml tqdm
    HF_HUB_OFFLINE=1 PYTHONPATH=. /tmp/parity/bin/python scripts/reward_parity.py --json runs/reward_parity.json

``--arch ViT-H-14`` runs HPSv2 at the real architecture (986 M parameters, ~8 GB of RAM, minutes on a CPU).
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = [
    "a photo of a cat sitting on a red sofa",
    "A painting of a lighthouse, at dusk -- oil on canvas!",
    "two blue squares",
    "an extremely long prompt " + " ".join(f"word{i}" for i in range(90)),  # > 77 tokens: truncation
]
TINY_OPEN_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def test_images(n: int = 4, *, h: int = 90, w: int = 120, seed: int = 0) -> torch.Tensor:
    """8-bit-valued float images, non-square so that resize and crop matter: `(n, 3, h, w)`."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, h // 6, w // 6, generator=g)
    smooth = torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)
    noisy = (smooth + 0.1 * torch.rand(n, 3, h, w, generator=g)).clamp(0, 1)
    return (noisy * 255).round() / 255


def to_pil(images: torch.Tensor) -> list:
    u8 = (images * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in u8]


def hpsv2_parity(tmp: Path, images: torch.Tensor, arch: str) -> dict:
    """open_clip model + HPSv2's val transform and tokenizer vs flowrl's `hpsv2`."""
    import open_clip
    from torchvision import transforms as T

    if arch == "tiny":
        (tmp / "cfg").mkdir(exist_ok=True)
        (tmp / "cfg" / "flowrl-tiny-ViT.json").write_text(json.dumps(TINY_OPEN_CLIP))
        open_clip.add_model_config(tmp / "cfg")
        arch, vision_heads, text_heads = "flowrl-tiny-ViT", 2, 2
    else:
        vision_heads, text_heads = 16, 16  # ViT-H-14: width 1280 / head_width 80; text 16 heads
    torch.manual_seed(0)
    model = open_clip.create_model(arch, pretrained=None).eval()
    torch.save({"state_dict": model.state_dict()}, tmp / "hps.pt")
    size = model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size
    try:  # HPSv2's own transform, when the hpsv2 package imports
        from hpsv2.src.open_clip.transform import image_transform

        preprocess, source = image_transform(size, is_train=False), "hpsv2.src.open_clip.transform"
    except ImportError:  # the HPSv2 fork's eval transform: ToTensor before a tensor Resize (hpsv2 1.2.0)
        preprocess = T.Compose(
            [T.ToTensor(), T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
             T.Normalize(CLIP_MEAN, CLIP_STD)]
        )  # fmt: skip
        source = "HPSv2 fork's eval transform rebuilt from torchvision"
    tokenizer = open_clip.get_tokenizer(arch)
    with torch.no_grad():
        pixels = torch.stack([preprocess(img) for img in to_pil(images)])
        img = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(tokenizer(PROMPTS)), dim=-1)
        original = (img * txt).sum(-1)
    from rewards import load_reward

    reward = load_reward("hpsv2", path=tmp / "hps.pt", vision_heads=vision_heads, text_heads=text_heads)
    ours = reward(images, PROMPTS)
    ids = torch.as_tensor(reward.tokenizer(PROMPTS, padding="max_length", max_length=77, truncation=True).input_ids)
    first_eot = (ids == 49407).int().argmax(-1, keepdim=True)  # (B, 1)
    ids = torch.where(torch.arange(77) > first_eot, torch.zeros_like(ids), ids)  # open_clip pads with 0
    ids_equal = bool(torch.equal(tokenizer(PROMPTS).long(), ids.long()))
    return {"max_abs_diff": float((original - ours).abs().max()), "arch": arch, "preprocess": source,
            "token_ids_equal": ids_equal, "original": original.tolist(), "flowrl": ours.tolist()}  # fmt: skip


def clip_folder(tmp: Path, name: str, seed: int) -> Path:
    """A random CLIP model (64-px input, the real 49,408-token vocabulary) with a tokenizer and image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from rewards.clip_tokenizer import clip_tokenizer

    torch.manual_seed(seed)
    config = CLIPConfig(
        projection_dim=32,
        text_config=dict(vocab_size=49408, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu", bos_token_id=49406,
                         eos_token_id=49407, pad_token_id=49407),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                           patch_size=16, image_size=64, hidden_act="gelu"),
    )  # fmt: skip
    folder = tmp / name
    CLIPModel(config).eval().save_pretrained(folder)
    clip_tokenizer().save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def _features(model, pixel_values, text):
    img = model.get_image_features(pixel_values=pixel_values).pooler_output
    txt = model.get_text_features(**text).pooler_output
    return img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)


def pickscore_parity(tmp: Path, images: torch.Tensor) -> dict:
    """PickScore's README / Flow-GRPO pipeline (AutoProcessor + AutoModel, logit_scale * cos / 26) vs flowrl.

    The image processor is run with both transformers backends: the PIL one (``CLIPImageProcessorPil``, what
    transformers 4's CLIPImageProcessor did when PickScore and Flow-GRPO were released, and what transformers 5 uses
    without torchvision) is the reference; the torchvision one (transformers 5's default when torchvision is
    installed) is reported beside it.
    """
    from transformers import AutoModel, AutoProcessor, CLIPImageProcessorPil

    from rewards import load_reward

    folder = clip_folder(tmp, "pick", seed=1)
    processor, model = AutoProcessor.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    pil_processor = CLIPImageProcessorPil.from_pretrained(folder)
    scores = {}
    with torch.no_grad():
        text = processor(text=PROMPTS, padding=True, truncation=True, max_length=77, return_tensors="pt")
        for name, image_processor in (("pil", pil_processor), ("torchvision", processor.image_processor)):
            pix = torch.as_tensor(image_processor(images=to_pil(images), return_tensors="pt").pixel_values)
            img, txt = _features(model, pix, dict(text))
            scores[name] = model.logit_scale.exp() * (img * txt).sum(-1) / 26
    ours = load_reward("pickscore", path=folder)(images, PROMPTS)
    return {
        "max_abs_diff": float((scores["pil"] - ours).abs().max()),
        "max_abs_diff_torchvision_backend": float((scores["torchvision"] - ours).abs().max()),
        "original": scores["pil"].tolist(),
        "flowrl": ours.tolist(),
    }


def clip_score_parity(tmp: Path, images: torch.Tensor) -> dict:
    """Flow-GRPO's ClipScorer (torchvision Resize / CenterCrop / Normalize on the float tensor, logits / 100)."""
    from torchvision import transforms as T
    from transformers import CLIPModel, CLIPProcessor

    from rewards import load_reward

    folder = clip_folder(tmp, "clip", seed=2)
    model, processor = CLIPModel.from_pretrained(folder).eval(), CLIPProcessor.from_pretrained(folder)
    tform = T.Compose([T.Resize(64), T.CenterCrop(64), T.Normalize(CLIP_MEAN, CLIP_STD)])
    with torch.no_grad():
        text = processor(text=PROMPTS, padding="max_length", truncation=True, return_tensors="pt")
        original = model(pixel_values=tform(images), **text).logits_per_image.diagonal() / 100
    ours = load_reward("clip_score", path=folder)(images, PROMPTS)
    return {
        "max_abs_diff": float((original - ours).abs().max()),
        "original": original.tolist(),
        "flowrl": ours.tolist(),
    }


def aesthetic_parity(tmp: Path, images: torch.Tensor) -> dict:
    """DDPO / Flow-GRPO AestheticScorer (CLIPProcessor on uint8 images, unit embedding, LAION MLP) vs flowrl."""
    from torch import nn
    from transformers import CLIPModel, CLIPProcessor

    from rewards import load_reward

    folder = clip_folder(tmp, "aes_clip", seed=3)
    torch.manual_seed(4)
    mlp = nn.Sequential(nn.Linear(32, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                        nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1)).eval()  # fmt: skip
    # LAION's predictor is a module whose Sequential is `layers`: its state dict keys are layers.{0,2,4,6,7}.*
    torch.save({f"layers.{k}": v for k, v in mlp.state_dict().items()}, tmp / "mlp.pth")
    from transformers import CLIPImageProcessorPil

    model = CLIPModel.from_pretrained(folder).eval()
    processors = {"pil": CLIPImageProcessorPil.from_pretrained(folder),
                  "torchvision": CLIPProcessor.from_pretrained(folder).image_processor}  # fmt: skip
    scores = {}
    with torch.no_grad():
        u8 = (images * 255).round().clamp(0, 255).to(torch.uint8)
        for name, image_processor in processors.items():
            pix = torch.as_tensor(image_processor(images=list(u8), return_tensors="pt").pixel_values)
            embed = model.get_image_features(pixel_values=pix).pooler_output
            scores[name] = mlp(embed / torch.linalg.vector_norm(embed, dim=-1, keepdim=True)).squeeze(1)
    ours = load_reward("aesthetic", path=tmp / "mlp.pth", clip_path=folder)(images, PROMPTS)
    return {
        "max_abs_diff": float((scores["pil"] - ours).abs().max()),
        "max_abs_diff_torchvision_backend": float((scores["torchvision"] - ours).abs().max()),
        "original": scores["pil"].tolist(),
        "flowrl": ours.tolist(),
    }


def image_reward_preprocess_parity(images: torch.Tensor) -> dict:
    """ImageReward's `_transform(224)` (torchvision on PIL) vs flowrl's `pil_resize_crop(..., "round")`."""
    from torchvision import transforms as T

    from rewards.preprocess import pil_resize_crop

    tform = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                       T.Normalize(CLIP_MEAN, CLIP_STD)])  # fmt: skip
    original = torch.stack([tform(img) for img in to_pil(images)])
    ours = pil_resize_crop(images, size=224, crop_rounding="round")
    return {"max_abs_diff": float((original - ours).abs().max()), "compared": "normalised 224-px pixels"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="tiny", help="open_clip architecture for HPSv2: tiny or ViT-H-14")
    parser.add_argument("--json", default="runs/reward_parity.json")
    args = parser.parse_args()
    images = test_images()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results["hpsv2"] = hpsv2_parity(tmp, images, args.arch)
        results["pickscore"] = pickscore_parity(tmp, images)
        results["clip_score"] = clip_score_parity(tmp, images)
        results["aesthetic"] = aesthetic_parity(tmp, images)
        results["image_reward (preprocessing)"] = image_reward_preprocess_parity(images)
    import open_clip
    import torchvision
    import transformers

    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "open_clip": open_clip.__version__, "transformers": transformers.__version__}  # fmt: skip
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    print("| reward | max abs difference, original vs flowrl | same, transformers' torchvision image processor |")
    print("|---|---:|---:|")
    for name, r in results.items():
        tv = r.get("max_abs_diff_torchvision_backend")
        print(f"| {name} | {r['max_abs_diff']:.3g} | {'-' if tv is None else f'{tv:.3g}'} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"versions": versions, "results": results}, indent=1) + "\n")
    print(f"wrote {args.json}; images {tuple(images.shape)}, {len(PROMPTS)} prompts", flush=True)


if __name__ == "__main__":
    main()
