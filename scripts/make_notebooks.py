"""Write the notebooks in notebooks/ from their cell sources (kept here so diffs are readable).

python scripts/make_notebooks.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

QUICKSTART = [
    (
        "markdown",
        """# omiga_pl quick start

Train OMIGA on the bundled SMAX 3m dataset for a few hundred updates, look at the
dataset card, the training scalars and the evaluation, then check one of OMIGA's
losses by hand. The test suite executes this notebook, so every output here is real.""",
    ),
    (
        "code",
        """import json
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from omiga_pl.config import load_config
from omiga_pl.data.paths import resolve_data_path
from omiga_pl.data.formats.native import read_card
from omiga_pl.fit import run

ROOT = Path.cwd() if (Path.cwd() / "conf").exists() else Path.cwd().parent""",
    ),
    (
        "markdown",
        "## The dataset card\nEvery native file carries its card: environment, sizes, behaviour, statistics.",
    ),
    (
        "code",
        """card = read_card(resolve_data_path("data/smax_3m_medium.h5"))
keys = ("scenario", "quality", "behaviour_policy", "n_episodes", "n_transitions", "return_mean", "win_rate")
for key in keys:
    print(f"{key:>18}: {card.get(key)}")""",
    ),
    (
        "markdown",
        """## A short run
The same entry point as `python -m omiga_pl.fit`; overrides are `key=value` strings.
Runs go to `runs/<name>/` (TensorBoard events, `config.yaml`, `eval.jsonl`, checkpoints).""",
    ),
    (
        "code",
        """import tempfile

out_dir = Path(tempfile.mkdtemp())
config = load_config(
    [ROOT / "conf" / "smac.yaml"],
    [
        "trainer.max_steps=300",
        "eval.every=150",
        "eval.episodes=16",
        "log.log_every=50",
        f"log.out_dir={out_dir}",
        "log.run_name=notebook",
        "trainer.enable_progress_bar=false",
    ],
)
summary = run(config)
summary""",
    ),
    (
        "code",
        """events = EventAccumulator(str(out_dir / "notebook"))
events.Reload()
for tag in ("train/q_loss", "train/v_loss", "train/policy_loss", "perf/updates_per_s"):
    print(tag, [round(e.value, 4) for e in events.Scalars(tag)])
for line in (out_dir / "notebook" / "eval.jsonl").read_text().splitlines():
    print(json.loads(line))""",
    ),
    (
        "markdown",
        """## The maths is a pure function
`omiga_pl.losses.omiga.omiga_losses` takes tensors and returns the three losses. With
one transition and one agent, the Q loss is just `(w Q + b - (r + gamma V'))^2`:""",
    ),
    (
        "code",
        """from omiga_pl.losses.omiga import omiga_losses



def one(value):
    return torch.tensor([[value]])


losses = omiga_losses(
    q_taken=one(2.0), weights=one(1.5), bias=torch.tensor([0.5]),
    q_target_taken=one(2.0), weights_target=one(1.0), values=one(1.0),
    next_values_target=one(4.0), next_weights_target=one(1.0), next_bias_target=torch.tensor([0.0]),
    log_probs=one(-0.7), rewards=torch.tensor([1.0]), masks=torch.tensor([1.0]),
    alpha=10.0, gamma=0.5,
)
# Q_tot = 1.5 * 2 + 0.5 = 3.5; y = 1 + 0.5 * 4 = 3; loss = 0.25
assert abs(losses.q_loss.item() - 0.25) < 1e-6
losses.q_loss.item(), losses.v_loss.item(), losses.policy_loss.item()""",
    ),
]

RESULTS = [
    (
        "markdown",
        """# Sweep results

Load a sweep, tabulate it with rliable (IQM, mean, median, optimality gap with stratified
bootstrap 95% CIs), and plot learning curves and a performance profile. The notebook runs
a tiny sweep of its own (two algorithms x two seeds on the bundled SMAX 3m `good` data,
a hundred updates) unless `OMIGA_PL_SWEEP_DIR` names an existing sweep directory, e.g.
the snapshot's `runs/sweeps/snapshot`. The same numbers come from
`python -m omiga_pl.results SWEEP_DIR`.""",
    ),
    (
        "code",
        """import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from IPython.display import Image, Markdown, display

from omiga_pl.results import find_runs, plots
from omiga_pl.results.report import block_markdown, build_blocks, headline
from omiga_pl.results.scores import run_score

ROOT = Path.cwd() if (Path.cwd() / "conf").exists() else Path.cwd().parent""",
    ),
    (
        "markdown",
        "## A sweep\\nEach cell is an ordinary `fit` run in `<sweep>/<dataset>/<algorithm>/seed_<s>/`.",
    ),
    (
        "code",
        """sweep_dir = os.environ.get("OMIGA_PL_SWEEP_DIR")
if sweep_dir is None:
    sweep_dir = Path(tempfile.mkdtemp()) / "sweep"
    sweep_file = sweep_dir.parent / "tiny.yaml"
    sweep_file.write_text(
        f\"\"\"
out_dir: {sweep_dir}
config: {ROOT / "conf" / "smac.yaml"}
overrides: {{trainer: {{max_steps: 100}}, eval: {{every: 25, episodes: 8, final_episodes: 32}},
            log: {{log_every: 25, checkpoint_every: 50}}}}
algorithms: {{omiga: {{}}, bc: {{}}}}
datasets: {{smax_3m_good: {ROOT / "data" / "smax_3m_good.h5"}}}
seeds: 2
\"\"\"
    )
    done = subprocess.run(
        [sys.executable, "-m", "omiga_pl.sweep", "--config", str(sweep_file)],
        capture_output=True, text=True, cwd=ROOT,
    )
    print(done.stdout[-2000:])
    assert done.returncode == 0, done.stderr[-3000:]
sweep_dir = Path(sweep_dir)""",
    ),
    (
        "markdown",
        "## Runs\\nRun directories are found from their saved config and evaluation records.",
    ),
    (
        "code",
        """runs = find_runs(sweep_dir)
table = pd.DataFrame(
    {
        "env": r.env,
        "dataset": r.task,
        "algorithm": r.algorithm,
        "seed": r.seed,
        "final win rate": run_score(r, "win_rate"),
        "best win rate during training": run_score(r, "win_rate", "best"),
        "final return": run_score(r, "return"),
        "final episodes": r.final["episodes"] if r.final else None,
    }
    for r in runs
)
table""",
    ),
    (
        "markdown",
        "## Tables\\nThe final evaluation (absolute_metrics) by default; every table says which it shows.",
    ),
    (
        "code",
        """blocks = build_blocks(runs, "final", reps=1000)
display(Markdown("\\n".join(headline(blocks))))
win_rate = next(b for b in blocks if b.env == "smax" and b.metric == "win_rate")
display(Markdown("\\n".join(block_markdown(win_rate))))""",
    ),
    (
        "markdown",
        "## Learning curves\\nIQM over seeds of the periodic evaluations, with 95% bootstrap bands.",
    ),
    (
        "code",
        """out = sweep_dir / "notebook_plots"
display(Image(filename=str(plots.learning_curves(runs, "smax", out / "learning_curves_smax.png"))))""",
    ),
    (
        "markdown",
        "## Performance profile\\nThe fraction of runs scoring above each threshold (rliable).",
    ),
    (
        "code",
        """profile = plots.performance_profile(win_rate, runs, out / "performance_profile_smax.png")
display(Image(filename=str(profile)))""",
    ),
]

DATASETS = [
    (
        "markdown",
        """# The bundled datasets

Their cards, the distribution of episode returns per quality level, and action statistics,
including the share of saturated continuous actions (|a| = 1), which shapes how well a
tanh-Gaussian policy can fit the data. Everything is read from the files in `data/`.""",
    ),
    (
        "code",
        """from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from omiga_pl.data.formats.native import read_native

ROOT = Path.cwd() if (Path.cwd() / "conf").exists() else Path.cwd().parent
FILES = {
    "SMAX 3m": ["smax_3m_good", "smax_3m_medium", "smax_3m_poor"],
    "Hopper 3x1": [
        "mamujoco_hopper_3x1_expert",
        "mamujoco_hopper_3x1_medium_expert",
        "mamujoco_hopper_3x1_medium",
        "mamujoco_hopper_3x1_medium_replay",
    ],
}
loaded = {name: read_native(ROOT / "data" / f"{name}.h5") for names in FILES.values() for name in names}""",
    ),
    (
        "markdown",
        "## Cards",
    ),
    (
        "code",
        """keys = ["env_family", "scenario", "quality", "n_episodes", "n_transitions"]
keys += ["return_mean", "return_std", "win_rate", "behaviour_policy"]
cards = {name: {k: card.get(k) for k in keys} for name, (_, card) in loaded.items()}
pd.DataFrame(cards).T""",
    ),
    (
        "markdown",
        "## Episode returns per quality level",
    ),
    (
        "code",
        """def episode_returns(data):
    starts = np.concatenate([[0], np.cumsum(data.episode_lengths)[:-1]])
    return np.add.reduceat(data.rewards.astype(np.float64), starts)


fig, axes = plt.subplots(1, len(FILES), figsize=(12, 3.6))
for ax, (task, names) in zip(axes, FILES.items()):
    for name in names:
        data, card = loaded[name]
        ax.hist(episode_returns(data), bins=30, alpha=0.55, label=card.get("quality", name))
    ax.set_title(task)
    ax.set_xlabel("episode return")
    ax.set_ylabel("episodes")
    ax.legend()
plt.tight_layout()
plt.show()""",
    ),
    (
        "markdown",
        """## Actions
Hopper (continuous, in [-1, 1]): the share of saturated action components per level.
SMAX (discrete): how often each action is taken.""",
    ),
    (
        "code",
        """rows = {}
for name in FILES["Hopper 3x1"]:
    data, card = loaded[name]
    actions = np.abs(data.actions.astype(np.float64))
    rows[card["quality"]] = {
        "saturated share (|a| >= 0.999)": float((actions >= 0.999).mean()),
        "mean |a|": float(actions.mean()),
        "transitions": data.n_transitions,
    }
saturation = pd.DataFrame(rows).T
saturation""",
    ),
    (
        "code",
        """fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
for name in FILES["Hopper 3x1"]:
    data, card = loaded[name]
    axes[0].hist(data.actions.ravel(), bins=41, range=(-1, 1), alpha=0.5, label=card["quality"], density=True)
axes[0].set_title("Hopper 3x1: action values")
axes[0].set_xlabel("action component")
axes[0].legend()
width = 0.25
for i, name in enumerate(FILES["SMAX 3m"]):
    data, card = loaded[name]
    counts = np.bincount(data.actions.ravel(), minlength=card["action_dim"]) / data.actions.size
    axes[1].bar(np.arange(card["action_dim"]) + i * width, counts, width, label=card["quality"])
axes[1].set_title("SMAX 3m: action frequencies")
axes[1].set_xlabel("action")
axes[1].legend()
plt.tight_layout()
plt.show()""",
    ),
]


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        for kind, src in cells
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


NOTEBOOKS = {"quickstart.ipynb": QUICKSTART, "results.ipynb": RESULTS, "datasets.ipynb": DATASETS}
# Notebooks whose plots the test suite checks are real image outputs: at least this many.
IMAGES = {"results.ipynb": 2, "datasets.ipynb": 2}

if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        path = ROOT / "notebooks" / name
        notebook = build(cells)
        if name in IMAGES:
            notebook.metadata["omiga_pl"] = {"min_image_outputs": IMAGES[name]}
        nbformat.write(notebook, path)
        # Keep the cells in ruff's style, so `ruff check . && ruff format --check .` stays clean.
        subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "-q", str(path)], check=False)
        subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(path)], check=False)
        print(f"wrote {path}")
