"""Bundled behaviour policies: trained actors small enough to ship, and sampling from them.

A *policy directory* (``data/policies/<name>/``) holds

* ``card.json``: what the policy is (scenario, algorithm, training steps, seed, its
  sampled return, the exploration noise it samples with, the dataset ``reference_returns``
  used for normalised scores) and a ``schedule``: a list of *segments*, each a policy file
  (or ``null``: uniform random actions) and its share of the transitions. An ``expert`` or
  ``medium`` policy has one segment; a ``medium-replay`` one has a segment per training
  checkpoint up to the medium one (see :func:`export_replay`);
* ``policy_<step>.npz``: one deterministic TD3 actor: the weights of its MLP
  (``w0, b0, w1, b1, ...``; ReLU between, tanh after the last layer, as stable-baselines3's
  TD3 actor) and its observation normaliser (``obs_mean``, ``obs_var``, ``obs_eps``,
  ``obs_clip``, as VecNormalize's ``normalize_obs``).

The actor runs in numpy (float64), so regenerating data needs neither stable-baselines3
nor torch. Actions are sampled as the bundled datasets were (``noise="gaussian"``: greedy
action + N(0, std) noise, clipped to [-1, 1], so a share of them is exactly +-1), or with
the noise added before the squashing tanh, as SAC samples (``noise="squashed"``:
``tanh(u + eps)`` with ``u`` the actor's pre-tanh output), which never returns exactly
+-1 (the result is capped at the largest float32 below 1 in magnitude).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omiga_pl.errors import DatasetError

CARD = "card.json"
NOISE_KINDS = ("gaussian", "squashed")
# Largest float32 below 1: a squashed sample is stored as float32 and must not round to 1.
BELOW_ONE = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


@dataclass
class NumpyActor:
    """A deterministic MLP actor with its observation normaliser.

    ``pre_tanh(global_states [E, G]) -> [E, A]``; the greedy action is its tanh.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    obs_mean: np.ndarray
    obs_var: np.ndarray
    obs_eps: float
    obs_clip: float

    def pre_tanh(self, global_states: np.ndarray) -> np.ndarray:
        x = np.asarray(global_states, dtype=np.float64)
        x = np.clip((x - self.obs_mean) / np.sqrt(self.obs_var + self.obs_eps), -self.obs_clip, self.obs_clip)
        # stable-baselines3 feeds float32 observations; match its rounding.
        x = x.astype(np.float32).astype(np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w.astype(np.float64).T + b.astype(np.float64)
            if i < len(self.weights) - 1:
                x = np.maximum(x, 0.0)
        return x

    def save(self, path: Path, dtype: str = "float32") -> None:
        arrays: dict[str, np.ndarray] = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w.astype(dtype), b.astype(dtype)
        arrays.update(
            obs_mean=self.obs_mean.astype(np.float64),
            obs_var=self.obs_var.astype(np.float64),
            obs_eps=np.float64(self.obs_eps),
            obs_clip=np.float64(self.obs_clip),
        )
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> NumpyActor:
        try:
            z = np.load(path)
        except (OSError, ValueError) as error:
            raise DatasetError(path, "policy", f"expected a policy .npz file ({error})") from None
        layers = sorted(int(k[1:]) for k in z.files if k.startswith("w"))
        missing = [k for k in ("obs_mean", "obs_var", "obs_eps", "obs_clip") if k not in z.files]
        if not layers or missing or layers != list(range(len(layers))):
            found = sorted(z.files)
            raise DatasetError(path, "policy", f"expected arrays w0, b0, ... and obs_*, found {found}")
        return NumpyActor(
            weights=[z[f"w{i}"] for i in layers],
            biases=[z[f"b{i}"] for i in layers],
            obs_mean=z["obs_mean"],
            obs_var=z["obs_var"],
            obs_eps=float(z["obs_eps"]),
            obs_clip=float(z["obs_clip"]),
        )


def actor_from_sb3(behaviour_dir: Path, step: int) -> NumpyActor:
    """The TD3 actor and normaliser of checkpoint ``step`` of a behaviour run."""
    from omiga_pl.generate.behaviour import behaviour_algo_class

    progress = json.loads((behaviour_dir / "progress.json").read_text())
    if progress["algo"] != "td3":
        raise DatasetError(behaviour_dir / "progress.json", "algo", f"expected td3, found {progress['algo']}")
    model = behaviour_algo_class("td3").load(str(behaviour_dir / f"ckpt_{step}.zip"), device="cpu")
    linears = [m for m in model.actor.mu if hasattr(m, "weight")]
    with open(behaviour_dir / f"vecnorm_{step}.pkl", "rb") as handle:
        vecnorm = pickle.load(handle)
    return NumpyActor(
        weights=[m.weight.detach().numpy().copy() for m in linears],
        biases=[m.bias.detach().numpy().copy() for m in linears],
        obs_mean=np.asarray(vecnorm.obs_rms.mean, dtype=np.float64),
        obs_var=np.asarray(vecnorm.obs_rms.var, dtype=np.float64),
        obs_eps=float(vecnorm.epsilon),
        obs_clip=float(vecnorm.clip_obs),
    )


def joint_policy(actor: NumpyActor | None, noise: str, noise_std: float, action_dim: int) -> Any:
    """``policy(global_states [E, G], rng) -> joint actions [E, A]`` for the generator's
    rollout; ``actor=None``: uniform random actions in [-1, 1]."""
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise: expected one of {NOISE_KINDS}, found {noise!r}")

    def act(global_states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if actor is None:
            return rng.uniform(-1.0, 1.0, (len(global_states), action_dim))
        u = actor.pre_tanh(global_states)
        eps = rng.normal(0.0, noise_std, u.shape) if noise_std > 0 else 0.0
        if noise == "squashed":
            return np.clip(np.tanh(u + eps), -BELOW_ONE, BELOW_ONE)
        return np.clip(np.tanh(u) + eps, -1.0, 1.0)

    return act


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_policy_card(policy_dir: Path) -> dict[str, Any]:
    """The card of a policy directory, its segments' files checked against their sha256."""
    path = Path(policy_dir) / CARD
    if not path.is_file():
        raise DatasetError(path, "card", "expected a bundled policy directory with card.json")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetError(path, "card", f"expected JSON ({error})") from None
    for key in ("scenario", "level", "schedule", "noise_std", "reference_returns"):
        if key not in card:
            raise DatasetError(path, key, "missing from the policy card")
    for i, segment in enumerate(card["schedule"]):
        if segment.get("policy") is None:
            continue
        file = Path(policy_dir) / segment["policy"]
        if not file.is_file():
            raise DatasetError(path, f"schedule[{i}].policy", f"file {file} does not exist")
        if file_sha256(file) != segment["sha256"]:
            raise DatasetError(file, "sha256", f"expected {segment['sha256']} (card.json), the file differs")
    return card


def segment_transitions(schedule: list[dict[str, Any]], total: int) -> list[int]:
    """Transitions per segment: ``total`` split in proportion to each segment's ``weight``
    (largest-remainder rounding, so the parts sum to ``total``)."""
    weights = np.asarray([float(s["weight"]) for s in schedule])
    exact = total * weights / weights.sum()
    parts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - parts), kind="stable")[: total - parts.sum()]:
        parts[i] += 1
    return parts.tolist()
