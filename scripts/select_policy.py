"""Choose OMIGA's continuous policy family and weight cap by measurement on MaMuJoCo files.

Each cell is one ``python -m omiga_pl.fit --config conf/mamujoco.yaml`` run (one torch
thread, ``--jobs`` side by side) of a *variant* (a list of ``algo.*`` overrides, below)
on a *level* (a dataset file), in ``OUT/<level>/<variant>/seed_<s>/`` (so that
``python -m omiga_pl.results OUT`` tabulates and plots them by variant). A finished cell is
skipped, so the command can be rerun to add seeds or variants. The table gives, per level
and variant, the final evaluated return (``final_eval.json``) and the mean over the second
half of the run's periodic evaluations (mean over seeds; ``± std`` with several), beside
the dataset's mean return, and OMIGA's policy-weight diagnostics over the second half of
training (``policy_weight_max``, ``z_clamped_share``: the share of weights at z's clamp
e^10, ``policy_weight_ess``).

    python scripts/select_policy.py --out runs/select --steps 5000 --seeds 0 \\
        --variants reference gtm_state gtm_param --levels expert medium_replay
    python scripts/select_policy.py --out runs/select --table-only --markdown docs/x.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omiga_pl.data.formats.native import read_card  # noqa: E402

LEVELS = {
    "expert": "data/mamujoco_hopper_3x1_expert.h5",
    "medium": "data/mamujoco_hopper_3x1_medium.h5",
    "medium_replay": "data/mamujoco_hopper_3x1_medium_replay.h5",
    "medium_expert": "data/mamujoco_hopper_3x1_medium_expert.h5",
}

_REF = ["algo.policy=tanh_gaussian", "algo.policy_log_std=state", "algo.action_eps=1e-7"]
_GTM = ["algo.policy=gaussian_tanh_mean"]
# The default policy and its rate schedule on standardised observations (the `_std` variants).
_POLICY_STD = [
    *_GTM,
    "algo.policy_log_std=param",
    "algo.policy_lr_schedule=cosine",
    "data.obs_normalization=standardize",
]
_OMIGA_STD = ["algo.name=omiga", *_POLICY_STD]
VARIANTS: dict[str, list[str]] = {
    # The reference's computation (conf/presets/reference.yaml).
    "reference": ["algo.name=omiga", *_REF, "algo.policy_weight_cap=0"],
    # The reference's policy with saturated actions clipped at 1 - 1e-3 (atanh 3.8, not 8.3).
    "ref_eps1e-3": ["algo.name=omiga", *_REF[:2], "algo.action_eps=1e-3", "algo.policy_weight_cap=0"],
    "ref_cap100": ["algo.name=omiga", *_REF, "algo.policy_weight_cap=100"],
    # Gaussian with tanh mean, log-prob of the raw action; log-std per state or one vector.
    "gtm_state": ["algo.name=omiga", *_GTM, "algo.policy_log_std=state", "algo.policy_weight_cap=0"],
    "gtm_param": ["algo.name=omiga", *_GTM, "algo.policy_log_std=param", "algo.policy_weight_cap=0"],
    "gtm_state_cap100": ["algo.name=omiga", *_GTM, "algo.policy_log_std=state", "algo.policy_weight_cap=100"],
    "gtm_param_cap100": ["algo.name=omiga", *_GTM, "algo.policy_log_std=param", "algo.policy_weight_cap=100"],
    # A stronger advantage weighting (z = w (Q - V) / alpha; the reference's alpha is 10).
    "gtm_state_alpha1": ["algo.name=omiga", *_GTM, "algo.policy_log_std=state", "algo.alpha=1"],
    "gtm_param_alpha1": ["algo.name=omiga", *_GTM, "algo.policy_log_std=param", "algo.alpha=1"],
    "gtm_state_a1c100": [
        *["algo.name=omiga", *_GTM, "algo.policy_log_std=state", "algo.alpha=1", "algo.policy_weight_cap=100"]
    ],
    "gtm_param_a1c100": [
        *["algo.name=omiga", *_GTM, "algo.policy_log_std=param", "algo.alpha=1", "algo.policy_weight_cap=100"]
    ],
    # The policy's learning rate decayed to 0 by a cosine over the run (CORL IQL's actor).
    "gtm_param_cos": [
        "algo.name=omiga",
        *_GTM,
        "algo.policy_log_std=param",
        "algo.policy_lr_schedule=cosine",
    ],
    "gtm_param_a1c100_cos": [
        *[
            "algo.name=omiga",
            *_GTM,
            "algo.policy_log_std=param",
            "algo.alpha=1",
            "algo.policy_weight_cap=100",
        ],
        "algo.policy_lr_schedule=cosine",
    ],
    "bc_gtm_param_cos": [
        "algo.name=bc",
        *_GTM,
        "algo.policy_log_std=param",
        "algo.policy_lr_schedule=cosine",
    ],
    # Behaviour cloning with the same networks.
    "bc_reference": ["algo.name=bc", *_REF],
    "bc_gtm_state": ["algo.name=bc", *_GTM, "algo.policy_log_std=state"],
    "bc_gtm_param": ["algo.name=bc", *_GTM, "algo.policy_log_std=param"],
    # The default policy on observations standardised per feature with the dataset's
    # statistics, reference-mode vectors decoded first (data.obs_normalization=standardize).
    "gtm_param_cos_std": [*_OMIGA_STD],
    "bc_gtm_param_cos_std": ["algo.name=bc", *_POLICY_STD],
    # The same with a stronger advantage weighting (alpha 1, weights capped at 100).
    "gtm_param_a1c100_cos_std": [*_OMIGA_STD, "algo.alpha=1", "algo.policy_weight_cap=100"],
    # The default with rewards x0.1 and alpha 1: the same advantage weights at the critics'
    # fixed point as alpha 10 on raw rewards (z = w (Q - V) / alpha); the gradients the
    # clip (algo.grad_clip 1.0) sees are 10x smaller.
    "gtm_param_cos_std_rs01": [*_OMIGA_STD, "data.reward_scale=0.1", "algo.alpha=1"],
    # The default with target nets 4x faster (tau 0.02; the reference's 0.005 lets each
    # bootstrap take ~200 updates, so the critics are far from their fixed point at 20k).
    "gtm_param_cos_std_tau02": [*_OMIGA_STD, "algo.tau=0.02"],
    # The same with a stronger advantage weighting (alpha 3), on critics near their fixed point.
    "gtm_param_cos_std_tau02_a3": [*_OMIGA_STD, "algo.tau=0.02", "algo.alpha=3"],
    # Alpha 3 with the reference's tau, and with tau 0.01 (tau 0.02 diverged on medium-replay).
    "gtm_param_cos_std_a3": [*_OMIGA_STD, "algo.alpha=3"],
    "gtm_param_cos_std_tau01_a3": [*_OMIGA_STD, "algo.tau=0.01", "algo.alpha=3"],
    # The reference preset on standardised observations (only the observations changed).
    "reference_std": [
        "algo.name=omiga",
        *_REF,
        "algo.policy_weight_cap=0",
        "data.obs_normalization=standardize",
    ],
}
# A variant that names no schedule runs the policy at a constant rate (what each one meant
# when it was first measured; the default is now "auto", a cosine on continuous actions), so
# the defaults were `gtm_param_cos` (OMIGA) and `bc_gtm_param_cos` (BC) on stored observations.
# Likewise a variant that names no observation map sees them as stored (the default is now
# "auto", standardize on MaMuJoCo reference-mode data), so the defaults are now
# `gtm_param_cos_std` (OMIGA) and `bc_gtm_param_cos_std` (BC).
# And an OMIGA variant that names no alpha / tau runs the reference's 10 / 0.005 (today's
# defaults too; pinned so that the variants keep their meaning if the defaults change).
for _overrides in VARIANTS.values():
    for key, value in (("algo.alpha", "10"), ("algo.tau", "0.005")):
        if "algo.name=omiga" in _overrides and not any(item.startswith(f"{key}=") for item in _overrides):
            _overrides.append(f"{key}={value}")
    if not any(item.startswith("algo.policy_lr_schedule=") for item in _overrides):
        _overrides.append("algo.policy_lr_schedule=constant")
    if not any(item.startswith("data.obs_normalization=") for item in _overrides):
        _overrides.append("data.obs_normalization=none")
DIAGNOSTICS = ("policy_weight_max", "z_clamped_share", "policy_weight_ess")


def run_key(level: str, variant: str, seed: int) -> str:
    """A cell's run directory below ``--out``: ``<level>/<variant>/seed_<s>`` (the layout
    ``python -m omiga_pl.results`` reads, labelling each run by its variant)."""
    return f"{level}/{variant}/seed_{seed}"


def cell_command(
    out: Path, run: str, data: str, variant: str, seed: int, steps: int, extra: list[str]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "omiga_pl.fit",
        "--config",
        str(ROOT / "conf" / "mamujoco.yaml"),
        f"data.path={ROOT / data}",
        *VARIANTS[variant],
        f"seed={seed}",
        "threads=1",
        f"trainer.max_steps={steps}",
        "trainer.enable_progress_bar=false",
        f"log.out_dir={(out / run).parent}",
        f"log.run_name={Path(run).name}",
        *extra,
    ]


def evaluations(out: Path, run: str) -> list[dict]:
    path = out / run / "eval.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def finished(out: Path, run: str, steps: int) -> bool:
    """The run reached ``steps`` and ended (its log's last word: fit's ``[omiga_pl] done``),
    so its final evaluation, if it has one, is written too."""
    evals = evaluations(out, run)
    log = out / f"{run}.log"
    ended = log.is_file() and "[omiga_pl] done:" in log.read_text()
    return bool(evals) and evals[-1]["step"] >= steps and ended


def final_return(out: Path, run: str, evals: list[dict]) -> float:
    """The final evaluation's mean return (``final_eval.json``), else the last periodic one."""
    path = out / run / "final_eval.json"
    return json.loads(path.read_text())["return_mean"] if path.is_file() else evals[-1]["return_mean"]


def late_diagnostics(out: Path, run: str) -> dict[str, float]:
    """Mean over the second half of training of each of :data:`DIAGNOSTICS` (TensorBoard)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, float] = {}
    for path in sorted((out / run).glob("events.out.tfevents.*")):
        events = EventAccumulator(str(path))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        for name in DIAGNOSTICS:
            if f"train/{name}" in tags:
                values = [e.value for e in events.Scalars(f"train/{name}")]
                found[name] = statistics.mean(values[len(values) // 2 :])
    return found


def run_cell(out: Path, run: str, command: list[str]) -> tuple[str, int, float]:
    start = time.perf_counter()
    (out / run).parent.mkdir(parents=True, exist_ok=True)
    with open(out / f"{run}.log", "a") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return run, code, time.perf_counter() - start


def fmt(values: list[float], digits: int = 0) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(out: Path, variants: list[str], levels: list[str], seeds: list[int], steps: int) -> str:
    lines = [
        "Final evaluated return (final_eval.json) / mean of the 2nd half of periodic evaluations, "
        f"{steps} updates, seeds {seeds} "
        "(mean ± std over the seeds done); weight diagnostics: mean over the 2nd half of training.",
        "",
        "| level (dataset mean) | variant | final return | late-half mean | seeds | "
        "weight max | z at clamp | weight ESS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level in levels:
        card = read_card(ROOT / LEVELS[level])
        for variant in variants:
            done = [
                (seed, evaluations(out, run_key(level, variant, seed)))
                for seed in seeds
                if finished(out, run_key(level, variant, seed), steps)
            ]
            finals = [final_return(out, run_key(level, variant, seed), evals) for seed, evals in done]
            lates = [statistics.mean(e["return_mean"] for e in evals[len(evals) // 2 :]) for _, evals in done]
            diags = [late_diagnostics(out, run_key(level, variant, seed)) for seed, _ in done]
            cells = []
            for name in DIAGNOSTICS:
                values = [d[name] for d in diags if name in d]
                cells.append(f"{statistics.mean(values):.3g}" if values else "—")
            lines.append(
                f"| {level} ({card['return_mean']:.0f}) | {variant} | {fmt(finals)} | {fmt(lates)} | "
                f"{len(done)} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "select_policy")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--levels", nargs="+", default=list(LEVELS), help="names of LEVELS or --level-file")
    parser.add_argument(
        "--level-file",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="one more level: a dataset file, e.g. a regenerated 1M one (repeat)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--set", nargs="*", default=[], help="key=value overrides for every cell (eval.every=2500)"
    )
    args = parser.parse_args()
    for item in args.level_file:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            parser.error(f"--level-file: expected NAME=PATH of an existing dataset file, found '{item}'")
        LEVELS[name] = str(Path(path).resolve())
    unknown = [level for level in args.levels if level not in LEVELS]
    if unknown:
        parser.error(f"--levels: unknown {unknown}; expected some of {list(LEVELS)} (or add --level-file)")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        todo = []
        for level in args.levels:
            for variant in args.variants:
                for seed in args.seeds:
                    run = run_key(level, variant, seed)
                    if finished(out, run, args.steps):
                        continue
                    if (out / run).exists():
                        print(f"[skip] {run}: unfinished run directory, remove it to rerun", flush=True)
                        continue
                    command = cell_command(out, run, LEVELS[level], variant, seed, args.steps, args.set)
                    todo.append((run, command))
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for run, code, seconds in pool.map(lambda job: run_cell(out, *job), todo):
                status = "ok" if code == 0 else f"FAILED (exit {code}, see {out / run}.log)"
                print(f"[cell] {run}: {status} in {seconds:.0f}s", flush=True)
    text = table(out, args.variants, args.levels, args.seeds, args.steps)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
