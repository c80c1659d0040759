"""The machinery every offline algorithm shares, as one LightningModule base class.

An algorithm subclass supplies only:

- ``config_class``: its hyper-parameter dataclass (a :class:`BaseAlgoConfig`), and
  ``action_types``: the action types it defines;
- ``build()``: its networks (construction order fixes the initial weights for a seed),
  registering frozen Polyak targets with :meth:`add_target`;
- ``param_groups()``: named parameter groups; each gets ``cfg.lr_<group>`` and its own
  gradient-norm clip;
- ``compute_losses(batch)``: a :class:`~omiga_pl.losses.common.NamedLosses` whose keys
  are the group names (one loss per group), the maths in ``omiga_pl/losses/``;
- ``act(observations, avail_actions)`` when acting is not ``self.policy.act``.

One update is one forward, **one backward of the summed losses**, per-group clipping, one
Adam step (a param group per named group) and a Polyak step of the targets. One backward
of the sum equals one backward per loss exactly when no loss reaches another group's
parameters: OMIGA's losses detach every cross-term; an actor loss that goes through a
critic, ``Q(o, pi(o))``, evaluates the critic with :func:`call_detached` (gradients reach
the actor's action, not the critic's weights). Keeping a single backward and a single
optimizer step keeps ``trainer.global_step`` equal to the update count and DDP's reducer
happy (several backward passes over disjoint nets in one step break it). The contract is
tested for every registered algorithm and action type (tests/test_algorithms.py).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import lightning as L
import torch
from torch import nn

from omiga_pl.algos.scalars import IntervalMeans
from omiga_pl.data.batch import Batch
from omiga_pl.data.datamodule import batch_seed
from omiga_pl.dims import ACTION_TYPES, ProblemDims
from omiga_pl.errors import CheckpointError, ConfigError
from omiga_pl.losses.common import NamedLosses
from omiga_pl.nets.policy import LOG_STD_KINDS, POLICY_KINDS
from omiga_pl.noise import GeneratorNoise, NoiseSource

ADAM_IMPLS = ("foreach", "fused", "for-loop")
# Learning-rate schedules of the policy group (``algo.policy_lr_schedule``); "auto" is
# resolved per action type by :func:`resolve_lr_schedule`.
LR_SCHEDULES = ("auto", "constant", "cosine")
# Mixed into every training-noise seed so that it never coincides with the batch sampler's.
NOISE_STREAM = 0x6E6F6973
# Checkpoint field holding the training scalars' interval in progress.
INTERVAL_KEY = "omiga_pl_train_scalars"


@dataclass
class BaseAlgoConfig:
    """Keys every algorithm has; each algorithm's dataclass adds its own."""

    # Registry name of the algorithm (omiga_pl/algos/__init__.py); picks the schema.
    name: str = ""
    # Hidden layer sizes of every per-agent MLP.
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    # Gradient-norm clip applied to each parameter group separately; <= 0 disables.
    grad_clip: float = 1.0
    # torch.optim.Adam implementation: "foreach", "fused" or "for-loop".
    adam_impl: str = "foreach"

    def validate(self) -> None:
        """Range checks the type system cannot express; :class:`ConfigError` names the key.

        Checks are by field name, so every algorithm gets them for the keys it has:
        ``lr_*``, ``alpha``, ``*_hidden`` positive; ``tau`` in (0, 1]; ``gamma`` in [0, 1];
        ``action_eps`` in (0, 1); every ``*hidden_sizes`` a non-empty list of positive sizes.
        """
        for f in fields(self):
            value = getattr(self, f.name)
            key = f"algo.{f.name}"
            if f.name.startswith("lr_") or f.name == "alpha" or f.name.endswith("_hidden"):
                check_positive(key, value)
            if f.name.endswith("hidden_sizes") and (not value or min(value) <= 0):
                raise ConfigError(
                    f"config: key '{key}': expected a non-empty list of positive sizes, found {list(value)}"
                )
        if hasattr(self, "tau"):
            check_in_range("algo.tau", self.tau, 0.0, 1.0, "(0, 1]", low_open=True)
        if hasattr(self, "gamma"):
            check_in_range("algo.gamma", self.gamma, 0.0, 1.0, "[0, 1]")
        if hasattr(self, "action_eps"):
            check_in_range(
                "algo.action_eps", self.action_eps, 0.0, 1.0, "(0, 1)", low_open=True, high_open=True
            )
        check_choice("algo.adam_impl", self.adam_impl, ADAM_IMPLS)
        if hasattr(self, "policy"):
            check_choice("algo.policy", self.policy, POLICY_KINDS)
            check_choice("algo.policy_log_std", self.policy_log_std, LOG_STD_KINDS)
        if hasattr(self, "policy_lr_schedule"):
            check_choice("algo.policy_lr_schedule", self.policy_lr_schedule, LR_SCHEDULES)


@dataclass
class TargetConfig:
    """Keys of algorithms that bootstrap from Polyak-averaged target networks."""

    # Discount factor of the TD target.
    gamma: float = 0.99
    # Polyak rate of the target nets, applied every update.
    tau: float = 0.005


@dataclass
class PolicyFitConfig:
    """Keys of algorithms that fit a policy to dataset actions by likelihood."""

    # Continuous actions: dataset actions are clipped to (-1 + eps, 1 - eps) before atanh
    # in the policy's log-probability. 1e-7 is the OMIGA reference's value; on datasets with
    # many saturated actions (exactly +-1) a larger eps (1e-3) fits them far better.
    action_eps: float = 1e-7
    # Continuous actions: the policy family. "gaussian_tanh_mean" (default): a Gaussian
    # with tanh-squashed mean, log-probs of the raw action (IQL in CORL), so saturated
    # actions (+-1) are ordinary points; "tanh_gaussian": the reference's tanh-squashed
    # Gaussian, log-probs of atanh(clipped action). Chosen by measurement on the bundled
    # Hopper levels: docs/algorithms/policies.md (conf/presets/reference.yaml: the reference).
    policy: str = "gaussian_tanh_mean"
    # Continuous actions: log-std as one learned vector per action dimension ("param",
    # default, CORL's IQL) or a second head on the trunk ("state", the reference's).
    policy_log_std: str = "param"
    # Learning rate of the policy group over the run: "constant" (the OMIGA reference),
    # "cosine" (decayed to 0 at trainer.max_steps, CORL IQL's CosineAnnealingLR on its actor:
    # settles the policy at the end of the run instead of leaving it at full step size), or
    # "auto" (default): cosine for continuous actions (chosen by measurement on the bundled
    # Hopper levels, docs/algorithms/policies.md), constant for discrete ones (not measured).
    policy_lr_schedule: str = "auto"
    # Discrete actions: mask unavailable actions in the policy's training log-probs.
    # The OMIGA reference does not (it masks only when acting).
    mask_unavailable_in_training: bool = False


def check_positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"config: key '{key}': expected a positive value, found {value}")


def check_non_negative(key: str, value: float) -> None:
    if value < 0:
        raise ConfigError(f"config: key '{key}': expected a non-negative value, found {value}")


def check_at_least_one(key: str, value: int) -> None:
    if int(value) < 1:
        raise ConfigError(f"config: key '{key}': expected an integer >= 1, found {value}")


def check_in_range(
    key: str,
    value: float,
    low: float,
    high: float,
    text: str,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        raise ConfigError(f"config: key '{key}': expected a value in {text}, found {value}")


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"config: key '{key}': expected one of {list(choices)}, found '{value}'")


class ConstantFactor:
    """LambdaLR factor 1 (a class, not a lambda, so that the scheduler's state pickles)."""

    def __call__(self, step: int) -> float:
        return 1.0


class CosineFactor:
    """LambdaLR factor ``0.5 (1 + cos(pi min(t, T) / T))``: 1 at update 0, 0 at update T."""

    def __init__(self, total_steps: int) -> None:
        self.total_steps = int(total_steps)

    def __call__(self, step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))


def policy_lr_schedule(
    optimizer: torch.optim.Optimizer, schedule: str, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """The ``algo.policy_lr_schedule`` of the optimizer's group named ``policy`` (the other
    groups keep their rate); ``None`` for ``constant``, which leaves the optimizer alone."""
    if schedule == "constant":
        return None
    if total_steps <= 0:
        raise ConfigError(
            f"config: key 'algo.policy_lr_schedule': '{schedule}' decays over trainer.max_steps, "
            f"which must be positive, found {total_steps}"
        )
    factors = [
        CosineFactor(total_steps) if group.get("name") == "policy" else ConstantFactor()
        for group in optimizer.param_groups
    ]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def resolve_lr_schedule(schedule: str, action_type: str) -> str:
    """``algo.policy_lr_schedule`` as it runs: ``auto`` is ``cosine`` for continuous actions
    and ``constant`` for discrete ones; the other values are themselves."""
    if schedule != "auto":
        return schedule
    return "cosine" if action_type == "continuous" else "constant"


def configure_adam(
    groups: list[dict[str, Any]], cfg: BaseAlgoConfig, total_steps: int, action_type: str
) -> Any:
    """What ``configure_optimizers`` returns: one Adam over the named param ``groups`` in the
    implementation ``cfg.adam_impl`` names, with the policy's LR schedule when ``cfg`` has one
    (stepped by hand every update, :func:`step_lr_schedule`: the modules optimise manually).
    ``total_steps``: the updates the schedule spans; ``action_type`` resolves ``auto``."""
    impl = cfg.adam_impl
    optimizer = torch.optim.Adam(
        groups, foreach=True if impl == "foreach" else None, fused=True if impl == "fused" else None
    )
    requested = getattr(cfg, "policy_lr_schedule", "constant")
    schedule = policy_lr_schedule(optimizer, resolve_lr_schedule(requested, action_type), total_steps)
    if schedule is None:
        return optimizer
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def optimizer_of(configured: Any) -> torch.optim.Optimizer:
    """The optimizer in what :func:`configure_adam` returned (a dict when there is a schedule)."""
    return configured["optimizer"] if isinstance(configured, dict) else configured


def scheduled_steps(module: L.LightningModule) -> int:
    """The updates an LR schedule spans: the trainer's ``max_steps`` (1 with no trainer,
    e.g. a checkpoint check that only needs the optimizer's structure)."""
    return module.trainer.max_steps if module._trainer is not None else 1


def step_lr_schedule(module: L.LightningModule) -> None:
    """Advance ``module``'s LR schedule by one update (a no-op without one)."""
    schedule = module.lr_schedulers()
    if schedule is not None:
        schedule.step()


class _BoundMethod(nn.Module):
    """``forward`` = ``net.<method>``, so that a functional call can reach any method."""

    def __init__(self, net: nn.Module, method: str) -> None:
        super().__init__()
        self.net, self.method = net, method

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return getattr(self.net, self.method)(*inputs)


def call_detached(net: nn.Module, *inputs: torch.Tensor, method: str = "forward") -> torch.Tensor:
    """``net.<method>(*inputs)`` with the net's parameters detached: gradients flow to
    ``inputs`` (e.g. an actor's action) but never into ``net`` (e.g. the critic).

    ``method`` reaches methods other than ``forward``, e.g. a mixer's ``mix``."""
    if method != "forward":
        net = _BoundMethod(net, method)
    params = {name: p.detach() for name, p in net.named_parameters()}
    return torch.func.functional_call(net, params, inputs)


def noise_seed(seed: int, rank: int, step: int) -> int:
    """A 63-bit seed, a well-mixed function of (seed, rank, step) on the noise stream."""
    return batch_seed(seed, rank, step, stream=NOISE_STREAM)


def update_noise_generator(seed: int, rank: int, step: int, device: torch.device | str) -> torch.Generator:
    """The training-noise generator of update ``step`` of run ``seed`` on ``rank``: what a
    single run draws from (:meth:`OfflineAlgorithm.noise_generator`) and what a seed
    ensemble draws each member's noise from."""
    return torch.Generator(device).manual_seed(noise_seed(seed, rank, step))


def frozen_copy(net: nn.Module) -> nn.Module:
    """A deep copy with ``requires_grad`` off: a target network."""
    return copy.deepcopy(net).requires_grad_(False)


class OfflineAlgorithm(L.LightningModule):
    """Base of every algorithm (see the module docstring for what a subclass supplies).

    Args:
        dims: problem sizes, a :class:`~omiga_pl.dims.ProblemDims` as a dict.
        algo: the algorithm's config dataclass (``config_class``) as a dict.
        log_every: write training scalars every this many updates.
        seed: the run's seed; with the rank and the update index it seeds the training noise
            of algorithms that sample (:meth:`noise_generator`).
    """

    config_class: ClassVar[type[BaseAlgoConfig]] = BaseAlgoConfig
    action_types: ClassVar[tuple[str, ...]] = ACTION_TYPES

    def __init__(
        self, dims: dict[str, Any], algo: dict[str, Any], log_every: int = 100, seed: int = 0
    ) -> None:
        super().__init__()
        self._param_cache: dict[str, Any] | None = None
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.dims = ProblemDims(**dims)
        self.cfg = self.config_class(**algo)
        self.log_every = log_every
        self.seed = seed
        action_type = self.dims.action_type
        if action_type not in ACTION_TYPES:
            raise ConfigError(
                f"algo: expected action type one of {list(ACTION_TYPES)}, found '{action_type}'"
            )
        if action_type not in self.action_types:
            raise ConfigError(
                f"config: key 'algo.name': algorithm '{self.cfg.name}' supports "
                f"{' and '.join(self.action_types)} actions only, but the dataset's actions are {action_type}"
            )
        self.continuous = action_type == "continuous"
        self._target_pairs: list[tuple[str, str]] = []
        self.build()
        self.experiment_config: dict[str, Any] | None = None
        self._last_log_time: float | None = None
        self._last_log_step = 0
        # The logging interval's running means; built on the first update (its names are
        # the scalars compute_losses returns). Not a submodule: no weights, no state_dict.
        self._interval: IntervalMeans | None = None
        self._pending_interval: dict[str, Any] | None = None

    # ------------------------------------------------------------ what subclasses give
    def build(self) -> None:
        """Create the networks (as attributes) and register targets with :meth:`add_target`."""
        raise NotImplementedError

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups, in optimizer order; each trained by the loss of its name."""
        raise NotImplementedError

    def compute_losses(self, batch: Batch) -> NamedLosses:
        """Forward the networks on ``batch`` and return one loss per parameter group."""
        raise NotImplementedError

    @torch.no_grad()
    def act(self, observations: torch.Tensor, avail_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic joint action for evaluation: [E, N, O] -> [E, N] (discrete,
        best available action) or [E, N, A] (continuous)."""
        return self.policy.act(observations, avail_actions)

    def noise_generator(self, device: torch.device | str) -> torch.Generator:
        """This update's sampling noise (sampled actions, latents): a generator seeded by a
        pure function of (seed, rank, update index). A resumed run therefore draws exactly
        what a straight run would, and the global torch RNG is never touched."""
        rank = self.trainer.global_rank if self._trainer is not None else 0
        return update_noise_generator(self.seed, rank, self.global_step, device)

    def noise(self, device: torch.device | str) -> NoiseSource:
        """The source an update draws its training noise from (omiga_pl/noise.py):
        this update's :meth:`noise_generator`, or what a seed ensemble has set in its place
        (``noise_override``: a recording or a replay of the member's own draws)."""
        override = self.__dict__.get("noise_override")
        return override if override is not None else GeneratorNoise(self.noise_generator(device))

    # ------------------------------------------------------------------------- targets
    def add_target(self, name: str) -> nn.Module:
        """Register ``<name>_target``, a frozen copy of ``self.<name>``, Polyak-averaged
        with ``cfg.tau`` after every update; it lives in the checkpoint."""
        target = frozen_copy(getattr(self, name))
        setattr(self, f"{name}_target", target)
        self._target_pairs.append((f"{name}_target", name))
        return target

    @torch.no_grad()
    def update_targets(self) -> None:
        """Polyak averaging: target <- (1 - tau) target + tau online."""
        cache = self._cached_params()
        if cache["targets"]:
            torch._foreach_lerp_(cache["targets"], cache["online"], self.cfg.tau)

    # -------------------------------------------------------------------- optimisation
    def _cached_params(self) -> dict[str, Any]:
        """Parameter lists used every update, built once: walking the module tree on every
        step cost ~5% of an update at these sizes. ``_apply`` (``.to()``, ``.cuda()``...)
        drops the cache in case parameters are replaced."""
        if self._param_cache is None:
            pairs = [(getattr(self, t), getattr(self, o)) for t, o in self._target_pairs]
            self._param_cache = {
                "groups": self.param_groups(),
                "targets": [p for target, _ in pairs for p in target.parameters()],
                "online": [p for _, net in pairs for p in net.parameters()],
            }
        return self._param_cache

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> OfflineAlgorithm:
        self._param_cache = None
        return super()._apply(fn, *args, **kwargs)

    def learning_rate(self, group: str) -> float:
        """``cfg.lr_<group>``: every parameter group has its own learning rate key."""
        return float(getattr(self.cfg, f"lr_{group}"))

    def configure_optimizers(self) -> Any:
        """One Adam (a param group per named group), with the policy's LR schedule if any."""
        groups = [
            {"params": params, "lr": self.learning_rate(name), "name": name}
            for name, params in self.param_groups().items()
        ]
        return configure_adam(groups, self.cfg, scheduled_steps(self), self.dims.action_type)

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        optimizer = self.optimizers()
        losses = self.compute_losses(batch)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(losses.total)
        grad_norms = self.clip_per_group()
        optimizer.step()
        step_lr_schedule(self)
        self.update_targets()
        # Every update adds to the interval's running sums on the device (no host sync);
        # only a logging step reads them.
        self.accumulate_scalars(losses, grad_norms)
        if self.global_step % self.log_every == 0:
            self._log_training()

    def clip_per_group(self) -> dict[str, torch.Tensor]:
        """Clip each parameter group's gradient norm to ``grad_clip``; return the norms."""
        norms = {}
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        for name, params in self._cached_params()["groups"].items():
            grads = [p for p in params if p.grad is not None]
            norms[name] = torch.nn.utils.clip_grad_norm_(grads, max_norm, foreach=True)
        return norms

    # ------------------------------------------------------------------------- logging
    @staticmethod
    def training_scalars(losses: NamedLosses, grad_norms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The scalars of one update under their logged names (tensors, never read here)."""
        return {
            **{f"train/{name}_loss": loss for name, loss in losses.named.items()},
            **{f"train/{key}": value for key, value in losses.diagnostics.items()},
            **{f"train/grad_norm_{key}": value for key, value in grad_norms.items()},
        }

    def accumulate_scalars(self, losses: NamedLosses, grad_norms: dict[str, torch.Tensor]) -> None:
        """Add this update's scalars to the logging interval's means (:class:`IntervalMeans`)."""
        scalars = self.training_scalars(losses, grad_norms)
        if self._interval is None:
            # Kept out of the module tree (nn.Module.__setattr__ would register it).
            self.__dict__["_interval"] = IntervalMeans(list(scalars)).to(self.device)
            if self._pending_interval is not None:
                self._interval.restore(self._pending_interval)
                self._pending_interval = None
        self._interval.update(torch.stack([value.detach().float() for value in scalars.values()]))

    def _log_training(self) -> None:
        """Write the interval's means (one host read) and reset them."""
        now = time.perf_counter()
        if self._interval is None:
            return
        means = self._interval.compute()  # sums over DDP ranks when distributed
        self._interval.reset()
        values = torch.stack(list(means.values())).tolist()
        metrics = dict(zip(means, values))
        if self._last_log_time is not None:
            elapsed = now - self._last_log_time
            metrics["perf/updates_per_s"] = (self.global_step - self._last_log_step) / elapsed
        self._last_log_time, self._last_log_step = now, self.global_step
        # Straight to the logger (rank 0 only), at the update count: Lightning's log_dict
        # would keep re-emitting on_step values and index them by batches seen.
        if self.logger is not None and self.trainer.is_global_zero:
            self.logger.log_metrics(metrics, step=self.global_step)

    def on_train_start(self) -> None:
        self._last_log_time, self._last_log_step = time.perf_counter(), self.global_step

    # --------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.experiment_config is not None:
            checkpoint["omiga_pl_config"] = self.experiment_config
        # An interval in progress (checkpoint_every not a multiple of log_every): a resumed
        # run then logs the same means as a straight one.
        if self._interval is not None:
            checkpoint[INTERVAL_KEY] = self._interval.snapshot()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("hyper_parameters", {}).get("dims")
        if saved is not None and saved != asdict(self.dims):
            raise CheckpointError(
                f"checkpoint: network sizes {saved} do not match this dataset's {asdict(self.dims)}; "
                "resume with the dataset the run started with"
            )
        self._pending_interval = checkpoint.get(INTERVAL_KEY)
