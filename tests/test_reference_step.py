"""The benchmark's transcription of the OMIGA reference step (benchmarks/reference_omiga.py)
computes omiga_pl's losses: with the same weights and the same batch its three losses
equal ``OmigaModule.compute_losses``'s, for the SMAC (discrete) and MaMuJoCo (continuous)
paths. So ``single_run.py``'s "reference as written" differs from omiga_pl only in
structure, which is what it is there to time; and omiga_pl's losses agree with a
line-by-line independent rewrite of the reference's."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from reference_omiga import (  # noqa: E402
    MujocoReference,
    SmacReference,
    as_written_loop,
    reference_as_written,
    smac_chunks,
)
from throughput import synthetic_file  # noqa: E402

from omiga_pl.algos.omiga import OmigaConfig, OmigaModule  # noqa: E402
from omiga_pl.data.datamodule import OfflineMARLDataModule  # noqa: E402


def _module_and_storage(tmp_path: Path, shape: str):
    storage = OfflineMARLDataModule(synthetic_file(tmp_path, shape, episodes=60), batch_size=32).load()
    torch.manual_seed(0)
    # The reference's policy family (tanh-squashed Gaussian, a log-std head) for continuous.
    cfg = OmigaConfig(policy="tanh_gaussian", policy_log_std="state")
    return OmigaModule(storage.dims.as_dict(), asdict(cfg), log_every=10**9), storage


def _copy_mlp(dst, src_seq) -> None:
    """omiga_pl's Sequential(Linear, ReLU, Linear, ReLU, Linear) -> fc1, fc2, head."""
    for name, index in (("fc1", 0), ("fc2", 2), ("head", 4)):
        getattr(dst, name).load_state_dict(src_seq[index].state_dict())


def _copy_mixer(dst, src) -> None:
    for name, other in (("f_v", "hidden"), ("w_v", "weight_head"), ("b_v", "bias_head")):
        getattr(dst, name).load_state_dict(getattr(src, other).state_dict())


def test_the_smac_transcription_computes_omiga_pl_losses(tmp_path):
    module, storage = _module_and_storage(tmp_path, "5m_vs_6m")
    reference = reference_as_written(storage, module.cfg, batch_size=32)
    assert isinstance(reference, SmacReference)
    m, t = reference.model, reference.target_model
    _copy_mlp(m.q, module.q.net)
    _copy_mlp(m.v, module.v.net)
    _copy_mlp(m.actor, module.policy.logits_net.net)
    _copy_mixer(m.q_mix_model, module.mixer)
    # Distinct target weights, so that a mix-up of online and target nets shows.
    for net in (module.q_target, module.v_target, module.mixer_target):
        for p in net.parameters():
            p.data.add_(0.01 * torch.randn_like(p))
    _copy_mlp(t.q, module.q_target.net)
    _copy_mlp(t.v, module.v_target.net)
    _copy_mixer(t.q_mix_model, module.mixer_target)

    batch = storage.gather(torch.arange(32) * 7)
    ours = module.compute_losses(batch).named
    unit = lambda x: x.unsqueeze(1)  # noqa: E731  [B, ...] -> [B, T=1, ...]
    theirs = reference.losses(
        s=unit(batch.states).unsqueeze(2),
        o=unit(batch.observations),
        r=unit(batch.rewards[:, None, None].expand(-1, storage.dims.n_agents, 1)),
        s_next=unit(batch.next_states).unsqueeze(2),
        o_next=unit(batch.next_observations),
        cur_a=unit(batch.actions.unsqueeze(-1)),
        mask=batch.masks[:, None, None],
    )
    for name in ("q", "v", "policy"):
        torch.testing.assert_close(theirs[name], ours[name], rtol=1e-5, atol=1e-6, msg=name)


def test_the_mamujoco_transcription_computes_omiga_pl_losses(tmp_path):
    module, storage = _module_and_storage(tmp_path, "Hopper-3x1")
    reference = reference_as_written(storage, module.cfg, batch_size=32)
    assert isinstance(reference, MujocoReference)
    _copy_mlp(reference.q_network, module.q.net)
    _copy_mlp(reference.v_network, module.v.net)
    for p in [
        *module.q_target.parameters(),
        *module.v_target.parameters(),
        *module.mixer_target.parameters(),
    ]:
        p.data.add_(0.01 * torch.randn_like(p))
    _copy_mlp(reference.q_target_network, module.q_target.net)
    _copy_mlp(reference.v_target_network, module.v_target.net)
    _copy_mixer(reference.mix_network, module.mixer)
    _copy_mixer(reference.mix_target_network, module.mixer_target)
    policy, actor = module.policy, reference.policy_network
    actor.fc1.load_state_dict(policy.trunk[0].state_dict())
    actor.fc2.load_state_dict(policy.trunk[2].state_dict())
    actor.mu_head.load_state_dict(policy.mean_head.state_dict())
    actor.sigma_head.load_state_dict(policy.log_std_head.state_dict())

    batch = storage.gather(torch.arange(32) * 7)
    ours = module.compute_losses(batch).named
    n = storage.dims.n_agents
    blocks = lambda s: s.reshape(s.shape[0], n, -1)  # noqa: E731  the reference's per-agent states
    theirs = reference.losses(
        o=batch.observations,
        s=blocks(batch.states),
        a=batch.actions,
        r=batch.rewards[:, None],
        mask=batch.masks[:, None],
        s_next=blocks(batch.next_states),
        o_next=batch.next_observations,
    )
    for name in ("q", "v", "policy"):
        torch.testing.assert_close(theirs[name], ours[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("shape", ["5m_vs_6m", "Hopper-3x1"])
@pytest.mark.filterwarnings("ignore:Creating a tensor from a list of numpy.ndarrays")
def test_the_transcribed_loop_runs_and_trains(tmp_path, shape):
    """A few timed updates run and move the weights (the timing loop is not a no-op)."""
    module, storage = _module_and_storage(tmp_path, shape)
    reference = reference_as_written(storage, module.cfg, batch_size=16)
    nets = reference.model if isinstance(reference, SmacReference) else reference.q_network
    before = [p.detach().clone() for p in nets.parameters()]
    assert as_written_loop(reference, steps=3, warmup=1) > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, nets.parameters()))


def test_smac_chunks_hold_every_transition_once(tmp_path):
    _, storage = _module_and_storage(tmp_path, "5m_vs_6m")
    chunks = smac_chunks(storage)
    assert sum(len(c) for c in chunks) == storage.n_transitions
    assert len(chunks) <= 20
    item = chunks[0][0]
    assert item[1].shape == (1, storage.dims.n_agents, storage.dims.obs_dim)  # obs [T, N, O]
