"""GenEval prompts files: JSONL, one prompt and its metadata a line, checked with errors that say line, key and fix.

The format is GenEval's own ``prompts/evaluation_metadata.jsonl`` (djghosh13/geneval @ af4902f) and Flow-GRPO's
``dataset/geneval/{train,test}_metadata.jsonl`` (yifan123/flow_grpo @ ac4c86e), so those files load unchanged::

    {"tag": "counting", "include": [{"class": "bus", "count": 3}], "exclude": [{"class": "bus", "count": 4}],
     "prompt": "a photo of three buses"}

Keys (docs/geneval.md):

* ``prompt``: non-empty string.
* ``tag``: one of `rewards.geneval.TAGS` (the summary groups by it; ``counting`` raises the detection threshold).
* ``include``: non-empty list of clauses ``{"class", "count", "color"?, "position"?}``: ``class`` a non-empty
  string, ``count`` an integer >= 1, ``color`` a string, ``position`` ``[relation, j]`` with relation one of
  `rewards.geneval.RELATIONS` and j the index of an *earlier* include clause.
* ``exclude`` (optional): list of ``{"class", "count"}``: the image fails with ``count`` or more of ``class``.

Other top-level keys (``image``, ids) are kept. Unknown clause keys are errors (a typo such as ``colour`` would
otherwise be ignored).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from rewards.geneval import RELATIONS, TAGS
from rewards.jsonl import jsonl_lines

_INCLUDE_KEYS = ("class", "count", "color", "position")
_EXCLUDE_KEYS = ("class", "count")
_EXAMPLE = '{"prompt": "a photo of two cats", "tag": "counting", "include": [{"class": "cat", "count": 2}]}'


class GenEvalPrompt(NamedTuple):
    """One prompt of a file: its 1-based line, text and metadata (the whole JSON object)."""

    line: int
    prompt: str
    metadata: dict


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _clause_errors(clause: object, where: str, index: int, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(clause, Mapping):
        return [f'{where}[{index}] must be an object such as {{"class": "cat", "count": 1}}, got {clause!r}']
    errors = []
    for key in clause:
        if key not in allowed:
            hint = " (GenEval spells it 'color')" if key == "colour" else ""
            errors.append(f"{where}[{index}] has unknown key {key!r}{hint}; allowed: {', '.join(allowed)}")
    label = clause.get("class")
    if not isinstance(label, str) or not label.strip():
        errors.append(f"{where}[{index}].class must be a non-empty string (a detector label), got {label!r}")
    if not _is_count(clause.get("count")):
        errors.append(f"{where}[{index}].count must be an integer >= 1, got {clause.get('count')!r}")
    if "color" in clause and (not isinstance(clause["color"], str) or not clause["color"].strip()):
        errors.append(f'{where}[{index}].color must be a colour name such as "red", got {clause["color"]!r}')
    if "position" in clause:
        position = clause["position"]
        ok = isinstance(position, list | tuple) and len(position) == 2
        if not ok or position[0] not in RELATIONS:
            errors.append(
                f"{where}[{index}].position must be [relation, j] with relation one of {list(RELATIONS)}, got "
                f"{position!r}"
            )
        elif not (isinstance(position[1], int) and not isinstance(position[1], bool) and 0 <= position[1] < index):
            errors.append(
                f"{where}[{index}].position[1] must index an earlier include clause (0 to {index - 1}), got "
                f"{position[1]!r}; put the reference object first, as GenEval does"
            )
    return errors


def metadata_errors(metadata: object) -> list[str]:
    """What is wrong with one prompt's metadata (empty when it is valid), each naming the key and the fix."""
    if not isinstance(metadata, Mapping):
        return [f"expected a JSON object such as {_EXAMPLE}, got {type(metadata).__name__}"]
    errors = []
    if not isinstance(metadata.get("prompt"), str) or not metadata["prompt"].strip():
        errors.append(f"'prompt' must be a non-empty string, got {metadata.get('prompt')!r}")
    if metadata.get("tag") not in TAGS:
        errors.append(f"'tag' must be one of {list(TAGS)}, got {metadata.get('tag')!r}")
    include = metadata.get("include")
    if not isinstance(include, list) or not include:
        errors.append(f"'include' must be a non-empty list of clauses, got {include!r}; e.g. {_EXAMPLE}")
    else:
        for index, clause in enumerate(include):
            errors += _clause_errors(clause, "include", index, _INCLUDE_KEYS)
    exclude = metadata.get("exclude", [])
    if not isinstance(exclude, list):
        errors.append(f'\'exclude\' must be a list of {{"class", "count"}} clauses, got {exclude!r}')
    else:
        for index, clause in enumerate(exclude):
            errors += _clause_errors(clause, "exclude", index, _EXCLUDE_KEYS)
    return errors


def check_metadata(metadata: object, *, where: str = "metadata") -> dict:
    """`metadata` if valid, else a ValueError listing every problem (key, value, fix), prefixed by `where`."""
    errors = metadata_errors(metadata)
    if errors:
        raise ValueError(f"{where}: " + "; ".join(errors) + ". Format: docs/geneval.md.")
    return dict(metadata)  # type: ignore[arg-type]


def read_geneval_prompts(path: str | Path) -> list[GenEvalPrompt]:
    """Read and check a GenEval prompts file (``.jsonl``; blank lines skipped).

    Raises:
        FileNotFoundError: no such file.
        ValueError: one message listing every bad line ("line N: ..."), or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"GenEval prompts file {path} does not exist; docs/geneval.md says where the official files are and "
            "prompts/ holds small examples."
        )
    prompts, errors = [], []
    for line, obj in jsonl_lines(path):
        if isinstance(obj, json.JSONDecodeError):
            errors.append(f"line {line}: invalid JSON ({obj.msg} at column {obj.colno}); one object a line")
            continue
        problems = metadata_errors(obj)
        if problems:
            errors += [f"line {line}: {problem}" for problem in problems]
        else:
            prompts.append(GenEvalPrompt(line, obj["prompt"], obj))
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise ValueError(f"{path}: {len(errors)} problem(s):\n  " + "\n  ".join(shown) + "\nFormat: docs/geneval.md.")
    if not prompts:
        raise ValueError(f"{path} holds no prompts: one JSON object a line, e.g. {_EXAMPLE}.")
    return prompts
