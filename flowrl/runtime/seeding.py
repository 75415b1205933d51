"""Every random draw of a run derives from its seed: `derive_seed(seed, *keys)` mixes the run seed with the keys of
a draw (iteration or step, prompt index, rank, purpose), so a draw does not depend on what ran before it and a resumed
run repeats the uninterrupted one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

LORA_INIT = 104_729  # key of the LoRA initialisation draw (peft initialises from torch's global generator)


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys: ``s = (s * 1_000_003 + k) mod (2^63 - 1)`` over the keys, from 0."""
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k)) % (2**63 - 1)
    return seed


def generator(*keys: int) -> torch.Generator:
    """A CPU `torch.Generator` seeded with `derive_seed(*keys)`."""
    return torch.Generator().manual_seed(derive_seed(*keys))


@contextlib.contextmanager
def seeded_global_rng(*keys: int) -> Iterator[None]:
    """Inside: torch's global generators (CPU and CUDA) seeded with `derive_seed(*keys)`; after: restored, so code
    that draws from the global generator (peft's LoRA init) is reproducible without shifting any later draw."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(*keys))
        yield
