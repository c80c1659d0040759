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
import logging
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
from omiga_pl.callbacks.checkpoint import AtomicCheckpointIO, UpdateCheckpoint
from omiga_pl.callbacks.evaluation import EVAL_FILE, FINAL_FILE, EvaluationCallback
from omiga_pl.cli import parser_named
from omiga_pl.config import TrainerConfig, final_episodes, load_config, to_container
from omiga_pl.data.compat import check_card_matches_env
from omiga_pl.data.datamodule import OfflineMARLDataModule
from omiga_pl.data.formats.native import read_card
from omiga_pl.data.obs_norm import ObservationNormalizer, resolve_obs_normalization
from omiga_pl.data.paths import resolve_data_path
from omiga_pl.envs import FAMILIES, env_options, env_spec, make_env
from omiga_pl.envs.normalized import NormalizedObservations
from omiga_pl.errors import ConfigError, DatasetError, OmigaError, one_line
from omiga_pl.io import atomic_output
from omiga_pl.resume import (
    RESUMABLE_CHANGES,
    check_algorithm_unchanged,
    check_complete,
    check_matches,
    check_resume_compatible,
    read_checkpoint,
    saved_config,
)
from omiga_pl.rundir import RunDirectoryTaken, claim_run_dir, plan_run_dir

__all__ = ["RESUMABLE_CHANGES", "build_config", "check_resume_compatible", "main", "parse_args", "run"]
RUN_NAME_ENV = "OMIGA_PL_RUN_NAME"
# trainer.* keys Lightning interprets (and may reject).
TRAINER_OPTIONS = ("accelerator", "strategy", "precision", "devices", "num_nodes")

# Checkpoints here hold the state *after* update N, which is what resume needs; Lightning
# warns about that for manual optimization. The pytree notice is Lightning's own.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = parser_named("omiga_pl.fit")(prog="python -m omiga_pl.fit", description=__doc__.splitlines()[0])
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
    """The experiment config stored in a checkpoint (checked to be a valid config)."""
    return saved_config(path, read_checkpoint(path))


def prepare(args: argparse.Namespace) -> tuple[DictConfig, dict[str, Any] | None]:
    """The run's config and, on ``--resume``, the checkpoint (read once, checked later)."""
    if not args.resume:
        return load_config(args.config, args.overrides), None
    checkpoint = read_checkpoint(args.resume)
    saved = saved_config(args.resume, checkpoint)
    check_algorithm_unchanged(args.resume, saved, args.overrides)
    config = load_config(
        args.config,
        args.overrides,
        base=None if args.config else saved,
        base_source=f"{args.resume}: checkpoint config",
    )
    config.log.run_name = config.log.run_name or (saved.get("log") or {}).get("run_name")
    check_resume_compatible(args.resume, saved, config)
    return config, checkpoint


def build_config(args: argparse.Namespace) -> DictConfig:
    """The run's config: the schema's defaults under --config files (if any), or the
    checkpoint being resumed; then the overrides."""
    return prepare(args)[0]


def default_run_name(config: DictConfig, card: dict[str, Any], data_path: Path) -> str:
    scenario = config.env.scenario or card.get("scenario", "unknown")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    seeds = "-".join(str(seed) for seed in config.seeds) if config.seeds else config.seed
    return f"{config.algo.name}_{scenario}_{data_path.stem}_s{seeds}_{stamp}"


def datamodule_args(datamodule: OfflineMARLDataModule) -> dict[str, Any]:
    """The constructor arguments ``datamodule`` was built with."""
    keys = (
        "path",
        "batch_size",
        "seed",
        "use_reward_to_go",
        "storage_on_device",
        "env_spec",
        "obs_normalization",
        "reward_scale",
    )
    return {key: getattr(datamodule, key) for key in keys}


def build_callbacks(
    config: DictConfig,
    card: dict[str, Any],
    run_dir: Path,
    family: str,
    scenario: str,
    env_kwargs: dict[str, Any],
    normalizer: ObservationNormalizer | None = None,
) -> tuple[list[L.Callback], EvaluationCallback | None]:
    """Checkpoints every ``log.checkpoint_every`` updates (and at the end); evaluation if on,
    its env's observations mapped by ``normalizer`` (the training data's) when given."""
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
    envs: list[Any] = []

    def shared_env(num_envs: int) -> Any:  # one env for every ensemble member (evaluations run in turn)
        # Each process builds its share of the episodes' slots (split under DDP).
        if not envs:
            env = make_env(family, scenario, num_envs=num_envs, **env_kwargs)
            envs.append(env if normalizer is None else NormalizedObservations(env, normalizer))
        return envs[0]

    def evaluation(seed: int, directory: Path) -> EvaluationCallback:
        return EvaluationCallback(
            make_env=shared_env,
            episodes=config.eval.episodes,
            every=config.eval.every,
            seed=seed + config.eval.seed_offset,
            reference_returns=(low, high) if low is not None and high is not None else None,
            results_file=directory / EVAL_FILE,
            final_episodes=final_episodes(config),
            final_file=directory / FINAL_FILE,
        )

    if config.seeds:
        from omiga_pl.ensemble import EnsembleEvaluation

        members = [evaluation(seed, run_dir / f"seed_{seed}") for seed in config.seeds]
        eval_callback: Any = EnsembleEvaluation(members, config.eval.every)
    else:
        eval_callback = evaluation(config.seed, run_dir)
    return [*callbacks, eval_callback], eval_callback


def build_trainer(config: DictConfig, run_name: str, callbacks: list[L.Callback]) -> L.Trainer:
    """A ``lightning.Trainer`` whose device, strategy and precision come straight from ``trainer.*``.

    Building it writes nothing (the logger and the checkpoint callback create their
    directories on first use); options Lightning rejects become one :class:`ConfigError`
    naming the key.
    """
    trainer_cfg = config.trainer
    try:
        return L.Trainer(
            accelerator=trainer_cfg.accelerator,
            devices=trainer_cfg.devices,
            num_nodes=trainer_cfg.num_nodes,
            strategy=trainer_cfg.strategy,
            precision=trainer_cfg.precision,
            plugins=[AtomicCheckpointIO()],
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
    except Exception as error:  # MisconfigurationException, ValueError, TypeError, ImportError...
        raise trainer_option_error(config, error) from None


def trainer_option_error(config: DictConfig, error: Exception) -> ConfigError:
    """Which ``trainer.*`` key Lightning refused: the first whose default makes the rest construct."""
    options = {key: config.trainer[key] for key in TRAINER_OPTIONS}
    defaults = {key: getattr(TrainerConfig(), key) for key in TRAINER_OPTIONS}
    culprits = [
        key
        for key in TRAINER_OPTIONS
        if options[key] != defaults[key] and _constructs({**options, key: defaults[key]})
    ]
    keys = (
        culprits[:1] or [key for key in TRAINER_OPTIONS if options[key] != defaults[key]] or ["accelerator"]
    )
    found = ", ".join(f"{options[key]!r}" for key in keys)
    named = " and ".join(f"'trainer.{key}'" for key in keys)
    return ConfigError(f"config: key {named}: {one_line(error)[:400]} (found {found})")


def _constructs(options: dict[str, Any]) -> bool:
    """Would ``lightning.Trainer`` accept these device options? (Quietly; writes nothing.)"""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            L.Trainer(
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                **options,
            )
        return True
    except Exception:
        return False
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def resolve_env(config: DictConfig, card: dict[str, Any], data_path: Path) -> tuple[str, str]:
    """Environment family and scenario: the config's, else the dataset card's."""
    check_card_matches_env(data_path, card, config.env.family, config.env.scenario)
    family = config.env.family or card.get("env_family")
    scenario = config.env.scenario or card.get("scenario")
    if family is None or scenario is None:
        raise ConfigError(
            f"{data_path}: the dataset card names no environment; set env.family and env.scenario"
        )
    if family not in FAMILIES:
        if config.env.family is not None:
            raise ConfigError(f"config: key 'env.family': expected one of {list(FAMILIES)}, found '{family}'")
        raise DatasetError(
            data_path,
            "env_family",
            f"the dataset card names environment family '{family}', which omiga_pl cannot run: expected one "
            f"of {list(FAMILIES)} (a dataset for another simulator cannot be evaluated or checked here)",
        )
    return family, scenario


def _spec(config: DictConfig, data_path: Path, family: str, scenario: str, env_kwargs: dict[str, Any]) -> Any:
    try:
        return env_spec(family, scenario, **env_kwargs)
    except ConfigError as error:
        if config.env.scenario is None and "env.scenario" in str(error):
            reason = str(error).split(": ", 1)[-1]
            raise DatasetError(data_path, "scenario", f"dataset card: {reason}") from None
        text = str(error)
        raise ConfigError(text if text.startswith("config: ") else f"config: key {text}") from None


def _own_run(resume: str | None, checkpoint: dict[str, Any] | None, config: DictConfig) -> bool:
    """Is this a resume of the run that lives in ``<log.out_dir>/<log.run_name>``?"""
    if not resume or checkpoint is None:
        return False
    log = (checkpoint.get("omiga_pl_config") or {}).get("log") or {}
    if log.get("run_name") != config.log.run_name:
        return False
    run_dir = (Path(config.log.out_dir) / config.log.run_name).resolve()
    saved_out = log.get("out_dir")
    return Path(resume).resolve().is_relative_to(run_dir) or (
        saved_out is not None and Path(saved_out).resolve() == Path(config.log.out_dir).resolve()
    )


def run(
    config: DictConfig, resume: str | None = None, checkpoint: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Check everything, then claim a run directory and fit; returns a small summary dict.

    Nothing is written before every check has passed: the config, the data against its
    environment, the algorithm against the data, the checkpoint being resumed (complete,
    and from this data), the run directory (free, or this run's own) and the trainer
    options.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    L.seed_everything(config.seed, workers=True, verbose=False)
    data_path = resolve_data_path(config.data.path)
    card = read_card(data_path)
    family, scenario = resolve_env(config, card, data_path)
    env_kwargs = env_options(family, config.env, card, eval_enabled=config.eval.enabled)
    spec = _spec(config, data_path, family, scenario, env_kwargs)
    datamodule = OfflineMARLDataModule(
        data_path,
        batch_size=config.data.batch_size,
        seed=config.seed,
        use_reward_to_go=config.data.reward_to_go,
        storage_on_device=config.data.storage_on_device,
        env_spec=spec,
        obs_normalization=resolve_obs_normalization(config.data.obs_normalization, family, card),
        reward_scale=config.data.reward_scale,
    )
    if config.seeds:
        from omiga_pl import ensemble

        datamodule = ensemble.EnsembleDataModule(**datamodule_args(datamodule), seeds=config.seeds)
    storage = datamodule.load()

    def build(seed: int) -> Any:
        return algorithm_class(config.algo.name)(
            dims=storage.dims.as_dict(),
            algo=to_container(config)["algo"],
            log_every=config.log.log_every,
            seed=seed,
        )

    # Built before anything is written: an algorithm that refuses the data (its action
    # type, say) leaves no run directory behind.
    if config.seeds:
        members = ensemble.build_members(build, config.seeds)
        module = ensemble.EnsembleModule(members, config.seeds, log_every=config.log.log_every)
    else:
        module = build(config.seed)
    if config.compile:
        module.compute_losses = torch.compile(module.compute_losses, mode=config.compile)
    notes: list[str] = []
    if resume:
        checkpoint = checkpoint if checkpoint is not None else read_checkpoint(resume)
        check_complete(resume, checkpoint, type(datamodule).__qualname__)
        notes = check_matches(resume, checkpoint, module, datamodule)

    # DDP children re-run this script; they must log to the run directory rank 0 chose.
    rank_zero = is_rank_zero()
    inherited = None if rank_zero else os.environ.get(RUN_NAME_ENV)
    explicit = config.log.run_name is not None or inherited is not None
    wanted = config.log.run_name or inherited or default_run_name(config, card, data_path)
    config.log.run_name = wanted
    own_run = _own_run(resume, checkpoint, config)
    checkpoint = None  # Lightning reads the file itself
    while True:
        if rank_zero:
            run_dir = plan_run_dir(config.log.out_dir, wanted, explicit, own_run)
            fresh = not run_dir.exists()
        else:
            run_dir, fresh = Path(config.log.out_dir) / wanted, False
        config.log.run_name = run_dir.name
        callbacks, eval_callback = build_callbacks(
            config, card, run_dir, family, scenario, env_kwargs, datamodule.normalizer
        )
        trainer = build_trainer(config, run_dir.name, callbacks)
        if not rank_zero:
            claim = None
            break
        try:
            claim = claim_run_dir(run_dir, fresh)
            break
        except RunDirectoryTaken:
            if explicit:
                raise
    run_name = run_dir.name
    if rank_zero and run_name != wanted:
        print(f"[omiga_pl] run name {wanted} is taken; this run is {run_name}", flush=True)
    os.environ[RUN_NAME_ENV] = run_name
    module.experiment_config = to_container(config)
    if config.seeds:
        module.seed_loggers = ensemble.seed_loggers(run_dir, config.seeds)
    try:
        if rank_zero:
            with atomic_output(run_dir / "config.yaml", overwrite=True) as tmp:
                tmp.write_text(OmegaConf.to_yaml(config))
            for seed in config.seeds or []:
                # Each member's directory is shaped like a single-seed run of its seed.
                (run_dir / f"seed_{seed}").mkdir(parents=True, exist_ok=True)
                member_config = config.copy()
                member_config.seed, member_config.seeds = seed, None
                with atomic_output(run_dir / f"seed_{seed}" / "config.yaml", overwrite=True) as tmp:
                    tmp.write_text(OmegaConf.to_yaml(member_config))
            print(
                f"[omiga_pl] dataset {data_path}: {storage.n_transitions} transitions, "
                f"{card.get('n_episodes', '?')} episodes, {storage.nbytes() / 2**20:.1f} MiB in memory, "
                f"loaded in {datamodule.load_seconds:.2f}s; observations {datamodule.obs_normalization}"
                f"{'' if datamodule.normalizer is None else f' ({datamodule.normalizer.kind})'}; "
                f"env {family}/{scenario}; run dir {run_dir}",
                flush=True,
            )
            for note in notes:
                print(f"[omiga_pl] note: {note}", flush=True)
    except BaseException:
        if claim is not None:
            claim.rollback()
        raise
    try:
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
        wall = time.perf_counter() - start
    finally:
        if claim is not None:
            claim.release()
    checkpoints = callbacks[0]
    last = getattr(checkpoints, "last_model_path", "") or str(run_dir / "checkpoints" / "last.ckpt")
    summary = {
        "run_dir": str(run_dir),
        "global_step": trainer.global_step,
        "wall_seconds": wall,
        "last_checkpoint": last,
        "eval": eval_callback.history[-1] if getattr(eval_callback, "history", None) else None,
        "final_eval": getattr(eval_callback, "final", None),
    }
    if trainer.is_global_zero:
        print(
            f"[omiga_pl] done: {trainer.global_step} updates in {wall:.1f}s; last checkpoint "
            f"{last}; watch with: tensorboard --logdir {config.log.out_dir}",
            flush=True,
        )
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config, checkpoint = prepare(args)
        run(config, resume=args.resume, checkpoint=checkpoint)
    except OmigaError as error:
        print(f"omiga_pl.fit: error: {one_line(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
