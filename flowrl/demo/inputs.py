"""Validation of the values the demo page sends: prompt, seed, steps and guidance.

The page's sliders already hold these ranges, but the server checks again because any HTTP client can call the
page's API with other values. Every failure is a `DemoInputError` whose message is shown in the page.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from flowrl.shapes.grammar import parse_prompt

MAX_PROMPT_CHARS = 200
MIN_STEPS, MAX_STEPS = 1, 100
MIN_GUIDANCE, MAX_GUIDANCE = 0.0, 20.0
MAX_SEED = 2**31 - 1


class DemoInputError(ValueError):
    """A value from the page is out of range or malformed; the message says which and what is accepted."""


class GenerationRequest(NamedTuple):
    """Validated inputs of one generation: prompt (stripped), seed, Euler steps and CFG scale."""

    prompt: str
    seed: int
    steps: int
    guidance: float


def check_prompt(prompt: object, *, shapeworld: bool = True) -> str:
    """Return the stripped prompt, or raise `DemoInputError` when it is empty, too long or (`shapeworld`: the model
    is ShapeWorld's) not ShapeWorld grammar."""
    if not isinstance(prompt, str):
        raise DemoInputError(f"The prompt must be text, got {type(prompt).__name__}.")
    text = " ".join(prompt.split())
    if not text:
        example = "a red circle" if shapeworld else "a photo of a cat"
        raise DemoInputError(f"The prompt is empty: type a prompt such as {example!r}, or pick one.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise DemoInputError(
            f"The prompt is {len(prompt)} characters long; the limit is {MAX_PROMPT_CHARS}."
            + (" ShapeWorld prompts are short, e.g. 'two blue squares'." if shapeworld else "")
        )
    if shapeworld:
        try:
            parse_prompt(text)
        except ValueError as e:
            raise DemoInputError(f"Not a ShapeWorld prompt: {e}") from None
    return text


def _integer(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DemoInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    if value != int(value) or not low <= value <= high:
        raise DemoInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    return int(value)


def check_generation(
    prompt: object, seed: object, steps: object, guidance: object, *, shapeworld: bool = True
) -> GenerationRequest:
    """Validate one generation request from the page.

    Args:
        prompt (`object`): a prompt of at most `MAX_PROMPT_CHARS` characters (in ShapeWorld's grammar when
            `shapeworld`).
        seed (`object`): whole number in [0, `MAX_SEED`].
        steps (`object`): whole number of Euler steps in [`MIN_STEPS`, `MAX_STEPS`].
        guidance (`object`): classifier-free guidance scale in [`MIN_GUIDANCE`, `MAX_GUIDANCE`] (1 = no guidance).
        shapeworld (`bool`, defaults to True): the model is ShapeWorld's, so the prompt must parse in its grammar.

    Returns:
        `GenerationRequest`.

    Raises:
        DemoInputError: the first invalid value, with the accepted range.
    """
    text = check_prompt(prompt, shapeworld=shapeworld)
    seed = _integer("Seed", seed, 0, MAX_SEED)
    steps = _integer("Steps", steps, MIN_STEPS, MAX_STEPS)
    if isinstance(guidance, bool) or not isinstance(guidance, int | float) or not math.isfinite(guidance):
        raise DemoInputError(f"Guidance must be a number from {MIN_GUIDANCE} to {MAX_GUIDANCE}, got {guidance!r}.")
    if not MIN_GUIDANCE <= guidance <= MAX_GUIDANCE:
        raise DemoInputError(f"Guidance must be a number from {MIN_GUIDANCE} to {MAX_GUIDANCE}, got {guidance!r}.")
    return GenerationRequest(text, seed, steps, float(guidance))
