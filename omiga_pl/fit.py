"""Train an offline MARL algorithm: ``python -m omiga_pl.fit [--config conf/smac.yaml] [key=value ...]``.

Reads the config (the schema's defaults, YAML files merged onto them in order, then dotlist
overrides; without ``--config``, e.g. ``python -m omiga_pl.fit data.path=my.h5``, the
environment comes from the dataset card), loads and checks
the dataset against its environment, builds the DataModule, the algorithm and a
``lightning.Trainer`` configured straight from ``trainer.*``, and fits. ``--resume
PATH.ckpt`` continues a run exactly, in its own run directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from omiga_pl.algos import algorithm_class
from omiga_pl.callbacks.checkpoint import UpdateCheckpoint
from omiga_pl.callbacks.evaluation import EvaluationCallback
from omiga_pl.config import load_config, to_container
from omiga_pl.data.compat import check_card_matches_env
from omiga_pl.data.datamodule import OfflineMARLDataModule
from omiga_pl.data.formats.native import read_card
from omiga_pl.data.paths import resolve_data_path
from omiga_pl.envs import env_options, env_spec, make_env
from omiga_pl.errors import CheckpointError, ConfigError, OmigaError
from omiga_pl.io import atomic_output

# Config sections that may differ between a checkpoint and the run that resumes it.
RESUMABLE_CHANGES = ("trainer", "eval", "log", "data.path", "data.storage_on_device", "threads")
RUN_NAME_ENV = "OMIGA_PL_RUN_NAME"

# Checkpoints here hold the state *after* update N, which is what resume needs; Lightning
# warns about that for manual optimization. The pytree notice is Lightning's own.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m omiga_pl.fit", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="YAML config; repeat to merge several (none: the schema's defaults, env from the dataset card)",
    )
    parser.add_argument("--resume", metavar="PATH.ckpt", help="continue the run saved in this checkpoint")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (OmegaConf dotlist)")
    # Intermixed: overrides may stand before, between or after the --config options.
    return parser.parse_intermixed_args(argv)


def is_rank_zero() -> bool:
    """Before the Trainer exists: are we the launching process (not a DDP child)?"""
    return all(os.environ.get(var, "0") == "0" for var in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def load_resume_config(path: str) -> dict[str, Any]:
    """The experiment config stored in a checkpoint."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # corrupt / not a torch file
        raise CheckpointError(f"{path}: not a readable checkpoint: {error}") from None
    if "omiga_pl_config" not in checkpoint:
        raise CheckpointError(f"{path}: field 'omiga_pl_config' missing: not an omiga_pl checkpoint")
    return checkpoint["omiga_pl_config"]


def check_resume_compatible(path: str, saved: dict[str, Any], current: DictConfig) -> None:
    """Refuse to resume under a config that changes what was being trained."""
    flat_saved = _flatten(saved)
    flat_now = _flatten(to_container(current))
    for key in sorted(set(flat_saved) | set(flat_now)):
        if any(key == allowed or key.startswith(allowed + ".") for allowed in RESUMABLE_CHANGES):
            continue
        if flat_saved.get(key) != flat_now.get(key):
            raise CheckpointError(
                f"{path}: config key '{key}' was {flat_saved.get(key)!r} in the checkpoint but is "
                f"{flat_now.get(key)!r} now; a resumed run must train the same thing"
            )


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def build_config(args: argparse.Namespace) -> DictConfig:
    """The run's config: the schema's defaults under --config files (if any), or the
    checkpoint being resumed; then the overrides."""
    if not args.resume:
        return load_config(args.config, args.overrides)
    saved = load_resume_config(args.resume)
    config = load_config(args.config, args.overrides, base=None if args.config else saved)
    config.log.run_name = config.log.run_name or saved["log"]["run_name"]
    check_resume_compatible(args.resume, saved, config)
    return config


def default_run_name(config: DictConfig, card: dict[str, Any], data_path: Path) -> str:
    scenario = config.env.scenario or card.get("scenario", "unknown")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{config.algo.name}_{scenario}_{data_path.stem}_s{config.seed}_{stamp}"


def build_callbacks(
    config: DictConfig,
    card: dict[str, Any],
    run_dir: Path,
    family: str,
    scenario: str,
    env_kwargs: dict[str, Any],
) -> tuple[list[L.Callback], EvaluationCallback | None]:
    """Checkpoints every ``log.checkpoint_every`` updates (and at the end); evaluation if on."""
    callbacks: list[L.Callback] = [
        UpdateCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="step={step}",
            auto_insert_metric_name=False,
            every_n_train_steps=config.log.checkpoint_every,
            save_top_k=-1,
            save_last=True,
        )
    ]
    if not config.eval.enabled:
        return callbacks, None
    references = card.get("reference_returns") or {}
    # Normalised score: 0 = random behaviour, 100 = the card's expert (or, for generated
    # SMAX data, the best behaviour policy).
    low, high = references.get("random"), references.get("expert", references.get("behaviour_best"))
    eval_callback = EvaluationCallback(
        make_env=lambda: make_env(family, scenario, num_envs=config.eval.episodes, **env_kwargs),
        every=config.eval.every,
        seed=config.seed + config.eval.seed_offset,
        reference_returns=(low, high) if low is not None and high is not None else None,
        results_file=run_dir / "eval.jsonl",
    )
    return [*callbacks, eval_callback], eval_callback


def build_trainer(config: DictConfig, run_name: str, callbacks: list[L.Callback]) -> L.Trainer:
    """A ``lightning.Trainer`` whose device, strategy and precision come straight from ``trainer.*``."""
    trainer_cfg = config.trainer
    return L.Trainer(
        accelerator=trainer_cfg.accelerator,
        devices=trainer_cfg.devices,
        num_nodes=trainer_cfg.num_nodes,
        strategy=trainer_cfg.strategy,
        precision=trainer_cfg.precision,
        max_steps=trainer_cfg.max_steps,
        max_epochs=-1,  # offline RL: a number of updates over an endless sampler
        deterministic=trainer_cfg.deterministic,
        enable_progress_bar=trainer_cfg.enable_progress_bar,
        logger=TensorBoardLogger(
            save_dir=config.log.out_dir, name=run_name, version="", default_hp_metric=False
        ),
        callbacks=callbacks,
        log_every_n_steps=config.log.log_every,  # the module and eval callback write their own scalars
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        enable_model_summary=is_rank_zero(),
    )


def run(config: DictConfig, resume: str | None = None) -> dict[str, Any]:
    """Build everything from ``config`` and fit; returns a small summary dict."""
    if config.threads:
        torch.set_num_threads(config.threads)
    L.seed_everything(config.seed, workers=True, verbose=False)
    data_path = resolve_data_path(config.data.path)
    card = read_card(data_path)
    check_card_matches_env(data_path, card, config.env.family, config.env.scenario)
    family = config.env.family or card.get("env_family")
    scenario = config.env.scenario or card.get("scenario")
    if family is None or scenario is None:
        raise ConfigError(
            f"{data_path}: the dataset card names no environment; set env.family and env.scenario"
        )
    env_kwargs = env_options(family, config.env, card, eval_enabled=config.eval.enabled)
    spec = env_spec(family, scenario, **env_kwargs)
    datamodule = OfflineMARLDataModule(
        data_path,
        batch_size=config.data.batch_size,
        seed=config.seed,
        use_reward_to_go=config.data.reward_to_go,
        storage_on_device=config.data.storage_on_device,
        env_spec=spec,
    )
    storage = datamodule.load()
    # Built before anything is written: an algorithm that refuses the data (its action
    # type, say) leaves no run directory behind.
    module = algorithm_class(config.algo.name)(
        dims=storage.dims.as_dict(),
        algo=to_container(config)["algo"],
        log_every=config.log.log_every,
        seed=config.seed,
    )

    # DDP children re-run this script; they must log to the run directory rank 0 chose.
    inherited = None if is_rank_zero() else os.environ.get(RUN_NAME_ENV)
    run_name = config.log.run_name or inherited or default_run_name(config, card, data_path)
    os.environ[RUN_NAME_ENV] = run_name
    config.log.run_name = run_name
    run_dir = Path(config.log.out_dir) / run_name
    resolved = to_container(config)
    if is_rank_zero():
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(run_dir / "config.yaml", overwrite=True) as tmp:
            tmp.write_text(OmegaConf.to_yaml(config))
        print(
            f"[omiga_pl] dataset {data_path}: {storage.n_transitions} transitions, "
            f"{card.get('n_episodes', '?')} episodes, {storage.nbytes() / 2**20:.1f} MiB in memory, "
            f"loaded in {datamodule.load_seconds:.2f}s; env {family}/{scenario}; run dir {run_dir}",
            flush=True,
        )

    module.experiment_config = resolved

    callbacks, eval_callback = build_callbacks(config, card, run_dir, family, scenario, env_kwargs)
    trainer = build_trainer(config, run_name, callbacks)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    wall = time.perf_counter() - start
    summary = {
        "run_dir": str(run_dir),
        "global_step": trainer.global_step,
        "wall_seconds": wall,
        "last_checkpoint": str(run_dir / "checkpoints" / "last.ckpt"),
        "eval": eval_callback.history[-1] if eval_callback and eval_callback.history else None,
    }
    if trainer.is_global_zero:
        print(
            f"[omiga_pl] done: {trainer.global_step} updates in {wall:.1f}s; last checkpoint "
            f"{summary['last_checkpoint']}; watch with: tensorboard --logdir {config.log.out_dir}",
            flush=True,
        )
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = build_config(args)
        run(config, resume=args.resume)
    except OmigaError as error:
        print(f"omiga_pl.fit: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
