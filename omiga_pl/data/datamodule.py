"""OfflineMARLDataModule: loads a dataset once and serves resumable random batches.

Offline RL trains for a number of updates, not epochs. The loader is an endless stream
of index tensors in which batch k of rank r is a pure function of (seed, r, k); the
stream starts at ``trainer.global_step``. A resumed run therefore draws exactly the
batches a straight run would, whatever Lightning prefetched before the checkpoint.
Indices are turned into tensors in ``on_after_batch_transfer`` with one gather per
field, on the accelerator when the storage lives there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from omiga_pl.data.batch import Batch
from omiga_pl.data.compat import check_dataset_matches_env
from omiga_pl.data.formats.native import dataset_fingerprint, read_native
from omiga_pl.data.obs_norm import ObservationNormalizer, fit_normalizer, normalize_rows
from omiga_pl.data.paths import resolve_data_path
from omiga_pl.data.storage import TransitionStorage
from omiga_pl.envs.base import EnvSpec
from omiga_pl.errors import CheckpointError


def batch_seed(seed: int, rank: int, step: int, bits: int = 63, stream: int | None = None) -> int:
    """A ``bits``-bit seed that is a well-mixed function of (seed, rank, step); a ``stream``
    number gives an independent sequence for the same three (e.g. training noise)."""
    entropy = [seed, rank, step] if stream is None else [seed, rank, step, stream]
    state = np.random.SeedSequence(entropy).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(64 - bits))


def sample_indices(n: int, batch_size: int, seed: int, rank: int, step: int) -> torch.Tensor:
    """[batch_size] int64 transition indices drawn uniformly with replacement."""
    generator = torch.Generator().manual_seed(batch_seed(seed, rank, step))
    return torch.randint(n, (batch_size,), generator=generator)


class IndexStream(IterableDataset):
    """Endless stream of index batches starting at the update ``start_step()`` returns."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, start_step: Callable[[], int]) -> None:
        self.n, self.batch_size, self.seed, self.rank = n, batch_size, seed, rank
        self.start_step = start_step

    def __iter__(self) -> Iterator[torch.Tensor]:
        step = self.start_step()
        while True:
            yield sample_indices(self.n, self.batch_size, self.seed, self.rank, step)
            step += 1


class OfflineMARLDataModule(L.LightningDataModule):
    """Serves batches of a native offline multi-agent dataset.

    Args:
        path: native HDF5 file, or a name from ``data/registry.yaml``.
        batch_size: transitions per update and rank.
        seed: base seed of the sampler (mixed with rank and update index).
        use_reward_to_go: the SMAC reference's reward rewrite (see omiga-spec.md).
        reward_scale: every reward is multiplied by it at load (after ``use_reward_to_go``).
        storage_on_device: keep the dataset on the accelerator and gather there.
        env_spec: when given, the dataset is checked against it on load.
        obs_normalization: ``none`` (observations and states as stored) or ``standardize``
            (each feature standardised with the dataset's statistics at load,
            :mod:`omiga_pl.data.obs_norm`; :attr:`normalizer` then holds the map, for the
            evaluation env). ``auto`` is resolved by the caller
            (:func:`~omiga_pl.data.obs_norm.resolve_obs_normalization`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        batch_size: int = 128,
        seed: int = 0,
        use_reward_to_go: bool = False,
        storage_on_device: bool = True,
        env_spec: EnvSpec | None = None,
        obs_normalization: str = "none",
        reward_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not reward_scale > 0 or reward_scale == float("inf"):
            raise ValueError(f"reward_scale: expected a positive finite number, found {reward_scale!r}")
        self.reward_scale = float(reward_scale)
        if obs_normalization not in ("none", "standardize"):
            raise ValueError(
                f"obs_normalization: expected 'none' or 'standardize', found {obs_normalization!r}"
            )
        self.obs_normalization = obs_normalization
        self.normalizer: ObservationNormalizer | None = None
        self.path = path
        self.batch_size = batch_size
        self.seed = seed
        self.use_reward_to_go = use_reward_to_go
        self.storage_on_device = storage_on_device
        self.env_spec = env_spec
        self.storage: TransitionStorage | None = None
        self.card: dict[str, Any] = {}
        self.fingerprint: str | None = None
        self.load_seconds = float("nan")

    def load(self) -> TransitionStorage:
        """Read, validate and tensorise the dataset (once; later calls are free)."""
        if self.storage is None:
            start = time.perf_counter()
            # A path, a bundled file relative to the project, or a registry name.
            self.path = resolve_data_path(str(self.path))
            data, self.card = read_native(self.path)
            if self.env_spec is not None:
                check_dataset_matches_env(self.path, data, self.env_spec)
            # What a checkpoint records of its data: resuming on other content is refused.
            self.fingerprint = dataset_fingerprint(data)
            if self.obs_normalization == "standardize":
                self.normalizer = fit_normalizer(self.path, data.observations, data.states, self.card)
                data.observations = normalize_rows(self.normalizer, data.observations)
                if data.states is not None:
                    data.states = normalize_rows(self.normalizer, data.states, states=True)
            self.storage = TransitionStorage(data, self.use_reward_to_go, self.reward_scale)
            self.load_seconds = time.perf_counter() - start
        return self.storage

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def train_dataloader(self) -> DataLoader:
        storage = self.load()
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        stream = IndexStream(
            storage.n_transitions,
            self.batch_size,
            self.seed,
            rank,
            start_step=lambda: trainer.global_step if trainer is not None else 0,
        )
        # On a GPU the index batch is copied from pinned memory, so the copy is queued
        # without waiting for the kernels before it (a pageable copy would synchronise).
        on_cuda = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return DataLoader(stream, batch_size=None, num_workers=0, pin_memory=on_cuda)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Batch:
        storage = self.load()
        if not isinstance(batch, torch.Tensor):
            return batch
        if self.storage_on_device and storage.device != batch.device:
            storage.to(batch.device)
        gathered = storage.gather(batch.to(storage.device))
        if storage.device != batch.device:
            gathered = Batch(
                **{k: None if v is None else v.to(batch.device) for k, v in vars(gathered).items()}
            )
        return gathered

    def state_dict(self) -> dict[str, Any]:
        storage = self.load()
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "n_transitions": storage.n_transitions,
            "use_reward_to_go": self.use_reward_to_go,
            "reward_scale": self.reward_scale,
            "obs_normalization": self.obs_normalization,
            # For the record (a policy acts on observations mapped this way); refitted on load.
            "normalizer": None if self.normalizer is None else self.normalizer.as_dict(),
            "fingerprint": self.fingerprint,
            "path": str(self.path),
        }

    def check_state(self, state: Any, checkpoint: str = "checkpoint") -> list[str]:
        """Refuse to continue a checkpoint's sampling on other data or other settings.

        ``state`` is what :meth:`state_dict` saved; ``checkpoint`` names it in messages.
        Returns notes (e.g. a checkpoint that predates fingerprints) instead of refusing
        what cannot be checked.
        """
        storage = self.load()
        if not isinstance(state, dict):
            raise CheckpointError(
                f"{checkpoint}: field '{type(self).__qualname__}': expected the data module's state "
                f"(a mapping), found {type(state).__name__}"
            )
        saved_path = state.get("path", "the run's dataset")
        current = {
            "n_transitions": storage.n_transitions,
            "batch_size": self.batch_size,
            "use_reward_to_go": self.use_reward_to_go,
            "reward_scale": self.reward_scale,
            "obs_normalization": self.obs_normalization,
        }
        for key, value in current.items():
            if key in state and state[key] != value:
                raise CheckpointError(
                    f"{checkpoint}: datamodule field '{key}' was {state[key]} when saved ({saved_path}) "
                    "but is "
                    f"{value} now ({self.path}); resume with the dataset and settings the run started with"
                )
        if "fingerprint" not in state:
            return [
                f"{checkpoint} predates dataset fingerprints: only the number of transitions "
                f"({storage.n_transitions}) was checked against {self.path}"
            ]
        if state["fingerprint"] != self.fingerprint:
            raise CheckpointError(
                f"{checkpoint}: the dataset's content differs from the run's: fingerprint "
                f"{str(state['fingerprint'])[:16]}… when saved ({saved_path}), "
                f"{str(self.fingerprint)[:16]}… now "
                f"({self.path}); resume with the dataset the run started with"
            )
        return []

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.check_state(state)
        # The sampler is a pure function of (seed, rank, step); the checkpoint's seed wins.
        self.seed = int(state.get("seed", self.seed))
