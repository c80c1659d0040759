"""Seed ensembles: K independent seeds of one algorithm trained in one process.

``seeds=[0,1,2]`` trains one member per seed. Every member is built exactly as the
single-seed run of that seed builds its module (``seed_everything(s)``, then the
algorithm's constructor), so it starts from the same weights; its batches are the
single-seed run's stream (``sample_indices(n, B, s, rank, step)``); it is clipped,
evaluated and logged on its own. Nothing in an algorithm is rewritten: the members'
weights are stacked along a leading ensemble axis (``torch.func.stack_module_state``)
and one member's ``compute_losses`` is mapped over that axis with ``torch.func.vmap`` +
``functional_call``, so on an accelerator every matmul of the K members runs as one
batched matmul.

Shapes: K = members. Stacked parameters [K, *shape]; an ensemble batch holds [K, B, ...]
tensors (member k's batch at index k); losses and scalars come back [K].

Every registered algorithm runs as an ensemble, those that draw training noise too (CQL's
proposal actions, BCQ's latents, OMAR's search): a ``torch.Generator`` draw cannot run
inside ``vmap``, so the algorithms draw through a noise source (omiga_pl/noise.py). The
ensemble records once which draws an update makes (kind, shape, dtype), then every update
makes member k's draws outside ``vmap`` from member k's own generator (the single-seed
run's: seed, rank and update index), stacks them [K, ...] and replays them inside.

On CPU a member's update is bit for bit its single-seed run's (tests/test_ensemble.py):
every ``nn.Linear`` runs per member there (:class:`_PerMemberLinear`; batched matmuls
round differently from the single run's on some CPUs), and the gradient norms are
reduced per member exactly as ``clip_grad_norm_`` reduces them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict
from types import SimpleNamespace
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from omiga_pl.algos import ALGORITHMS
from omiga_pl.algos.base import (
    OfflineAlgorithm,
    configure_adam,
    scheduled_steps,
    step_lr_schedule,
    update_noise_generator,
)
from omiga_pl.algos.scalars import IntervalMeans
from omiga_pl.data.batch import Batch
from omiga_pl.data.datamodule import IndexStream, OfflineMARLDataModule, sample_indices
from omiga_pl.errors import ConfigError
from omiga_pl.noise import Draw, GeneratorNoise, NoiseSource, RecordingNoise, ReplayedNoise, draw_all

ENSEMBLE_ALGORITHMS = tuple(ALGORITHMS)
INTERVAL_KEY = "omiga_pl_ensemble_scalars"


def check_ensemble_config(name: str, seeds: Sequence[int]) -> None:
    """``seeds`` non-empty and distinct, ``name`` an algorithm ensembles support."""
    if not seeds:
        raise ConfigError("config: key 'seeds': expected a non-empty list of seeds or null, found []")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"config: key 'seeds': expected distinct seeds, found {list(seeds)}")
    if name not in ENSEMBLE_ALGORITHMS:
        raise ConfigError(
            f"config: key 'seeds': seed ensembles support {list(ENSEMBLE_ALGORITHMS)}, not '{name}'; "
            "run its seeds as separate runs"
        )


class _PerMemberLinear(torch.autograd.Function):
    """``F.linear`` whose vmap rule runs one ``F.linear`` per member.

    A batched matmul (what vmap makes of ``F.linear``) rounds differently from the single
    run's ``addmm`` on some CPUs and shapes (on an AMD EPYC machine every layer width
    differed; on an Intel AMX one only layers with one output did), by about 1e-6, and
    Adam turns that into visibly different weights within a few hundred updates wherever
    gradients are near zero (OMIGA's V net). Per member, the forward and its backward are
    the single run's own kernels, so members stay equal to their single-seed runs. Used
    for every ``nn.Linear`` on CPU, where seeds run faster as separate processes anyway
    (docs/ensembles.md); on an accelerator the layer stays one batched matmul.
    """

    @staticmethod
    def forward(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return nn.functional.linear(inputs, weight, bias)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(*inputs[:2])
        ctx.has_bias = inputs[2] is not None

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        inputs, weight = ctx.saved_tensors
        grad_inputs = grad @ weight
        grad_weight = grad.reshape(-1, grad.shape[-1]).t() @ inputs.reshape(-1, inputs.shape[-1])
        grad_bias = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.has_bias else None
        return grad_inputs, grad_weight, grad_bias

    @staticmethod
    def vmap(
        info: Any, in_dims: tuple, inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple:
        def member(value: torch.Tensor | None, dim: int | None, k: int) -> torch.Tensor | None:
            return value if value is None or dim is None else value.select(dim, k)

        outputs = [
            nn.functional.linear(*(member(v, d, k) for v, d in zip((inputs, weight, bias), in_dims)))
            for k in range(info.batch_size)
        ]
        return torch.stack(outputs), 0


class _MemberLinear(nn.Linear):
    """An ``nn.Linear`` whose ensemble forward on CPU matches a single run's."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.device.type != "cpu":
            return super().forward(inputs)
        return _PerMemberLinear.apply(inputs, self.weight, self.bias)


def exact_member_layers(module: nn.Module) -> nn.Module:
    """Make every ``nn.Linear`` of ``module`` a :class:`_MemberLinear` (in place)."""
    for layer in module.modules():
        if type(layer) is nn.Linear:
            layer.__class__ = _MemberLinear
    return module


def safe_name(name: str) -> str:
    """A parameter name usable as a ParameterDict key ('.' is not allowed there)."""
    return name.replace(".", "__")


class _Losses(nn.Module):
    """``forward(batch fields)`` = the algorithm's losses as a pytree (vmap's output)."""

    def __init__(self, algorithm: OfflineAlgorithm) -> None:
        super().__init__()
        self.algorithm = algorithm

    def forward(
        self, fields: dict[str, torch.Tensor], noise: NoiseSource | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The losses on ``fields``, drawing training noise from ``noise`` when given."""
        self.algorithm.__dict__["noise_override"] = noise
        try:
            losses = self.algorithm.compute_losses(Batch(**fields))
        finally:
            self.algorithm.__dict__["noise_override"] = None
        return dict(losses.named), dict(losses.diagnostics)


def member_slice(stacked: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    return {name: value[index] for name, value in stacked.items()}


class EnsembleModule(L.LightningModule):
    """K members of one algorithm, trained as one module (see the module docstring).

    Args:
        members: the K seeds' modules, freshly built (their weights are copied in).
        seeds: the members' seeds, in order.
        log_every: write each member's training scalars every this many updates.
    """

    def __init__(
        self, members: Sequence[OfflineAlgorithm], seeds: Sequence[int], log_every: int = 100
    ) -> None:
        super().__init__()
        first = members[0]
        self.save_hyperparameters(
            {"dims": asdict(first.dims), "algo": asdict(first.cfg), "seeds": list(seeds)}
        )
        self.automatic_optimization = False
        self.dims, self.cfg, self.seeds, self.log_every = first.dims, first.cfg, list(seeds), log_every
        self.k = len(members)
        # The template whose methods run on each member's weights (never trained itself).
        self.__dict__["template"] = _Losses(exact_member_layers(copy.deepcopy(first)))
        params, buffers = torch.func.stack_module_state(list(members))
        self.params = nn.ParameterDict(
            {safe_name(k): nn.Parameter(v, v.requires_grad) for k, v in params.items()}
        )
        for name, value in buffers.items():
            self.register_buffer(safe_name(name), value, persistent=False)
        self.param_names, self.buffer_names = list(params), list(buffers)
        ids = {id(p): name for name, p in first.named_parameters()}
        self.group_names = {
            group: [ids[id(p)] for p in plist] for group, plist in first.param_groups().items()
        }
        self.learning_rates = {group: first.learning_rate(group) for group in self.group_names}
        self.target_pairs = [
            (t_name, f"{online}.{t_name[len(target) + 1 :]}")
            for target, online in first._target_pairs
            for t_name in self.param_names
            if t_name.startswith(target + ".")
        ]
        self.experiment_config: dict[str, Any] | None = None
        self.__dict__["_interval"] = None
        self._pending_interval: dict[str, Any] | None = None
        self.seed_loggers: list[Any] = []
        # The draws of an update (kind, shape, dtype), recorded once per batch layout.
        self._draws: dict[tuple, list[Draw]] = {}
        self._vmapped = torch.func.vmap(self._member_losses, in_dims=(0, 0, 0), randomness="error")

    # ------------------------------------------------------------------ the members
    def stacked(self) -> dict[str, torch.Tensor]:
        """Every stacked parameter and buffer under its member-module name: [K, ...]."""
        out = {name: self.params[safe_name(name)] for name in self.param_names}
        out.update({name: getattr(self, safe_name(name)) for name in self.buffer_names})
        return out

    def _member_losses(
        self,
        tensors: dict[str, torch.Tensor],
        fields: dict[str, torch.Tensor],
        noise: list[torch.Tensor],
    ) -> Any:
        """One member's losses (vmapped): its weights, its batch, its noise (one tensor per
        draw of :attr:`_current_draws`)."""
        named = {f"algorithm.{name}": value for name, value in tensors.items()}
        source = ReplayedNoise(noise, self._current_draws)
        return torch.func.functional_call(self.template, named, (fields, source))

    def update_draws(self, batch: dict[str, torch.Tensor]) -> list[Draw]:
        """The training-noise draws an update on ``batch``'s layout makes, found once by a
        gradient-free pass of member 0 with a :class:`RecordingNoise`."""
        key = tuple((name, tuple(value.shape[1:]), value.dtype) for name, value in batch.items())
        if key not in self._draws:
            recorder = RecordingNoise(next(iter(batch.values())).device)
            named = {f"algorithm.{n}": v for n, v in member_slice(self.stacked(), 0).items()}
            with torch.no_grad():
                torch.func.functional_call(self.template, named, (member_slice(batch, 0), recorder))
            self._draws[key] = recorder.draws
        return self._draws[key]

    def member_noise(self, draws: list[Draw], device: torch.device) -> list[torch.Tensor]:
        """Every member's draws for this update, made as its single-seed run makes them
        (:meth:`OfflineAlgorithm.noise_generator`), stacked: one [K, ...] tensor per draw."""
        if not draws:
            return []
        rank = self.trainer.global_rank if self._trainer is not None else 0
        per_member = [
            draw_all(
                GeneratorNoise(update_noise_generator(seed, rank, self.global_step, device)),
                draws,
                device,
            )
            for seed in self.seeds
        ]
        return [torch.stack(tensors) for tensors in zip(*per_member)]

    def member_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Member ``index``'s weights (parameters and persistent buffers), as its own module's."""
        sliced = member_slice(self.stacked(), index)
        keys = self.template.algorithm.state_dict().keys()
        return {k: sliced[k].detach().clone() for k in keys}

    def member(self, index: int) -> OfflineAlgorithm:
        """A module of the algorithm holding member ``index``'s current weights (for acting)."""
        module = self.template.algorithm
        module.load_state_dict(self.member_state_dict(index))
        return module.to(self.device)

    # ------------------------------------------------------------------ one update
    def compute_losses(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """All members' losses and diagnostics, each [K]."""
        draws = self.update_draws(batch)
        noise = self.member_noise(draws, next(iter(batch.values())).device)
        self.__dict__["_current_draws"] = draws
        return self._vmapped(self.stacked(), batch, noise)

    def configure_optimizers(self) -> Any:
        groups = [
            {
                "params": [self.params[safe_name(n)] for n in names],
                "lr": self.learning_rates[group],
                "name": group,
            }
            for group, names in self.group_names.items()
        ]
        return configure_adam(groups, self.cfg, scheduled_steps(self), self.dims.action_type)

    @torch.no_grad()
    def clip_per_member(self) -> dict[str, torch.Tensor]:
        """Each member's gradient norm per group, clipped to ``grad_clip``: {group: [K]}."""
        norms = {}
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        for group, names in self.group_names.items():
            grads = [g for g in (self.params[safe_name(n)].grad for n in names) if g is not None]
            # The single run's reduction (torch.nn.utils.clip_grad_norm_): a norm per tensor,
            # then the norm of those; per member, on its slices, so the rounding matches.
            slices = [g[k] for k in range(self.k) for g in grads]
            per_tensor = torch.stack(torch._foreach_norm(slices, 2.0)).view(self.k, len(grads))
            total = torch.stack([torch.linalg.vector_norm(row, 2.0) for row in per_tensor.unbind()])
            coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
            for g in grads:
                g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
            norms[group] = total
        return norms

    @torch.no_grad()
    def update_targets(self) -> None:
        if self.target_pairs:
            targets = [self.params[safe_name(t)] for t, _ in self.target_pairs]
            online = [self.params[safe_name(o)] for _, o in self.target_pairs]
            torch._foreach_lerp_(targets, online, self.cfg.tau)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        optimizer = self.optimizers()
        named, diagnostics = self.compute_losses(batch)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(sum(loss.sum() for loss in named.values()))
        grad_norms = self.clip_per_member()
        optimizer.step()
        step_lr_schedule(self)
        self.update_targets()
        self.accumulate_scalars(named, diagnostics, grad_norms)
        if self.global_step % self.log_every == 0:
            self.log_members()

    # ------------------------------------------------------------------ logging
    def accumulate_scalars(
        self,
        named: dict[str, torch.Tensor],
        diagnostics: dict[str, torch.Tensor],
        grad_norms: dict[str, torch.Tensor],
    ) -> None:
        scalars = {
            **{f"train/{n}_loss": v for n, v in named.items()},
            **{f"train/{n}": v for n, v in diagnostics.items()},
            **{f"train/grad_norm_{n}": v for n, v in grad_norms.items()},
        }
        if self._interval is None:
            names = [f"{k}|{name}" for k in range(self.k) for name in scalars]
            self.__dict__["_interval"] = IntervalMeans(names).to(self.device)
            if self._pending_interval is not None:
                self._interval.restore(self._pending_interval)
                self._pending_interval = None
        values = torch.stack([v.detach().float() for v in scalars.values()], dim=1)  # [K, M]
        self._interval.update(values.reshape(-1))

    def log_members(self) -> None:
        if self._interval is None:
            return
        means = self._interval.compute()
        self._interval.reset()
        values = torch.stack(list(means.values())).tolist()
        per_member: list[dict[str, float]] = [{} for _ in range(self.k)]
        for key, value in zip(means, values):
            index, name = key.split("|", 1)
            per_member[int(index)][name] = value
        if self.trainer.is_global_zero:
            for logger, metrics in zip(self.seed_loggers, per_member):
                logger.log_metrics(metrics, step=self.global_step)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.experiment_config is not None:
            checkpoint["omiga_pl_config"] = self.experiment_config
        if self._interval is not None:
            checkpoint[INTERVAL_KEY] = self._interval.snapshot()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_interval = checkpoint.get(INTERVAL_KEY)

    def on_train_end(self) -> None:
        for logger in self.seed_loggers:
            logger.finalize("success")


class EnsembleDataModule(OfflineMARLDataModule):
    """The data module serving K members: batch k is member k's single-seed batch.

    Index batches are [K, B] (member k's ``sample_indices(n, B, seeds[k], rank, step)``);
    after transfer they become a dict of [K, B, ...] tensors (the fields of a Batch).
    """

    def __init__(self, *args: Any, seeds: Sequence[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seeds = list(seeds)

    def train_dataloader(self) -> Any:
        loader = super().train_dataloader()
        stream = loader.dataset
        loader.dataset.__class__ = _EnsembleIndexStream
        stream.seeds = self.seeds
        return loader

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not isinstance(batch, torch.Tensor):
            return batch
        k, b = batch.shape
        flat = super().on_after_batch_transfer(batch.reshape(-1), dataloader_idx)
        return {
            name: value.reshape(k, b, *value.shape[1:])
            for name, value in vars(flat).items()
            if value is not None
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "seeds": self.seeds}


class _EnsembleIndexStream(IndexStream):
    seeds: list[int]

    def __iter__(self):
        step = self.start_step()
        while True:
            yield torch.stack(
                [sample_indices(self.n, self.batch_size, seed, self.rank, step) for seed in self.seeds]
            )
            step += 1


class EnsembleEvaluation(L.Callback):
    """Each member's evaluation (periodic and final), by an evaluation callback of its own.

    ``callbacks[k]`` is member k's (an EvaluationCallback with the member's seed and its
    own records in ``seed_<s>/``); its hooks run on a module holding member k's current
    weights, against a view of the trainer whose logger is member k's.
    """

    def __init__(self, callbacks: Sequence[Any], every: int) -> None:
        self.callbacks, self.every = list(callbacks), every

    def _each(self, hook: str, trainer: L.Trainer, module: EnsembleModule) -> None:
        for index, callback in enumerate(self.callbacks):
            view = SimpleNamespace(
                global_step=trainer.global_step,
                max_steps=trainer.max_steps,
                is_global_zero=trainer.is_global_zero,
                logger=module.seed_loggers[index] if module.seed_loggers else None,
            )
            getattr(callback, hook)(view, module.member(index))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: EnsembleModule, *args: Any) -> None:
        if trainer.global_step % self.every == 0:  # only then load the members' weights
            self._each("on_train_batch_end", trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: EnsembleModule) -> None:
        self._each("on_train_end", trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: EnsembleModule) -> None:
        self._each("on_fit_end", trainer, pl_module)

    @property
    def history(self) -> list[Any]:
        """Member 0's records (fit's summary); each member's are in its own callback."""
        return self.callbacks[0].history

    @property
    def final(self) -> Any:
        return self.callbacks[0].final

    def state_dict(self) -> dict[str, Any]:
        return {"members": [c.state_dict() for c in self.callbacks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for callback, member_state in zip(self.callbacks, state.get("members", [])):
            callback.load_state_dict(member_state)


def build_members(build: Callable[[int], OfflineAlgorithm], seeds: Sequence[int]) -> list[OfflineAlgorithm]:
    """Each seed's module built as its single-seed run builds it (global RNG seeded first)."""
    members = []
    for seed in seeds:
        L.seed_everything(seed, workers=True, verbose=False)
        members.append(build(seed))
    return members


def seed_loggers(run_dir: Any, seeds: Sequence[int]) -> list[TensorBoardLogger]:
    """One TensorBoard logger per member, writing into ``<run_dir>/seed_<s>/``."""
    return [
        TensorBoardLogger(save_dir=str(run_dir), name=f"seed_{seed}", version="", default_hp_metric=False)
        for seed in seeds
    ]
