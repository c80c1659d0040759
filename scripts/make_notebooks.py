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


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        for kind, src in cells
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


if __name__ == "__main__":
    path = ROOT / "notebooks" / "quickstart.ipynb"
    nbformat.write(build(QUICKSTART), path)
    # Keep the cells in ruff's style, so `ruff check . && ruff format --check .` stays clean.
    subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "-q", str(path)], check=False)
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(path)], check=False)
    print(f"wrote {path}")
