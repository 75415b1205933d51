"""OCR reward: how well the text inside quotes in the prompt is rendered (Flow-GRPO's text-rendering task).

Follows Flow-GRPO's `flow_grpo/ocr.py` (`OcrScorer`): the target is ``prompt.split('"')[1]``; the OCR lines are
joined without separators; spaces are removed and both strings lower-cased; if the target is a substring of the
recognised text the distance is 0, else it is the Levenshtein distance, capped at the target length; the reward is
``1 - dist / len(target)``. Flow-GRPO runs PaddleOCR 2.9 (English, no angle classifier, drop score 0.5); flowrl runs
rapidocr's bundled PP-OCR ONNX models offline with the same settings (no classifier, text score 0.5, detector
limit 960 px on the longer side, PaddleOCR's defaults).
"""

from __future__ import annotations

import torch

from rewards.images import check_images, to_uint8


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each).

    Example:
        >>> levenshtein("kitten", "sitting"), levenshtein("", "abc"), levenshtein("same", "same")
        (3, 3, 0)
    """
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def quoted_text(prompt: str) -> str:
    """The text between the first pair of double quotes (Flow-GRPO: ``prompt.split('"')[1]``).

    Example:
        >>> quoted_text('A sign that says "Open 24h" on a door')
        'Open 24h'
    """
    parts = prompt.split('"')
    if len(parts) < 3 or not parts[1].replace(" ", ""):
        raise ValueError(
            f"OCR reward: prompt {prompt!r} has no non-empty text between double quotes; OCR prompts quote the text "
            "to render, e.g. 'a storefront sign that reads \"OPEN\"'."
        )
    return parts[1]


def ocr_similarity(recognized: str, target: str) -> float:
    """``1 - min(dist, len(t)) / len(t)`` with spaces removed and lower case; a target found inside the
    recognised text scores 1.

    Example:
        >>> ocr_similarity("Hello GRPO", "hello grpo"), ocr_similarity("the word flow here", "flow")
        (1.0, 1.0)
        >>> ocr_similarity("HELL0", "hello"), ocr_similarity("", "abcd")
        (0.8, 0.0)
    """
    r, t = recognized.replace(" ", "").lower(), target.replace(" ", "").lower()
    dist = 0 if t in r else min(levenshtein(r, t), len(t))
    return 1.0 - dist / len(t)


class OcrReward:
    """`ocr_similarity` between rapidocr's reading of each image and the quoted text of its prompt.

    Args:
        text_score (`float`, defaults to 0.5): lines recognised below this confidence are dropped (PaddleOCR's
            ``drop_score``).
        det_limit_side_len (`int`, defaults to 960): the detector resizes the longer side to at most this.
        num_threads (`int`, defaults to 1): onnxruntime intra-op threads.
    """

    name = "ocr"

    def __init__(self, *, text_score: float = 0.5, det_limit_side_len: int = 960, num_threads: int = 1) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as err:
            raise ImportError(
                "Reward 'ocr' needs rapidocr and onnxruntime: pip install 'rapidocr>=3.10,<4' 'onnxruntime>=1.32,<2' "
                "(or the `ocr` extra: pip install -e '.[ocr]'). Their PP-OCR models ship in the wheel."
            ) from err
        self.engine = RapidOCR(
            params={
                "Global.log_level": "critical",
                "Global.use_cls": False,
                "Global.text_score": text_score,
                "Det.limit_type": "max",
                "Det.limit_side_len": det_limit_side_len,
                "EngineConfig.onnxruntime.intra_op_num_threads": num_threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )

    def read(self, images: torch.Tensor) -> list[str]:
        """The recognised text of each `(B, 3, H, W)` image: its lines joined without separators."""
        out = []
        for array in to_uint8(check_images(self.name, images)):  # (H, W, 3) RGB, as Flow-GRPO feeds PaddleOCR
            result = self.engine(array)
            out.append("".join(result.txts) if result.txts else "")
        return out

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        del metadata
        targets = [quoted_text(p) for p in prompts]
        texts = self.read(images)
        return torch.tensor([ocr_similarity(r, t) for r, t in zip(texts, targets, strict=True)], dtype=torch.float32)
