"""ShapeWorld prompt grammar: vocabulary, prompt specs, parser, formatter, family enumeration and the split.

Grammar (one or two object phrases)::

    prompt   := phrase | phrase " and " phrase | phrase " " relation " " phrase
    phrase   := "a" [colour] shape | number [colour] shapes        (number in two, three, four)
    relation := "left of" | "right of" | "above" | "below"

Prompt families (in the style of GenEval):

* ``single``      "a red circle"                       one object, colour and shape
* ``counting``    "three blue squares"                 2-4 identical objects
* ``two_objects`` "a circle and a triangle"            two different shapes, colours free
* ``colors``      "a red circle and a blue square"     colour attribution: two objects of different colours
* ``position``    "a red circle left of a blue square" two objects and a spatial relation

The train/test split is a split of *compositions*: a composition key (for example the unordered pair of objects
of a ``colors`` prompt, or the canonical "A left of B" / "A above B" form of a ``position`` prompt) is either
in the test split or in the train split, so test prompts combine concepts in ways never shown in training. Single
object prompts are the concepts themselves; all 18 are in both splits (documented in docs/shapeworld.md).
"""

import hashlib
import itertools
import math
from typing import Literal, NamedTuple

COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
PLURALS: dict[str, str] = {shape: shape + "s" for shape in SHAPES}
NUMBERS: dict[str, int] = {"a": 1, "two": 2, "three": 3, "four": 4}
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
FAMILIES: tuple[str, ...] = ("single", "counting", "two_objects", "colors", "position")
MAX_COUNT = 4

Family = Literal["single", "counting", "two_objects", "colors", "position"]
Split = Literal["train", "test"]

# The opposite relation: "A left of B" says the same as "B right of A".
_OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
_RELATION_FIRST_WORDS = {"left": "left of", "right": "right of", "above": "above", "below": "below"}


def vocabulary() -> tuple[str, ...]:
    """Every word the grammar accepts, in a fixed order (the tokenizer's vocabulary is built from it)."""
    words = list(NUMBERS) + list(COLORS) + list(SHAPES) + list(PLURALS.values()) + ["and", "left", "right", "of"]
    return tuple(words + ["above", "below"])


class ObjectSpec(NamedTuple):
    """One object phrase of a prompt.

    Args:
        shape (`str`): one of `SHAPES`.
        color (`str | None`): one of `COLORS`, or `None` when the prompt leaves the colour free.
        count (`int`): how many such objects, 1 to `MAX_COUNT`.
    """

    shape: str
    color: str | None
    count: int


class PromptSpec(NamedTuple):
    """The meaning of a prompt: its objects, the relation between the first and second object, and its family.

    Args:
        objects (`tuple[ObjectSpec, ...]`): one or two object phrases in prompt order.
        relation (`str | None`): one of `RELATIONS` for two-object position prompts ("objects[0] <relation>
            objects[1]"), else `None`.
        family (`str`): one of `FAMILIES`, derived from the structure by `family_of`.
    """

    objects: tuple[ObjectSpec, ...]
    relation: str | None
    family: str


def family_of(objects: tuple[ObjectSpec, ...], relation: str | None) -> str:
    """The prompt family of a structure: position if there is a relation, counting for one phrase with count > 1,
    single for one object, colors when two phrases both name a colour, two_objects otherwise."""
    if relation is not None:
        return "position"
    if len(objects) == 1:
        return "single" if objects[0].count == 1 else "counting"
    if all(obj.color is not None for obj in objects):
        return "colors"
    return "two_objects"


def _unknown_word_error(word: str, text: str, expected: str, valid: tuple[str, ...] | list[str]) -> ValueError:
    return ValueError(
        f"Unknown word {word!r} in prompt {text!r}: expected {expected}. "
        f"Valid words here: {', '.join(valid)}. Full ShapeWorld vocabulary: {', '.join(vocabulary())}."
    )


def _parse_phrase(words: list[str], pos: int, text: str) -> tuple[ObjectSpec, int]:
    """Parse `number [colour] shape` starting at words[pos]; return the spec and the next position."""
    if pos >= len(words):
        raise ValueError(f"Prompt {text!r} ends early: expected an object phrase such as 'a red circle'.")
    number = words[pos]
    if number not in NUMBERS:
        raise _unknown_word_error(number, text, "a number word starting an object phrase", list(NUMBERS))
    count = NUMBERS[number]
    pos += 1
    color = None
    if pos < len(words) and words[pos] in COLORS:
        color = words[pos]
        pos += 1
    if pos >= len(words):
        raise ValueError(f"Prompt {text!r} ends early: expected a shape after {number!r}.")
    noun = words[pos]
    valid_nouns = SHAPES if count == 1 else tuple(PLURALS.values())
    if noun not in valid_nouns:
        if noun in SHAPES or noun in PLURALS.values():
            grammatical = "singular" if count == 1 else "plural"
            raise ValueError(
                f"Word {noun!r} in prompt {text!r} has the wrong number: after {number!r} the shape must be "
                f"{grammatical}, one of {', '.join(valid_nouns)}."
            )
        expected = "a colour or a shape" if color is None else "a shape"
        valid = (COLORS + valid_nouns) if color is None else valid_nouns
        raise _unknown_word_error(noun, text, expected, valid)
    shape = noun if count == 1 else noun[:-1]
    return ObjectSpec(shape=shape, color=color, count=count), pos + 1


def parse_prompt(text: str) -> PromptSpec:
    """Parse a ShapeWorld prompt into its `PromptSpec`.

    Args:
        text (`str`): a prompt of the grammar in this module's docstring; case and surrounding spaces are ignored.

    Returns:
        `PromptSpec`: objects, relation and family.

    Raises:
        ValueError: for a word outside the grammar (the message names it and lists the valid words), a prompt that
            ends early, or a structure the grammar does not allow (position phrases must be single objects).
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_prompt expects a str prompt such as 'a red circle', got {type(text).__name__}.")
    words = text.lower().split()
    if not words:
        raise ValueError("Empty prompt: ShapeWorld prompts look like 'a red circle' or 'two blue squares'.")
    first, pos = _parse_phrase(words, 0, text)
    if pos == len(words):
        objects, relation = (first,), None
    else:
        link = words[pos]
        if link == "and":
            relation, pos = None, pos + 1
        elif link in _RELATION_FIRST_WORDS:
            relation = _RELATION_FIRST_WORDS[link]
            pos += 1
            if relation.endswith(" of"):
                if pos >= len(words) or words[pos] != "of":
                    got = words[pos] if pos < len(words) else "the end of the prompt"
                    raise ValueError(f"Prompt {text!r}: expected 'of' after {link!r}, got {got!r}.")
                pos += 1
        else:
            raise _unknown_word_error(link, text, "'and' or a relation after the first object", ["and", *RELATIONS])
        second, pos = _parse_phrase(words, pos, text)
        if pos != len(words):
            raise _unknown_word_error(words[pos], text, "the end of the prompt after two object phrases", [])
        objects = (first, second)
        if relation is not None and (first.count != 1 or second.count != 1):
            raise ValueError(
                f"Prompt {text!r}: a relation ({relation!r}) needs single objects on both sides, "
                "e.g. 'a red circle left of a blue square'."
            )
        if relation is None and first.count != 1 or relation is None and second.count != 1:
            raise ValueError(
                f"Prompt {text!r}: two object phrases joined by 'and' must be single objects ('a ...'); use one "
                "counted phrase such as 'two red circles' for counting."
            )
    return PromptSpec(objects=objects, relation=relation, family=family_of(objects, relation))


def format_prompt(spec: PromptSpec) -> str:
    """The canonical text of a spec (inverse of `parse_prompt`)."""
    number_words = {count: word for word, count in NUMBERS.items()}

    def phrase(obj: ObjectSpec) -> str:
        noun = obj.shape if obj.count == 1 else PLURALS[obj.shape]
        color = f"{obj.color} " if obj.color is not None else ""
        return f"{number_words[obj.count]} {color}{noun}"

    if len(spec.objects) == 1:
        return phrase(spec.objects[0])
    link = "and" if spec.relation is None else spec.relation
    return f"{phrase(spec.objects[0])} {link} {phrase(spec.objects[1])}"


def _spec(objects: tuple[ObjectSpec, ...], relation: str | None = None) -> PromptSpec:
    return PromptSpec(objects=objects, relation=relation, family=family_of(objects, relation))


def enumerate_family(family: str) -> list[PromptSpec]:
    """Every prompt of one family, in a fixed order.

    Args:
        family (`str`): one of `FAMILIES`.

    Returns:
        `list[PromptSpec]`: single 18, counting 54, two_objects 6, colors 270, position 1,224 prompts.
    """
    pairs = [(color, shape) for color in COLORS for shape in SHAPES]
    if family == "single":
        return [_spec((ObjectSpec(shape, color, 1),)) for color, shape in pairs]
    if family == "counting":
        return [_spec((ObjectSpec(s, c, n),)) for n in range(2, MAX_COUNT + 1) for c, s in pairs]
    if family == "two_objects":
        return [_spec((ObjectSpec(a, None, 1), ObjectSpec(b, None, 1))) for a, b in itertools.permutations(SHAPES, 2)]
    if family == "colors":
        return [
            _spec((ObjectSpec(sa, ca, 1), ObjectSpec(sb, cb, 1)))
            for (ca, sa), (cb, sb) in itertools.product(pairs, pairs)
            if ca != cb
        ]
    if family == "position":
        return [
            _spec((ObjectSpec(sa, ca, 1), ObjectSpec(sb, cb, 1)), relation)
            for (ca, sa), (cb, sb) in itertools.permutations(pairs, 2)
            for relation in RELATIONS
        ]
    raise ValueError(f"Unknown prompt family {family!r}; valid families: {', '.join(FAMILIES)}.")


def composition_key(spec: PromptSpec) -> str:
    """The composition a prompt expresses, shared by prompts that say the same thing in another order.

    "a red circle and a blue square" and "a blue square and a red circle" share a key, and so do
    "A left of B" and "B right of A". The split assigns whole keys to train or test.
    """
    objects = [f"{obj.count}:{obj.color}:{obj.shape}" for obj in spec.objects]
    if spec.relation is None:
        return f"{spec.family}|" + "+".join(sorted(objects))
    first, second = objects
    relation = spec.relation
    if relation in ("right of", "below"):
        first, second, relation = second, first, _OPPOSITE[relation]
    return f"{spec.family}|{first}|{relation}|{second}"


def _stable_rank(key: str, *, seed: int) -> str:
    return hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()


def held_out_keys(family: str, *, test_fraction: float = 0.2, split_seed: int = 0) -> frozenset[str]:
    """The composition keys of one family that are held out for testing.

    Keys are ranked by a SHA-256 hash of (split_seed, key), which is the same on every machine and Python run,
    and the first ceil(test_fraction * number_of_keys) are held out. Single-object prompts are concepts, not
    compositions: all of them are in both splits, so this returns an empty set for ``single``.
    """
    if family == "single":
        return frozenset()
    keys = sorted({composition_key(spec) for spec in enumerate_family(family)})
    ranked = sorted(keys, key=lambda key: _stable_rank(key, seed=split_seed))
    return frozenset(ranked[: math.ceil(test_fraction * len(keys))])


def split_prompts(family: str, split: Split, *, test_fraction: float = 0.2, split_seed: int = 0) -> list[PromptSpec]:
    """The prompts of one family in one split, in a fixed order.

    Args:
        family (`str`): one of `FAMILIES`.
        split (`str`): ``"train"`` or ``"test"``.
        test_fraction (`float`, defaults to 0.2): fraction of composition keys held out (at least one).
        split_seed (`int`, defaults to 0): changes which keys are held out.

    Returns:
        `list[PromptSpec]`: single-object prompts are returned for both splits; for other families train and test
        share no composition key.
    """
    if split not in ("train", "test"):
        raise ValueError(f"Unknown split {split!r}; valid splits: 'train', 'test'.")
    specs = enumerate_family(family)
    if family == "single":
        return specs
    held_out = held_out_keys(family, test_fraction=test_fraction, split_seed=split_seed)
    return [spec for spec in specs if (composition_key(spec) in held_out) == (split == "test")]
