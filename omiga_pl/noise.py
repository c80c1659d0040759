"""Training noise as an object the algorithms draw from, so that one algorithm's update runs
unchanged in a single run and inside a seed ensemble's ``vmap``.

An algorithm that samples (CQL's proposal actions, BCQ's latents, OMAR's search) asks
``self.noise(device)`` for a source and draws every tensor through it, in a fixed order:

* :class:`GeneratorNoise` (a single run): draws from the update's ``torch.Generator``
  (seeded by seed, rank and update index, so resume is exact).
* :class:`RecordingNoise`: draws real values from a throwaway generator and records what
  was drawn (kind, shape, dtype): the ensemble learns an update's draws from one pass.
* :class:`ReplayedNoise`: hands out given tensors in order. The ensemble draws member k's
  tensors outside ``vmap`` from member k's own generator with the recorded calls (so they
  are bit for bit the single-seed run's draws), stacks them [K, ...] and replays them
  inside, where a generator draw cannot run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

KINDS = ("normal", "uniform")
# (kind, shape, dtype) of one draw.
Draw = tuple[str, tuple[int, ...], torch.dtype]


class NoiseSource:
    """What an update draws from: ``normal`` and ``uniform``, both through :meth:`draw`."""

    def draw(self, kind: str, shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """One draw of ``kind`` (one of :data:`KINDS`): a tensor of ``shape``."""
        raise NotImplementedError

    def normal(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """Standard normal noise of ``shape`` on ``like``'s device and dtype."""
        return self.draw("normal", shape, like.device, like.dtype)

    def uniform(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """Uniform noise on [0, 1) of ``shape`` on ``like``'s device and dtype."""
        return self.draw("uniform", shape, like.device, like.dtype)


class GeneratorNoise(NoiseSource):
    """Standard normals and uniforms on [0, 1) from ``generator``."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def draw(self, kind: str, shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if kind not in KINDS:
            raise ValueError(f"noise kind: expected one of {KINDS}, found {kind!r}")
        sample = torch.randn if kind == "normal" else torch.rand
        return sample(tuple(shape), generator=self.generator, device=device, dtype=dtype)


class RecordingNoise(GeneratorNoise):
    """Real draws from a fixed-seed generator, each recorded in :attr:`draws`."""

    def __init__(self, device: torch.device | str) -> None:
        super().__init__(torch.Generator(device).manual_seed(0))
        self.draws: list[Draw] = []

    def draw(self, kind: str, shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        self.draws.append((kind, tuple(int(s) for s in shape), dtype))
        return super().draw(kind, shape, device, dtype)


class ReplayedNoise(NoiseSource):
    """The given tensors, in order; a draw of another kind or shape than recorded is an error."""

    def __init__(self, tensors: Sequence[torch.Tensor], draws: Sequence[Draw]) -> None:
        self.tensors, self.expected, self.index = list(tensors), list(draws), 0

    def draw(self, kind: str, shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if self.index >= len(self.tensors):
            raise RuntimeError(f"noise replay: draw {self.index + 1} asked for, {len(self.tensors)} recorded")
        expected = self.expected[self.index]
        if (kind, tuple(int(s) for s in shape), dtype) != expected:
            raise RuntimeError(
                f"noise replay: draw {self.index + 1} is {(kind, tuple(shape), dtype)}, recorded {expected}"
            )
        self.index += 1
        return self.tensors[self.index - 1]


def draw_all(source: NoiseSource, draws: Sequence[Draw], device: torch.device) -> list[torch.Tensor]:
    """``draws`` made from ``source`` in order: what an update running on ``source`` draws."""
    return [source.draw(kind, shape, device, dtype) for kind, shape, dtype in draws]
