"""One run's updates/s: a reference-style OMIGA step against a plain-PyTorch step and the
Lightning fit loop, same shapes, same threads, in one process (issue 13, item 2).

* **reference-style**: the OMIGA reference implementation's structure. The replay data
  lives in float64 NumPy arrays, one per field, observations and next observations
  stored separately per transition; every step indexes them with NumPy's RNG and
  converts each field with ``torch.FloatTensor``; three optimizers (policy, Q + mixer,
  V), three backward passes in the reference's order (policy, Q, V), one
  ``clip_grad_norm_`` each; Polyak averaging parameter by parameter with
  ``target.data.copy_(tau * p.data + (1 - tau) * target.data)``. The networks and the
  loss formulas are omiga_pl's own (the same maths), so only the driver differs.
* **reference as written**: the reference's own code path, structure for structure
  (``reference_omiga.py``): for discrete actions SMAC's (nested-list episodes converted
  item by item in a ``DataLoader``, every net called once per agent, Polyak of the whole
  model), for continuous MaMuJoCo's (eight float64 fields converted per step, 3-D inputs,
  per-step diagnostics). Its losses equal omiga_pl's (tests/test_reference_step.py).
* **plain**: the module's ``compute_losses`` -> one backward -> per-group clipping ->
  Adam -> Polyak, in a hand-written loop over the data module's storage.
* **lightning**: ``Trainer.fit`` on the module and the data module (what ``omiga_pl.fit``
  runs), logging every ``--log-every`` updates; with ``--fast`` also under
  ``conf/presets/fast.yaml`` (compiled update, fused Adam; with ``--bf16`` also in
  bf16-mixed).

Runs alternate (reference, plain, lightning, reference, ...) so that machine noise hits
all alike; medians and their ratios are printed, with the CPU's matrix flags and the
fp32 / bf16-mixed ratio of the Lightning loop (``--bf16``).

    python benchmarks/single_run.py                                  # 5m_vs_6m and Hopper-3x1
    python benchmarks/single_run.py --shapes Hopper-3x1 --steps 300 --threads 1 --bf16
    python benchmarks/single_run.py --steps 300 --repeats 3 --bf16 --fused-adam --fast
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import build_module, lightning_loop, machine_summary, plain_loop  # noqa: E402
from reference_omiga import as_written_loop, polyak_per_parameter, reference_as_written  # noqa: E402
from throughput import synthetic_file  # noqa: E402

from omiga_pl.algos.omiga import OmigaModule  # noqa: E402
from omiga_pl.data.datamodule import OfflineMARLDataModule  # noqa: E402
from omiga_pl.data.storage import TransitionStorage  # noqa: E402
from omiga_pl.losses.common import mix, mse, td_target  # noqa: E402
from omiga_pl.losses.omiga import regularised_advantage  # noqa: E402


class Float64Replay:
    """The reference's replay layout: per-transition float64 arrays for every field."""

    def __init__(self, storage: TransitionStorage) -> None:
        rows = storage.rows.numpy()
        self.n = storage.n_transitions
        self.obs = storage.observations.numpy()[rows].astype(np.float64)
        self.next_obs = storage.observations.numpy()[rows + 1].astype(np.float64)
        self.state = storage.states.numpy()[rows].astype(np.float64)
        self.next_state = storage.states.numpy()[rows + 1].astype(np.float64)
        self.actions = storage.actions.numpy().astype(np.float64)
        self.rewards = storage.rewards.numpy().astype(np.float64)[:, None]
        self.masks = storage.masks.numpy().astype(np.float64)[:, None]
        self.discrete = storage.dims.action_type == "discrete"

    def sample(self, rng: np.random.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        index = rng.integers(0, self.n, size=batch_size)
        out = {
            name: torch.FloatTensor(getattr(self, name)[index])
            for name in ("obs", "next_obs", "state", "next_state", "actions", "rewards", "masks")
        }
        if self.discrete:
            out["actions"] = out["actions"].long()
        return out


def reference_loop(
    module: OmigaModule, replay: Float64Replay, batch_size: int, steps: int, warmup: int
) -> float:
    """Updates/s of the reference-style step (see the module docstring)."""
    cfg, m = module.cfg, module
    policy_opt = torch.optim.Adam(m.policy.parameters(), lr=cfg.lr_policy)
    q_opt = torch.optim.Adam([*m.q.parameters(), *m.mixer.parameters()], lr=cfg.lr_q)
    v_opt = torch.optim.Adam(m.v.parameters(), lr=cfg.lr_v)
    rng = np.random.default_rng(0)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        b = replay.sample(rng, batch_size)
        obs, actions = b["obs"], b["actions"]
        rewards, masks = b["rewards"].squeeze(-1), b["masks"].squeeze(-1)
        # Policy: advantage-weighted likelihood with z from the target nets.
        with torch.no_grad():
            q_target = m.q_at_actions(m.q_target, obs, actions)
            weights_target, _ = m.mixer_target(b["state"])
            z = regularised_advantage(weights_target, q_target, m.v(obs).squeeze(-1), cfg.alpha)
        log_probs, _ = m.policy.log_prob_and_entropy(obs, actions)
        policy_loss = -(torch.exp(z) * log_probs).mean()
        policy_opt.zero_grad()
        policy_loss.backward()
        torch.nn.utils.clip_grad_norm_(m.policy.parameters(), cfg.grad_clip)
        policy_opt.step()
        # Q + mixer: regress the mixed Q on the target TD target.
        with torch.no_grad():
            next_w, next_b = m.mixer_target(b["next_state"])
            y = td_target(
                rewards, masks, mix(next_w, m.v_target(b["next_obs"]).squeeze(-1), next_b), cfg.gamma
            )
        weights, bias = m.mixer(b["state"])
        q_loss = mse(mix(weights, m.q_at_actions(m.q, obs, actions), bias), y)
        q_opt.zero_grad()
        q_loss.backward()
        torch.nn.utils.clip_grad_norm_([*m.q.parameters(), *m.mixer.parameters()], cfg.grad_clip)
        q_opt.step()
        # V: the implicit local regularisation.
        values = m.v(obs).squeeze(-1)
        z = regularised_advantage(weights_target, q_target, values, cfg.alpha)
        stab = torch.clamp(z.max(), min=-1.0).detach()
        v_loss = (torch.exp(z - stab) + torch.exp(-stab) * weights_target * values / cfg.alpha).mean()
        v_opt.zero_grad()
        v_loss.backward()
        torch.nn.utils.clip_grad_norm_(m.v.parameters(), cfg.grad_clip)
        v_opt.step()
        for name in ("q", "v", "mixer"):
            polyak_per_parameter(getattr(m, name), getattr(m, f"{name}_target"), cfg.tau)
    return steps / (time.perf_counter() - start)


def time_shape(name: str, args: argparse.Namespace, tmp: Path) -> None:
    """Time every requested loop on one synthetic shape and print medians and ratios."""
    path = synthetic_file(tmp, name, episodes=1000)
    datamodule = OfflineMARLDataModule(path, batch_size=128)
    replay = Float64Replay(datamodule.load())
    compiled = None
    if args.compile:
        compiled = build_module(datamodule)
        compiled.compute_losses = torch.compile(compiled.compute_losses)
        start = time.perf_counter()
        plain_loop(compiled, datamodule, 3, 0)
        print(f"[{name}] torch.compile (default mode) took {time.perf_counter() - start:.0f}s")
    steps, warmup = args.steps, args.warmup

    def lightning(
        adam_impl: str = "foreach", precision: str = "32-true", compile_mode: str | None = None
    ) -> float:
        # foreach Adam: the module's default (torch's own default is the for-loop on CPU).
        module = build_module(datamodule, adam_impl=adam_impl)
        return lightning_loop(
            module, datamodule, steps, warmup, args.log_every, precision=precision, compile_mode=compile_mode
        )

    # label -> one timed run (a fresh module each time, except the compiled one).
    loops: dict[str, Callable[[], float]] = {
        "reference": lambda: reference_loop(build_module(datamodule), replay, 128, steps, warmup),
        "reference as written": lambda: as_written_loop(
            reference_as_written(datamodule.load(), build_module(datamodule).cfg), steps, warmup
        ),
        "plain": lambda: plain_loop(build_module(datamodule), datamodule, steps, warmup),
        "lightning": lightning,
    }
    if args.bf16:
        loops["lightning bf16-mixed"] = lambda: lightning(precision="bf16-mixed")
    if args.fused_adam:
        loops["plain fused-adam"] = lambda: plain_loop(
            build_module(datamodule, adam_impl="fused"), datamodule, steps, warmup
        )
    if args.fused_adam and args.bf16:
        loops["lightning bf16-mixed fused-adam"] = lambda: lightning("fused", "bf16-mixed")
    if compiled is not None:
        loops["plain compiled"] = lambda: plain_loop(compiled, datamodule, steps, warmup)
    if args.fast:  # conf/presets/fast.yaml: compile=default, algo.adam_impl=fused
        loops["lightning fast"] = lambda: lightning("fused", compile_mode="default")
        if args.bf16:
            loops["lightning fast bf16-mixed"] = lambda: lightning("fused", "bf16-mixed", "default")
    runs: dict[str, list[float]] = {key: [] for key in loops}
    for _ in range(args.repeats):  # alternating, so a slow spell of the machine hits every loop
        for key, loop in loops.items():
            gc.collect()
            runs[key].append(loop())
    median = {key: statistics.median(values) for key, values in runs.items()}
    text = ", ".join(f"{key} {value:.1f}" for key, value in median.items())
    print(f"[{name}] upd/s (median of {args.repeats}): {text}")
    print(
        f"[{name}] lightning / reference {median['lightning'] / median['reference']:.2f}x, "
        f"lightning / plain {median['lightning'] / median['plain']:.2f}x, "
        f"plain / reference {median['plain'] / median['reference']:.2f}x"
    )
    written = median["reference as written"]
    print(
        f"[{name}] lightning / reference as written {median['lightning'] / written:.2f}x, "
        f"reference / reference as written {median['reference'] / written:.2f}x"
    )
    if args.bf16:
        print(
            f"[{name}] bf16-mixed / fp32 (lightning) "
            f"{median['lightning bf16-mixed'] / median['lightning']:.2f}x"
        )
    for key in ("plain fused-adam", "plain compiled"):
        if key in median:
            print(f"[{name}] {key} / plain {median[key] / median['plain']:.2f}x")
    for key in (
        "lightning bf16-mixed",
        "lightning bf16-mixed fused-adam",
        "lightning fast",
        "lightning fast bf16-mixed",
    ):
        if key in median:
            print(
                f"[{name}] {key} / reference {median[key] / median['reference']:.2f}x, "
                f"/ reference as written {median[key] / written:.2f}x, "
                f"/ lightning {median[key] / median['lightning']:.2f}x"
            )
    print(f"[{name}] runs: { {k: [round(x, 1) for x in v] for k, v in runs.items()} }")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed updates per run")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each loop")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=100, help="the Lightning loop logs this often")
    parser.add_argument("--shapes", nargs="*", default=["5m_vs_6m", "Hopper-3x1"])
    parser.add_argument("--bf16", action="store_true", help="also time the Lightning loop in bf16-mixed")
    parser.add_argument(
        "--compile", action="store_true", help="also time the plain loop with compute_losses torch.compile'd"
    )
    parser.add_argument("--fused-adam", action="store_true", help="also time the plain loop with fused Adam")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="also time the Lightning loop under conf/presets/fast.yaml (compiled update, fused Adam)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_summary())
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shapes:
            time_shape(name, args, Path(tmp))


if __name__ == "__main__":
    main()
