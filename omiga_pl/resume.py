"""Checks a checkpoint must pass before a run resumes from it (and before anything is written).

A resumed run must continue exactly: same algorithm and data settings, same data
(content fingerprint, not only size), and a checkpoint that holds every piece of state
Lightning restores: the weights, the optimizer's moments, the loops' update count, the
data module's state. Each check raises one :class:`~omiga_pl.errors.CheckpointError`
naming the checkpoint, the field and what was expected and found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from omiga_pl.algos.base import optimizer_of
from omiga_pl.config import to_container
from omiga_pl.errors import CheckpointError, ConfigError, one_line

# Config sections that may differ between a checkpoint and the run that resumes it.
RESUMABLE_CHANGES = ("trainer", "eval", "log", "data.path", "data.storage_on_device", "threads")
# Where Lightning keeps the update count of a manually optimised module.
STEP_PROGRESS = "epoch_loop.manual_optimization.optim_step_progress"
# Top-level checkpoint fields a resume needs, and what each holds.
REQUIRED_FIELDS = {
    "omiga_pl_config": "the run's config",
    "state_dict": "the networks' weights",
    "optimizer_states": "the optimizer's state (Adam moments)",
    "loops": "the training loop's progress (the update count)",
    "global_step": "the update count",
    "pytorch-lightning_version": "the Lightning version that wrote it",
    "hyper_parameters": "the network sizes",
}


def read_checkpoint(path: str) -> dict[str, Any]:
    """Load a checkpoint file as a mapping; one clear error for anything else."""
    file = Path(path)
    if file.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file (.ckpt)")
    if not file.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # corrupt / truncated / not a torch file
        reason = one_line(error).split(". This is an internal")[0][:300]
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {reason}"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path}: not a Lightning checkpoint: expected a mapping of fields, "
            f"found {type(checkpoint).__name__}"
        )
    return checkpoint


def saved_config(path: str, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The experiment config stored in a checkpoint, itself a valid config."""
    from omiga_pl.config import load_config

    if "omiga_pl_config" not in checkpoint:
        raise CheckpointError(f"{path}: field 'omiga_pl_config' missing: not an omiga_pl checkpoint")
    saved = checkpoint["omiga_pl_config"]
    if not isinstance(saved, dict):
        raise CheckpointError(
            f"{path}: field 'omiga_pl_config': expected the run's config (a mapping), "
            f"found {type(saved).__name__}"
        )
    try:
        load_config(base=saved, base_source=f"{path}: checkpoint config")
    except ConfigError as error:
        text = str(error)
        if text.startswith("config: "):  # a value check: say it came from the checkpoint
            text = f"{path}: checkpoint config: {text[len('config: ') :]}"
        raise CheckpointError(text) from None
    return saved


def check_algorithm_unchanged(path: str, saved: dict[str, Any], overrides: list[str]) -> None:
    """``algo.name`` may not change on resume (checked first: every other algo key follows it)."""
    name = (saved.get("algo") or {}).get("name")
    for item in overrides:
        key, _, value = item.partition("=")
        if key.strip() == "algo.name" and value.strip() != name:
            raise CheckpointError(
                f"{path}: config key 'algo.name' was {name!r} in the checkpoint "
                f"but is {value.strip()!r} now; "
                "a resumed run must train the same thing"
            )


def check_resume_compatible(path: str, saved: dict[str, Any], current: DictConfig) -> None:
    """Refuse to resume under a config that changes what was being trained."""
    flat_saved = _flatten(saved)
    flat_now = _flatten(to_container(current))
    for key in sorted(set(flat_saved) | set(flat_now)):
        if any(key == allowed or key.startswith(allowed + ".") for allowed in RESUMABLE_CHANGES):
            continue
        if flat_saved.get(key) != flat_now.get(key):
            raise CheckpointError(
                f"{path}: config key '{key}' was {_shown(flat_saved.get(key))} in the checkpoint but is "
                f"{_shown(flat_now.get(key))} now; a resumed run must train the same thing"
            )


def _shown(value: Any) -> str:
    """A config value as the message shows it: None in YAML's spelling (null: picked by the run)."""
    return "null" if value is None else repr(value)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_complete(path: str, checkpoint: dict[str, Any], datamodule_key: str) -> None:
    """Every piece of state needed to continue exactly is there, and the loops agree with the step."""
    for key, what in {
        **REQUIRED_FIELDS,
        datamodule_key: "the data module's state (sampler, fingerprint)",
    }.items():
        if key not in checkpoint:
            raise CheckpointError(
                f"{path}: field '{key}' missing ({what}): "
                "the run cannot continue exactly from this checkpoint"
            )
    step = checkpoint["global_step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path}: field 'global_step': expected a non-negative integer, found {step!r}")
    loops = checkpoint["loops"]
    fit_loop = loops.get("fit_loop") if isinstance(loops, dict) else None
    progress = fit_loop.get(STEP_PROGRESS) if isinstance(fit_loop, dict) else None
    try:
        completed = progress["total"]["completed"]
    except (KeyError, TypeError):
        raise CheckpointError(
            f"{path}: field 'loops.fit_loop.{STEP_PROGRESS}' missing: the update count would restart at 0 "
            "on trained weights"
        ) from None
    if completed != step:
        raise CheckpointError(
            f"{path}: field 'global_step' is {step} but the loops record {completed} updates: "
            "the checkpoint is inconsistent"
        )
    hyper = checkpoint["hyper_parameters"]
    if not isinstance(hyper, dict) or not isinstance(hyper.get("dims"), dict):
        raise CheckpointError(
            f"{path}: field 'hyper_parameters': expected the network sizes (a mapping with 'dims'), "
            f"found {type(hyper).__name__}"
        )


def check_matches(path: str, checkpoint: dict[str, Any], module: Any, datamodule: Any) -> list[str]:
    """The checkpoint fits this module and this data: sizes, every weight, the optimizer, the data.

    Returns notes about what could not be checked (an older checkpoint without a data
    fingerprint).
    """
    from dataclasses import asdict

    saved_dims, dims = checkpoint["hyper_parameters"]["dims"], asdict(module.dims)
    if saved_dims != dims:
        raise CheckpointError(
            f"{path}: field 'hyper_parameters.dims': network sizes {saved_dims} do not match this dataset's "
            f"{dims}; resume with the dataset the run started with"
        )
    _check_weights(path, checkpoint["state_dict"], module.state_dict())
    _check_optimizer(path, checkpoint["optimizer_states"], module)
    key = type(datamodule).__qualname__
    return datamodule.check_state(checkpoint[key], path)


def _check_weights(path: str, saved: Any, expected: dict[str, torch.Tensor]) -> None:
    if not isinstance(saved, dict):
        raise CheckpointError(
            f"{path}: field 'state_dict': expected the weights (a mapping of names to tensors), "
            f"found {type(saved).__name__}"
        )
    missing = [k for k in expected if k not in saved]
    extra = [k for k in saved if k not in expected]
    if missing or extra:
        parts = ([f"missing {missing[:3]}{' …' if len(missing) > 3 else ''}"] if missing else []) + (
            [f"unexpected {extra[:3]}{' …' if len(extra) > 3 else ''}"] if extra else []
        )
        raise CheckpointError(
            f"{path}: field 'state_dict': weights do not match this algorithm's networks: {'; '.join(parts)}"
        )
    for name, tensor in expected.items():
        value = saved[name]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: field 'state_dict': weight '{name}': expected a tensor, "
                f"found {type(value).__name__}"
            )
        if value.shape != tensor.shape:
            raise CheckpointError(
                f"{path}: field 'state_dict': weight '{name}': expected shape {list(tensor.shape)}, "
                f"found {list(value.shape)}"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(
                f"{path}: field 'state_dict': weight '{name}' holds non-finite values (NaN or inf): the run "
                "diverged before this checkpoint"
            )


def _check_optimizer(path: str, saved: Any, module: Any) -> None:
    if not isinstance(saved, list) or len(saved) != 1:
        found = f"{len(saved)} optimizer states" if isinstance(saved, list) else type(saved).__name__
        raise CheckpointError(
            f"{path}: field 'optimizer_states': expected the state of 1 optimizer, found {found}"
        )
    optimizer = optimizer_of(module.configure_optimizers())  # without its LR schedule, if any
    try:
        optimizer.load_state_dict(saved[0])
    except Exception as error:  # ValueError / KeyError from torch on a mismatched structure
        raise CheckpointError(f"{path}: field 'optimizer_states': {one_line(error)}") from None
    for group in optimizer.param_groups:
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                    raise CheckpointError(
                        f"{path}: field 'optimizer_states': '{name}' of group '{group.get('name')}' "
                        "has shape "
                        f"{list(value.shape)}, its parameter {list(param.shape)}"
                    )
