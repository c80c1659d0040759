"""The contract every registered algorithm keeps, run over the whole registry.

- ``conf/algo/<name>.yaml`` equals the config dataclass defaults, and a page documents it;
- one loss per parameter group, and each loss's gradient reaches only its own group
  (so the base's single backward of the summed losses is exact);
- an action type the algorithm does not define is refused with one clear error;
- ``fit`` runs end to end with evaluation for each supported action type, writes
  checkpoints and resumes bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from omiga_pl.algos import ALGORITHMS, algorithm_class
from omiga_pl.algos.base import noise_seed, optimizer_of
from omiga_pl.algos.bc import BCModule
from omiga_pl.config import load_config
from omiga_pl.data.batch import Batch
from omiga_pl.data.datamodule import batch_seed
from omiga_pl.dims import ACTION_TYPES
from omiga_pl.errors import ConfigError
from omiga_pl.fit import main

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
HOPPER = ROOT / "data" / "mamujoco_hopper_3x1_medium.h5"
CASES = [(name, kind) for name, cls in ALGORITHMS.items() for kind in cls.action_types]
TINY = {"hidden_sizes": [16, 16]}


def tiny_dims(action_type: str) -> dict:
    n_actions = 3 if action_type == "discrete" else 2
    return dict(n_agents=2, obs_dim=4, state_dim=6, action_type=action_type, action_dim=n_actions)


def tiny_module(name: str, action_type: str, **algo):
    cls = algorithm_class(name)
    config = asdict(cls.config_class(**{**TINY, **algo}))
    torch.manual_seed(0)
    return cls(tiny_dims(action_type), config)


def random_batch(action_type: str, b: int = 16) -> Batch:
    gen = torch.Generator().manual_seed(1)
    avail = torch.rand(b, 2, 3, generator=gen) < 0.7
    avail[..., 0] = True
    if action_type == "discrete":
        actions = (torch.rand(b, 2, 3, generator=gen) * avail).argmax(-1)
    else:
        # Some saturated actions (exactly +-1), as real behaviour data has.
        actions = (torch.rand(b, 2, 2, generator=gen) * 2.4 - 1.2).clamp(-1, 1)
    return Batch(
        observations=torch.randn(b, 2, 4, generator=gen),
        states=torch.randn(b, 6, generator=gen),
        actions=actions,
        rewards=torch.randn(b, generator=gen),
        masks=(torch.rand(b, generator=gen) < 0.8).float(),
        next_observations=torch.randn(b, 2, 4, generator=gen),
        next_states=torch.randn(b, 6, generator=gen),
        avail_actions=avail if action_type == "discrete" else None,
        next_avail_actions=avail.roll(1, 0) if action_type == "discrete" else None,
        next_actions=actions.roll(1, 0),
    )


def test_the_registry_holds_the_baselines():
    assert {"omiga", "omiga_local", "bc"} <= set(ALGORITHMS)
    for name, cls in ALGORITHMS.items():
        assert cls.config_class().name == name
        assert set(cls.action_types) <= set(ACTION_TYPES) and cls.action_types


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_algo_yaml_equals_dataclass_defaults_and_has_a_page(name):
    path = CONF / "algo" / f"{name}.yaml"
    assert path.is_file(), f"missing {path}: run python scripts/write_algo_configs.py"
    on_disk = OmegaConf.to_container(OmegaConf.load(path))["algo"]
    assert on_disk == asdict(ALGORITHMS[name].config_class())
    # The file loads as that algorithm's schema, on a task config too.
    config = load_config([CONF / "smac.yaml", path])
    assert config.algo.name == name
    page = ROOT / "docs" / "algorithms" / f"{name}.md"
    assert page.is_file() and page.read_text().strip(), f"missing {page}"


@pytest.mark.parametrize("name, action_type", CASES)
def test_each_loss_reaches_only_its_own_group(name, action_type):
    module = tiny_module(name, action_type)
    groups = module.param_groups()
    losses = module.compute_losses(random_batch(action_type))
    assert set(losses.named) == set(groups), "one loss per parameter group, named alike"
    all_params = [p for params in groups.values() for p in params]
    assert len({id(p) for p in all_params}) == len(all_params), "groups must be disjoint"
    owner = {id(p): group for group, params in groups.items() for p in params}
    for loss_name, loss in losses.named.items():
        assert loss.dim() == 0 and torch.isfinite(loss), loss_name
        grads = torch.autograd.grad(loss, all_params, retain_graph=True, allow_unused=True)
        reached = {owner[id(p)] for p, g in zip(all_params, grads) if g is not None and g.abs().sum() > 0}
        assert reached == {loss_name}, f"{name}/{action_type}: loss '{loss_name}' reaches groups {reached}"
    for key, value in losses.diagnostics.items():
        assert not value.requires_grad, key
    # Frozen targets never receive gradients.
    trainable = {id(p) for p in all_params}
    for param_name, param in module.named_parameters():
        if id(param) not in trainable:
            assert not param.requires_grad, f"{param_name} is trainable but in no group"


@pytest.mark.parametrize("name, action_type", CASES)
def test_one_update_changes_only_trained_params_and_acts(name, action_type):
    module = tiny_module(name, action_type)
    optimizer = optimizer_of(module.configure_optimizers())
    before = {k: v.clone() for k, v in module.state_dict().items()}
    losses = module.compute_losses(random_batch(action_type))
    optimizer.zero_grad()
    losses.total.backward()
    module.clip_per_group()
    optimizer.step()
    module.update_targets()
    changed = {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}
    assert changed, "an update must change the weights"
    obs = torch.randn(5, 2, 4)
    avail = torch.ones(5, 2, 3, dtype=torch.bool)
    avail[:, :, 2] = False
    actions = module.act(obs, avail if action_type == "discrete" else None)
    if action_type == "discrete":
        assert actions.shape == (5, 2) and actions.dtype == torch.int64 and (actions != 2).all()
    else:
        assert actions.shape == (5, 2, 2) and actions.abs().max() <= 1


class ContinuousOnlyBC(BCModule):
    """A registered algorithm that defines one action type only."""

    action_types = ("continuous",)


def test_an_undefined_action_type_is_refused_before_anything_is_written(tmp_path, smax_3m_file, capsys):
    with pytest.raises(ConfigError) as caught:
        ContinuousOnlyBC(tiny_dims("discrete"), asdict(ContinuousOnlyBC.config_class()))
    assert str(caught.value) == (
        "config: key 'algo.name': algorithm 'bc' supports continuous actions only, "
        "but the dataset's actions are discrete"
    )
    # Through the CLI: one line, exit 2, and no run directory.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(ALGORITHMS, "bc", ContinuousOnlyBC)
        code = fit(tmp_path, CONF / "smac.yaml", "algo.name=bc", f"data.path={smax_3m_file}")
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["omiga_pl.fit: error: " + str(caught.value)]
    assert not (tmp_path / "runs").exists()


def test_noise_seed_depends_on_seed_rank_and_step_and_differs_from_the_sampler():
    seeds = {noise_seed(0, 0, 1), noise_seed(0, 0, 2), noise_seed(1, 0, 1), noise_seed(0, 1, 1)}
    assert len(seeds) == 4 and noise_seed(0, 0, 1) == noise_seed(0, 0, 1)
    assert noise_seed(0, 0, 1) != batch_seed(0, 0, 1)


def test_algorithm_keys_are_checked_per_algorithm():
    config = load_config([CONF / "smac.yaml"], ["algo.name=bc"])
    assert "alpha" not in config.algo and config.algo.lr_policy == 5e-4
    with pytest.raises(ConfigError) as caught:
        load_config([CONF / "smac.yaml"], ["algo.name=bc", "algo.alpha=3"])
    assert "command line: key 'algo.alpha': unknown key for algorithm 'bc' (its keys: " in str(caught.value)
    with pytest.raises(ConfigError, match=r"key 'algo.name': expected one of \[.*'omiga'.*\], found 'nope'"):
        load_config([CONF / "smac.yaml"], ["algo.name=nope"])


def fit(tmp_path: Path, config: Path, *overrides: str, resume: Path | None = None) -> int:
    args = [] if resume else ["--config", str(config)]
    if resume:
        args += ["--resume", str(resume)]
    return main([*args, f"log.out_dir={tmp_path / 'runs'}", "trainer.enable_progress_bar=false", *overrides])


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("name, action_type", CASES)
def test_fit_with_evaluation_and_exact_resume(tmp_path, smax_3m_file, name, action_type):
    if action_type == "discrete":
        config, data, env = CONF / "smac.yaml", smax_3m_file, []
    else:
        config, data, env = CONF / "mamujoco.yaml", HOPPER, ["env.episode_limit=30"]
    common = [
        f"algo.name={name}",
        "algo.hidden_sizes=[32,32]",
        f"data.path={data}",
        "data.batch_size=32",
        *env,
        "trainer.max_steps=8",
        "eval.every=8",
        "eval.episodes=2",
        "log.log_every=2",
        "log.checkpoint_every=4",
    ]
    assert fit(tmp_path, config, *common, "log.run_name=straight") == 0
    straight = tmp_path / "runs" / "straight"
    written = {p.name for p in (straight / "checkpoints").iterdir()}
    assert written == {"last.ckpt", "step=4.ckpt", "step=8.ckpt"}
    assert fit(tmp_path, config, "log.run_name=resumed", resume=straight / "checkpoints" / "step=4.ckpt") == 0
    resumed = tmp_path / "runs" / "resumed"
    a, b = load(straight / "checkpoints" / "step=8.ckpt"), load(resumed / "checkpoints" / "step=8.ckpt")
    assert a["global_step"] == b["global_step"] == 8
    assert a["omiga_pl_config"]["algo"]["name"] == name
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for index, state in a["optimizer_states"][0]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer_states"][0]["state"][index][key]), (index, key)
    evals = [json.loads(line) for line in (straight / "eval.jsonl").read_text().splitlines()]
    resumed_evals = [json.loads(line) for line in (resumed / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [8] and [e["step"] for e in resumed_evals] == [8]
    for e in (evals[-1], resumed_evals[-1]):
        e.pop("seconds")
    assert evals[-1] == resumed_evals[-1]


# A baseline whose actor loss goes through its critic and mixer (call_detached) and that
# samples actions (the training-noise generator), under DDP.
DDP_BASELINE = "cql"


@pytest.mark.slow
def test_a_baseline_under_two_process_ddp_resumes_exactly(tmp_path):
    """2 CPU processes (gloo), then a DDP resume from the middle: bit-identical weights."""
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "NODE_RANK")}
    base = [sys.executable, "-m", "omiga_pl.fit", f"log.out_dir={tmp_path / 'runs'}"]
    common = [
        "--config",
        str(CONF / "mamujoco.yaml"),
        "--config",
        str(CONF / "trainer" / "ddp.yaml"),
        f"algo.name={DDP_BASELINE}",
        "algo.hidden_sizes=[32,32]",
        f"data.path={HOPPER}",
        "data.batch_size=32",
        "env.episode_limit=30",
        "eval.every=10",
        "eval.episodes=2",
        "log.checkpoint_every=5",
        "trainer.max_steps=10",
        "trainer.enable_progress_bar=false",
    ]
    for args in (
        [*common, "log.run_name=ddp"],
        ["--resume", str(tmp_path / "runs/ddp/checkpoints/step=5.ckpt")],
    ):
        extra = ["log.run_name=ddp_resumed"] if args[0] == "--resume" else []
        done = subprocess.run([*base, *args, *extra], capture_output=True, text=True, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    straight = load(tmp_path / "runs/ddp/checkpoints/step=10.ckpt")
    resumed = load(tmp_path / "runs/ddp_resumed/checkpoints/step=10.ckpt")
    assert straight["omiga_pl_config"]["trainer"]["devices"] == 2
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
