"""ShapeWorld questions: a grammar of questions about a scene, answers computed from the scene, and the split.

Grammar (words separated by single spaces; `colour` in COLORS, `shape` in SHAPES, `shapes` a plural)::

    count     "how many [colour] (shapes | objects) are there ?"                    -> zero | one | ... | four
    colour    "what colour is the shape ?"           (exactly one object of that shape)   -> a colour
    shape     "what shape is the colour object ?"    (exactly one object of that colour)  -> a shape
    exist     "is there a [colour] shape ?"                                          -> yes | no
    relation  "is the colour shape REL the colour shape ?"  (both unique, relation decided) -> yes | no
    choice    "which colours are [not] there ? ( a ) c1 ( b ) c2 ( c ) c3 ( d ) c4"    -> letters, e.g. "a c"

``REL`` is one of "left of", "right of", "above", "below", decided on the objects' boxes as the renderer places them
(A's box entirely left of B's box, ...); a pair whose boxes overlap on the relation's axis is not asked about.
``choice`` is the multi-choice family: every correct option must be given (answer = the letters in order, space
separated, or "none"). Its ``not`` form is TW-GRPO's question-answer inversion (`invert_choice`): the negated
question whose answer is the complement of the options.

The split follows the image split: a question is asked about a scene drawn for a prompt of one split
(`flowrl.shapes.grammar.split_prompts`), so held-out questions look at compositions never drawn in training. The
``single`` family is in both image splits (its prompts are concepts, not compositions), so held-out scenes come from
the four composition families only.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from flowrl.shapes.grammar import COLORS, PLURALS, SHAPES, Split, format_prompt, split_prompts
from flowrl.shapes.scene import Scene, SceneObject, sample_scene

QUESTION_FAMILIES: tuple[str, ...] = ("count", "colour", "shape", "exist", "relation", "choice")
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four")
LETTERS: tuple[str, ...] = ("a", "b", "c", "d")
QUESTION_RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
IMAGE_FAMILIES: dict[str, tuple[str, ...]] = {
    "train": ("single", "counting", "two_objects", "colors", "position"),
    "test": ("counting", "two_objects", "colors", "position"),
}


class Question(NamedTuple):
    """The meaning of a question (fields a family does not use are None / empty)."""

    family: str
    color: str | None = None
    shape: str | None = None  # count: None = "objects"
    relation: str | None = None
    other: tuple[str, str] | None = None  # relation: (colour, shape) of the second object
    options: tuple[str, ...] = ()  # choice: four colours
    negated: bool = False  # choice: "which colours are not there"


def question_vocabulary() -> tuple[str, ...]:
    """Every word questions, reasoning and answers use, in a fixed order."""
    words = "how many are there ? what colour is the shape object objects is a which not ( ) b c d left right of"
    words += " above below yes no none"
    out = list(dict.fromkeys(words.split() + list(NUMBER_WORDS) + list(COLORS) + list(SHAPES)))
    return tuple(out + list(PLURALS.values()))


# ----------------------------------------------------------------------------------------------------- text


def format_question(q: Question) -> str:
    """The canonical text of a question (inverse of `parse_question`)."""
    if q.family == "count":
        noun = "objects" if q.shape is None else PLURALS[q.shape]
        return f"how many {q.color + ' ' if q.color else ''}{noun} are there ?"
    if q.family == "colour":
        return f"what colour is the {q.shape} ?"
    if q.family == "shape":
        return f"what shape is the {q.color} object ?"
    if q.family == "exist":
        return f"is there a {q.color + ' ' if q.color else ''}{q.shape} ?"
    if q.family == "relation":
        return f"is the {q.color} {q.shape} {q.relation} the {q.other[0]} {q.other[1]} ?"
    if q.family == "choice":
        opts = " ".join(f"( {letter} ) {c}" for letter, c in zip(LETTERS, q.options, strict=True))
        return f"which colours are {'not ' if q.negated else ''}there ? {opts}"
    raise ValueError(f"Unknown question family {q.family!r}; valid: {', '.join(QUESTION_FAMILIES)}.")


def _bad(text: str, why: str) -> ValueError:
    return ValueError(
        f"Question {text!r} is outside the ShapeWorld question grammar: {why}. Questions look like 'how many red "
        "circles are there ?', 'what colour is the square ?', 'what shape is the blue object ?', 'is there a green "
        "triangle ?', 'is the red circle left of the blue square ?', 'which colours are there ? ( a ) red ( b ) blue "
        "( c ) green ( d ) cyan' (flowrl/shapes/questions.py)."
    )


def parse_question(text: str) -> Question:
    """Parse a question of the grammar; `format_question(parse_question(t)) == t` for canonical texts.

    Raises:
        ValueError: naming the question and what is outside the grammar.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_question expects a str, got {type(text).__name__}.")
    w = text.lower().split()
    try:
        q = _parse_words(w, text)
    except (IndexError, KeyError) as e:
        raise _bad(text, f"it ends early or has a misplaced word ({e})") from e
    if format_question(q).split() != w:
        raise _bad(text, f"it does not read as the canonical {format_question(q)!r}")
    return q


def _color_shape(words: list[str], text: str) -> tuple[str | None, str]:
    if len(words) == 2 and words[0] in COLORS and words[1] in SHAPES:
        return words[0], words[1]
    if len(words) == 1 and words[0] in SHAPES:
        return None, words[0]
    raise _bad(text, f"expected '[colour] shape' with a colour in {COLORS} and a shape in {SHAPES}, got {words}")


def _parse_words(w: list[str], text: str) -> Question:
    if w[:2] == ["how", "many"]:
        if w[-3:] != ["are", "there", "?"]:
            raise _bad(text, "a count question ends with 'are there ?'")
        mid = w[2:-3]
        color = mid[0] if len(mid) == 2 else None
        if len(mid) == 2 and color not in COLORS:
            raise _bad(text, f"{color!r} is not a colour ({', '.join(COLORS)})")
        noun = mid[-1]
        plural = {p: s for s, p in PLURALS.items()}
        if noun != "objects" and noun not in plural:
            raise _bad(text, f"{noun!r} is not a plural shape or 'objects'")
        return Question("count", color=color, shape=plural.get(noun))
    if w[:4] == ["what", "colour", "is", "the"]:
        if w[4] not in SHAPES:
            raise _bad(text, f"{w[4]!r} is not a shape ({', '.join(SHAPES)})")
        return Question("colour", shape=w[4])
    if w[:4] == ["what", "shape", "is", "the"]:
        if w[4] not in COLORS:
            raise _bad(text, f"{w[4]!r} is not a colour ({', '.join(COLORS)})")
        return Question("shape", color=w[4])
    if w[:3] == ["is", "there", "a"]:
        color, shape = _color_shape(w[3:-1], text)
        return Question("exist", color=color, shape=shape)
    if w[:2] == ["is", "the"]:
        rel_at = next((i for i in range(2, len(w)) if w[i] in ("left", "right", "above", "below")), None)
        if rel_at is None:
            raise _bad(text, "a relation question needs one of left of / right of / above / below")
        color, shape = _color_shape(w[2:rel_at], text)
        relation = " ".join(w[rel_at : rel_at + 2]) if w[rel_at] in ("left", "right") else w[rel_at]
        rest = w[rel_at + len(relation.split()) :]
        if rest[:1] != ["the"]:
            raise _bad(text, "expected 'the' after the relation")
        other = _color_shape(rest[1:-1], text)
        if color is None or other[0] is None:
            raise _bad(text, "a relation question names the colour of both objects")
        return Question("relation", color=color, shape=shape, relation=relation, other=(other[0], other[1]))
    if w[:3] == ["which", "colours", "are"]:
        negated = w[3] == "not"
        opts = w[6:] if negated else w[5:]
        colors = tuple(opts[3::4])
        if len(colors) != len(LETTERS) or any(c not in COLORS for c in colors):
            raise _bad(text, f"a choice question lists four colours ( a ) .. ( d ) from {COLORS}")
        return Question("choice", options=colors, negated=negated)
    raise _bad(text, "it starts with none of 'how many', 'what colour', 'what shape', 'is there', 'is the', 'which'")


# ----------------------------------------------------------------------------------------------------- answers


def _matches(obj: SceneObject, color: str | None, shape: str | None) -> bool:
    return (color is None or obj.color == color) and (shape is None or obj.shape == shape)


def relation_holds(a: SceneObject, b: SceneObject, relation: str) -> bool:
    """A's box entirely on the relation's side of B's box (the renderer's placement rule)."""
    if relation == "left of":
        return a.x + a.side <= b.x
    if relation == "right of":
        return b.x + b.side <= a.x
    if relation == "above":
        return a.y + a.side <= b.y
    if relation == "below":
        return b.y + b.side <= a.y
    raise ValueError(f"Unknown relation {relation!r}; valid: {', '.join(QUESTION_RELATIONS)}.")


_OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def answer_question(q: Question, scene: Scene) -> str:
    """The answer of `q` about `scene`.

    Raises:
        ValueError: the question is not decidable on this scene (a colour / shape question whose object is missing
            or not unique; a relation question whose objects are not unique or whose boxes overlap on its axis).
    """
    objs = scene.objects
    if q.family == "count":
        n = sum(_matches(o, q.color, q.shape) for o in objs)
        return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
    if q.family == "exist":
        return "yes" if any(_matches(o, q.color, q.shape) for o in objs) else "no"
    if q.family in ("colour", "shape"):
        hits = [o for o in objs if _matches(o, q.color, q.shape)]
        if len(hits) != 1:
            raise ValueError(f"{format_question(q)!r} needs exactly one matching object, the scene has {len(hits)}.")
        return hits[0].color if q.family == "colour" else hits[0].shape
    if q.family == "relation":
        a = [o for o in objs if _matches(o, q.color, q.shape)]
        b = [o for o in objs if _matches(o, *q.other)]
        if len(a) != 1 or len(b) != 1 or a[0] is b[0]:
            raise ValueError(f"{format_question(q)!r} needs two distinct unique objects in the scene.")
        if relation_holds(a[0], b[0], q.relation):
            return "yes"
        if relation_holds(a[0], b[0], _OPPOSITE[q.relation]):
            return "no"
        raise ValueError(f"{format_question(q)!r}: the two boxes overlap along the relation's axis (undecided).")
    if q.family == "choice":
        present = {o.color for o in objs}
        letters = [L for L, c in zip(LETTERS, q.options, strict=True) if (c in present) != q.negated]
        return " ".join(letters) if letters else "none"
    raise ValueError(f"Unknown question family {q.family!r}; valid: {', '.join(QUESTION_FAMILIES)}.")


def invert_choice(q: Question) -> Question:
    """TW-GRPO's question-answer inversion: the negated multi-choice question (its answer is the complement)."""
    if q.family != "choice":
        raise ValueError(f"Only choice questions invert; got family {q.family!r}.")
    return q._replace(negated=not q.negated)


def describe(scene: Scene) -> str:
    """The reasoning text of a scene: its objects left to right, "colour shape" each."""
    return " ".join(f"{o.color} {o.shape}" for o in sorted(scene.objects, key=lambda o: (o.center[0], o.center[1])))


# ----------------------------------------------------------------------------------------------------- sampling


def sample_question(family: str, scene: Scene, rng: random.Random) -> Question | None:
    """A random question of `family` that is decidable on `scene`, or None."""
    objs = scene.objects
    if family == "count":
        color = rng.choice([None, *COLORS]) if rng.random() < 0.3 else rng.choice(objs).color
        shape = rng.choice([None, *SHAPES]) if rng.random() < 0.3 else rng.choice(objs).shape
        return Question("count", color=color, shape=shape)
    if family == "exist":
        pick = rng.choice(objs) if rng.random() < 0.5 else None
        color = pick.color if pick else rng.choice(COLORS)
        shape = pick.shape if pick else rng.choice(SHAPES)
        return Question("exist", color=color if rng.random() < 0.8 else None, shape=shape)
    if family == "colour":
        unique = [s for s in SHAPES if sum(o.shape == s for o in objs) == 1]
        return Question("colour", shape=rng.choice(unique)) if unique else None
    if family == "shape":
        unique = [c for c in COLORS if sum(o.color == c for o in objs) == 1]
        return Question("shape", color=rng.choice(unique)) if unique else None
    if family == "relation":
        unique = [o for o in objs if sum(p.color == o.color and p.shape == o.shape for p in objs) == 1]
        pairs = [(a, b, r) for a in unique for b in unique if a is not b for r in QUESTION_RELATIONS]
        pairs = [(a, b, r) for a, b, r in pairs if relation_holds(a, b, r) or relation_holds(a, b, _OPPOSITE[r])]
        if not pairs:
            return None
        a, b, r = rng.choice(pairs)
        return Question("relation", color=a.color, shape=a.shape, relation=r, other=(b.color, b.shape))
    if family == "choice":
        q = Question("choice", options=tuple(rng.sample(COLORS, len(LETTERS))), negated=rng.random() < 0.5)
        return q
    raise ValueError(f"Unknown question family {family!r}; valid: {', '.join(QUESTION_FAMILIES)}.")


class QuestionItem(NamedTuple):
    """One sampled (scene, question, answer)."""

    scene: Scene
    question: Question
    answer: str
    image_family: str  # the prompt family the scene was drawn for
    image_prompt: str  # the prompt the scene was drawn for (its composition decides the split)


def sample_items(
    n: int,
    *,
    split: Split,
    seed: int,
    families: tuple[str, ...] = QUESTION_FAMILIES,
    size: int = 32,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> list[QuestionItem]:
    """`n` items of one split: an image family uniformly (`IMAGE_FAMILIES[split]`), a prompt of that family and
    split, a scene for it, then a question family uniformly among those decidable on the scene.

    The draw depends only on the arguments (a private `random.Random(seed)`).
    """
    unknown = sorted(set(families) - set(QUESTION_FAMILIES))
    if unknown:
        raise ValueError(f"Unknown question families {unknown}; valid: {', '.join(QUESTION_FAMILIES)}.")
    rng = random.Random(seed)
    pools = {
        f: split_prompts(f, split, test_fraction=test_fraction, split_seed=split_seed) for f in IMAGE_FAMILIES[split]
    }
    out = []
    while len(out) < n:
        image_family = rng.choice(IMAGE_FAMILIES[split])
        spec = rng.choice(pools[image_family])
        scene = sample_scene(spec, rng=rng, size=size)
        order = list(families)
        rng.shuffle(order)
        for family in order:
            q = sample_question(family, scene, rng)
            if q is not None:
                out.append(QuestionItem(scene, q, answer_question(q, scene), image_family, format_prompt(spec)))
                break
    return out
