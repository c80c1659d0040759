"""Check that this checkout trains bit for bit like another commit (a refactor's guard).

Checks out ``REV`` into a temporary git worktree, runs the same short ``fit`` there and
here (one thread, no evaluation) on a discrete and a continuous bundled dataset, and
compares the final checkpoints' weights and optimizer states exactly.

    python scripts/same_updates_as.py 6ecc211            # OMIGA before the algorithm base
    python scripts/same_updates_as.py HEAD~3 --steps 100 --algo bc
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "discrete": ("conf/smac.yaml", "data/smax_3m_poor.h5"),
    "continuous": ("conf/mamujoco.yaml", "data/mamujoco_hopper_3x1_medium.h5"),
}


def train(checkout: Path, out: Path, config: str, data: str, steps: int, algo: str | None) -> Path:
    """Run fit inside ``checkout`` (its own package and configs); return the last checkpoint."""
    args = [
        sys.executable,
        "-m",
        "omiga_pl.fit",
        "--config",
        config,
        f"data.path={data}",
        f"trainer.max_steps={steps}",
        "eval.enabled=false",
        "threads=1",
        "trainer.enable_progress_bar=false",
        f"log.out_dir={out}",
        "log.run_name=run",
    ]
    if algo:
        args.append(f"algo.name={algo}")
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    subprocess.run(args, cwd=checkout, env=env, check=True, capture_output=True)
    return out / "run" / "checkpoints" / "last.ckpt"


def identical(a: Path, b: Path) -> tuple[bool, str]:
    x, y = (torch.load(p, map_location="cpu", weights_only=False) for p in (a, b))
    if set(x["state_dict"]) != set(y["state_dict"]):
        return False, f"parameter names differ: {sorted(set(x['state_dict']) ^ set(y['state_dict']))}"
    for key, value in x["state_dict"].items():
        if not torch.equal(value, y["state_dict"][key]):
            return False, f"weights differ at {key}"
    states_x, states_y = x["optimizer_states"][0]["state"], y["optimizer_states"][0]["state"]
    for index, state in states_x.items():
        for key, value in state.items():
            if not torch.equal(value, states_y[index][key]):
                return False, f"optimizer state differs at {index}/{key}"
    return (
        True,
        f"{len(x['state_dict'])} tensors and every Adam state identical after {x['global_step']} updates",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the commit to compare with")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--algo", help="algo.name override (only where REV knows it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(other), args.rev], cwd=ROOT, check=True
        )
        try:
            ok = True
            for action_type, (config, data) in CASES.items():
                data_path = str(ROOT / data)
                theirs = train(
                    other, Path(tmp) / f"theirs_{action_type}", config, data_path, args.steps, args.algo
                )
                ours = train(
                    ROOT, Path(tmp) / f"ours_{action_type}", config, data_path, args.steps, args.algo
                )
                same, detail = identical(theirs, ours)
                ok &= same
                print(f"[{action_type}] {'identical' if same else 'DIFFERENT'}: {detail}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
