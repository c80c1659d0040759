"""The OMIGA reference implementation's training step, rewritten structure for structure, so
that ``single_run.py`` can time omiga_pl's loop against the reference *as written* and not
only against a tidied reference-style step (issue 13, item 2).

The reference (ZhengYinan-AIR/OMIGA) has two training paths, and each is followed here:

* **SMAC** (``framework/trainer_omiga.py`` with ``framework/buffer.py`` and
  ``framework/utils.py: load_data``): the episodes are held as nested Python lists (the
  loader ends with ``.tolist()``), split in 20 chunks; each chunk is a ``torch`` Dataset
  whose ``__getitem__`` scans the chunk's episode ends for the item's episode and converts
  every field of the item with ``torch.tensor(np.array(...))``; a ``DataLoader``
  (``shuffle=True``, ``drop_last=True``, ``num_workers=0``) batches 128 items (context
  length 1) with the default collate. Every net is one shared MLP called **once per agent**
  in a Python loop and stacked; ``done`` is derived each step from ``s == s'``; three
  optimizers, three backward passes, one ``clip_grad_norm_`` each; Polyak averaging of the
  **whole model** (actor and the unused V mixer included), one parameter at a time.
* **MaMuJoCo** (``algos/OMIGA.py`` with ``datasets/offline_dataset.py``): float64 NumPy
  arrays per field (observations, per-agent states, next observations and states, actions,
  and a never-used ``a_next``), eight ``torch.FloatTensor`` conversions per step; the
  nets take 3-D [B, N, D] inputs; the agent ids are concatenated each step; a dozen
  diagnostic means are computed every step; three backward passes; per-parameter Polyak of
  Q, V and the mixer.

The losses are the reference's formulas (``losses`` methods, checked against omiga_pl's
``compute_losses`` on the same weights and batch in tests/test_reference_step.py), so the
only differences from omiga_pl's update are structural. Two deliberate departures, both in
the reference's favour: the chunks are built once before timing (the reference re-reads
each chunk's episode files from disk every epoch), and the SMAC mixer reads the global
state once ([B, S]) rather than a per-agent state for each agent ([B, N x S_agent]).
"""

from __future__ import annotations

import copy
import math
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Normal

from omiga_pl.data.storage import TransitionStorage

# The reference's tanh-Gaussian constants (networks/network.py).
MEAN_MIN, MEAN_MAX, LOG_STD_MIN, LOG_STD_MAX, EPS = -9.0, 9.0, -5.0, 2.0, 1e-7
CHUNKS = 20  # the reference's num_step: an epoch's episodes are loaded in 20 parts
# The reference's first-step padding builds a tensor from a list of arrays; torch warns
# that this is slow, once per process. The cost is the reference's; the warning is noise.
warnings.filterwarnings("ignore", message="Creating a tensor from a list of numpy.ndarrays")


class ThreeLayerNet(nn.Module):
    """fc1 -> relu -> fc2 -> relu -> head, with out-of-place ``F.relu`` as the reference's
    ``QNet`` / ``VNet`` / ``Actor`` / ``V_critic`` / ``Q_critic``: [..., D] -> [..., out]."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = (
            nn.Linear(in_dim, hidden),
            nn.Linear(hidden, hidden),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.fc2(F.relu(self.fc1(x)))))


class GaussianActor(nn.Module):
    """The MaMuJoCo reference's ``Actor``: a trunk, a mean head and a log-std head."""

    def __init__(self, in_dim: int, hidden: int, action_dim: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(in_dim, hidden), nn.Linear(hidden, hidden)
        self.mu_head, self.sigma_head = nn.Linear(hidden, action_dim), nn.Linear(hidden, action_dim)

    def log_density(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a | o) of squashed dataset actions: x [B, N, D], actions [B, N, A] -> [B, N]."""
        h = F.relu(self.fc2(F.relu(self.fc1(x))))
        mu = torch.clamp(self.mu_head(h), MEAN_MIN, MEAN_MAX)
        sigma = torch.exp(torch.clamp(self.sigma_head(h), LOG_STD_MIN, LOG_STD_MAX))
        pre_tanh = torch.atanh(torch.clamp(actions, -1.0 + EPS, 1.0 - EPS))
        log_prob = Normal(mu, sigma).log_prob(pre_tanh).sum(axis=-1)
        return log_prob - (2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(axis=-1)


class BlockMixer(nn.Module):
    """The reference's ``MixNet``: the state blocks [..., K, D] are concatenated (one
    slice per block, as the reference does per agent), then ``w = |w_v(relu(f_v(s)))|``
    [..., N, 1] and ``b = b_v(relu(f_v(s)))`` [..., 1, 1]."""

    def __init__(self, blocks: int, block_dim: int, n_agents: int, hidden: int) -> None:
        super().__init__()
        self.blocks, self.n_agents = blocks, n_agents
        self.f_v = nn.Linear(blocks * block_dim, hidden)
        self.w_v, self.b_v = nn.Linear(hidden, n_agents), nn.Linear(hidden, 1)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lead = states.shape[:-2]
        flat = torch.cat([states[..., j, :] for j in range(self.blocks)], dim=-1)
        x = self.f_v(flat.reshape(-1, flat.shape[-1]))
        w = self.w_v(F.relu(x)).reshape(*lead, self.n_agents, 1)
        b = self.b_v(F.relu(x)).reshape(*lead, 1, 1)
        return torch.abs(w), b


def polyak_per_parameter(online: nn.Module, target: nn.Module, tau: float) -> None:
    """The reference's soft update: one ``copy_`` of a fresh tensor per parameter."""
    for param, target_param in zip(online.parameters(), target.parameters()):
        target_param.data.copy_(tau * param.data + (1 - tau) * target_param.data)


# --------------------------------------------------------------------------------- SMAC
class EpisodeChunk(torch.utils.data.Dataset):
    """One chunk of episodes as the SMAC reference holds it: nested Python lists per field
    (steps x agents x features) and per-agent episode ends; an item is one step (context
    length 1), found and converted field by field on every access."""

    def __init__(self, fields: dict[str, list], done_idxs: list[list[int]]) -> None:
        self.fields, self.done_idxs = fields, done_idxs

    def __len__(self) -> int:
        return len(self.fields["states"])

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, ...]:
        done_idx = idx + 1
        for end in np.array(self.done_idxs)[:, 0].tolist():  # the reference's scan, per item
            if end > idx:
                done_idx = min(int(end), done_idx)
                break
        idx = done_idx - 1
        f = self.fields

        def floats(name: str) -> torch.Tensor:
            return torch.tensor(np.array(f[name][idx:done_idx]), dtype=torch.float32)

        if idx == 0 or idx - 1 in self.done_idxs:
            pre_actions = torch.tensor([list(np.zeros_like(f["actions"][idx]))], dtype=torch.int64)
        else:
            pre_actions = torch.tensor(f["actions"][idx - 1 : done_idx - 1], dtype=torch.int64)
        return (
            floats("states"),
            floats("obs"),
            pre_actions,
            torch.tensor(f["rewards"][idx:done_idx], dtype=torch.float32).unsqueeze(-1),
            torch.tensor(f["timesteps"][idx : idx + 1], dtype=torch.int64),
            floats("next_states"),
            floats("next_obs"),
            torch.tensor(f["actions"][idx:done_idx], dtype=torch.int64),
            torch.tensor(f["next_avail"][idx:done_idx], dtype=torch.int64),
        )


def smac_chunks(storage: TransitionStorage) -> list[EpisodeChunk]:
    """The dataset in the SMAC reference's layout, split in :data:`CHUNKS` chunks of episodes."""
    rows = storage.rows.numpy()
    n_agents = storage.dims.n_agents
    obs = storage.observations.numpy()
    states = storage.states.numpy()
    masks = storage.masks.numpy()
    avail = storage.avail_actions.numpy() if storage.avail_actions is not None else None
    ends = np.flatnonzero(masks == 0)  # terminal transitions close an episode
    if ends.size == 0 or ends[-1] != len(rows) - 1:
        ends = np.append(ends, len(rows) - 1)
    episodes = np.split(np.arange(len(rows)), ends[:-1] + 1)
    chunk_size = math.ceil(len(episodes) / CHUNKS)
    chunks = []
    for c in range(0, len(episodes), chunk_size):
        index = np.concatenate(episodes[c : c + chunk_size])
        r = rows[index]
        terminal = masks[index] == 0
        # The reference repeats the last step as its own next step (g_next = g).
        nxt = np.where(terminal, r, r + 1)
        lengths = [len(e) for e in episodes[c : c + chunk_size]]
        fields = {
            "states": states[r][:, None, :].tolist(),
            "obs": obs[r].tolist(),
            "next_states": states[nxt][:, None, :].tolist(),
            "next_obs": obs[nxt].tolist(),
            "actions": storage.actions.numpy()[index][..., None].tolist(),
            "rewards": np.repeat(storage.rewards.numpy()[index][:, None], n_agents, 1).tolist(),
            "timesteps": np.concatenate([np.arange(n) for n in lengths]).tolist(),
            "next_avail": (
                avail[nxt] if avail is not None else np.ones((len(r), n_agents, storage.dims.action_dim))
            )
            .astype(np.int64)
            .tolist(),
        }
        done = np.cumsum(lengths)
        chunks.append(EpisodeChunk(fields, np.repeat(done[:, None], n_agents, 1).tolist()))
    return chunks


class SmacReferenceModel(nn.Module):
    """The SMAC reference's ``OMIGA`` container: Q and V mixers, local Q, local V, actor."""

    def __init__(
        self, n_agents: int, obs_dim: int, state_dim: int, n_actions: int, hidden: int, mix_hidden: int
    ):
        super().__init__()
        self.q_mix_model = BlockMixer(1, state_dim, n_agents, mix_hidden)
        self.v_mix_model = BlockMixer(1, state_dim, n_agents, mix_hidden)  # built, Polyak'd, never used
        self.q = ThreeLayerNet(obs_dim + n_agents, hidden, n_actions)
        self.v = ThreeLayerNet(obs_dim + n_agents, hidden, 1)
        self.actor = ThreeLayerNet(obs_dim + n_agents, hidden, n_actions)


class SmacReference:
    """The SMAC reference's ``Trainer.train`` loop: see the module docstring."""

    def __init__(self, storage: TransitionStorage, cfg, batch_size: int = 128) -> None:
        d = storage.dims
        self.n_agents, self.batch_size, self.cfg = d.n_agents, batch_size, cfg
        hidden = list(cfg.hidden_sizes)
        self.model = SmacReferenceModel(
            d.n_agents, d.obs_dim, d.state_dim, d.action_dim, hidden[0], cfg.mixer_hidden
        )
        self.target_model = copy.deepcopy(self.model)
        self.target_model.train(False)
        m = self.model
        self.v_param = list(m.v.parameters())
        self.q_param = list(m.q.parameters()) + list(m.q_mix_model.parameters())
        self.actor_param = list(m.actor.parameters())
        self.actor_optimizer = torch.optim.Adam(self.actor_param, lr=cfg.lr_policy)
        self.v_optimizer = torch.optim.Adam(self.v_param, lr=cfg.lr_v)
        self.q_optimizer = torch.optim.Adam(self.q_param, lr=cfg.lr_q)
        self.chunks = smac_chunks(storage)

    def batches(self):
        """Batches forever, chunk after chunk, each through a fresh shuffling DataLoader."""
        while True:
            for chunk in self.chunks:
                yield from torch.utils.data.DataLoader(
                    chunk, shuffle=True, batch_size=self.batch_size, drop_last=True, num_workers=0
                )

    def per_agent(self, net: nn.Module, o_with_id: torch.Tensor) -> torch.Tensor:
        """``net`` called once per agent and stacked: [B, T, N, D] -> [B, T, N, out]."""
        return torch.stack([net(o_with_id[:, :, j, :]) for j in range(self.n_agents)], dim=2)

    def losses(self, s, o, r, s_next, o_next, cur_a, mask) -> dict[str, torch.Tensor]:
        """The reference's three losses: inputs [B, T, ., .], ``mask`` [B, T, 1] (1 - done)."""
        m, t, alpha = self.model, self.target_model, self.cfg.alpha
        ids = torch.eye(self.n_agents).expand(o.shape[0], o.shape[1], -1, -1)
        o_with_id = torch.cat((o, ids), dim=-1)
        current_q = self.per_agent(m.q, o_with_id).gather(-1, cur_a)
        w_q, b_q = m.q_mix_model(s)
        q_total = (w_q * current_q).sum(dim=-2) + b_q.squeeze(dim=-1)
        o_next_with_id = torch.cat((o_next, ids), dim=-1)
        v_next = self.per_agent(t.v, o_next_with_id)
        w_next, b_next = t.q_mix_model(s_next)
        v_next_total = (w_next * v_next).sum(dim=-2) + b_next.squeeze(dim=-1)
        expected_q_total = r[:, :, 0, :] + self.cfg.gamma * mask * v_next_total.detach()
        q_loss = ((q_total - expected_q_total.detach()) ** 2).mean()
        target_q = self.per_agent(t.q, o_with_id).gather(-1, cur_a)
        target_w_q, _ = t.q_mix_model(s)
        v = self.per_agent(m.v, o_with_id)
        z = 1 / alpha * (target_w_q.detach() * target_q.detach() - target_w_q.detach() * v)
        z = torch.clamp(z, min=-10.0, max=10.0)
        max_z = torch.max(z)
        max_z = torch.where(max_z < -1.0, torch.tensor(-1.0), max_z).detach()
        v_loss = (torch.exp(z - max_z) + torch.exp(-max_z) * target_w_q.detach() * v / alpha).mean()
        exp_a = torch.exp(z).detach().squeeze(-1)
        logits = self.per_agent(m.actor, o_with_id)
        actor_loss = -(exp_a * Categorical(logits=logits).log_prob(cur_a.squeeze(-1))).mean()
        return {"q": q_loss, "v": v_loss, "policy": actor_loss}

    def train_step(self, batch) -> None:
        s, o, _, r, _, s_next, o_next, cur_a, _ = batch
        done = s.eq(s_next.data).min(-1)[0].unsqueeze(-1).detach().long()
        loss = self.losses(s, o, r, s_next, o_next, cur_a, 1 - done.min(2)[0])
        clip = self.cfg.grad_clip
        for name, opt, params in (
            ("policy", self.actor_optimizer, self.actor_param),
            ("q", self.q_optimizer, self.q_param),
            ("v", self.v_optimizer, self.v_param),
        ):
            opt.zero_grad()
            loss[name].backward()
            torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
        polyak_per_parameter(self.model, self.target_model, self.cfg.tau)


# ----------------------------------------------------------------------------- MaMuJoCo
class MujocoReference:
    """The MaMuJoCo reference's ``ReplayBuffer.sample`` + ``OMIGA.train_step``."""

    FIELDS = ("o", "s", "a", "r", "mask", "s_next", "o_next", "a_next")

    def __init__(self, storage: TransitionStorage, cfg, batch_size: int = 128) -> None:
        d = storage.dims
        n, hidden = d.n_agents, cfg.hidden_sizes[0]
        self.n_agents, self.batch_size, self.cfg = n, batch_size, cfg
        rows = storage.rows.numpy()
        obs, states = storage.observations.numpy(), storage.states.numpy()
        block = d.state_dim // n if d.state_dim % n == 0 else d.state_dim
        blocks = d.state_dim // block
        self.data = {  # float64, one array per field, as the reference's buffer
            "o": obs[rows].astype(np.float64),
            "s": states[rows].reshape(len(rows), blocks, block).astype(np.float64),
            "a": storage.actions.numpy().astype(np.float64),
            "r": storage.rewards.numpy().astype(np.float64)[:, None],
            "mask": storage.masks.numpy().astype(np.float64)[:, None],
            "s_next": states[rows + 1].reshape(len(rows), blocks, block).astype(np.float64),
            "o_next": obs[rows + 1].astype(np.float64),
            "a_next": np.zeros((len(rows), n, d.obs_dim)),  # the reference's, sized by state_dim
        }
        self.v_network = ThreeLayerNet(d.obs_dim + n, hidden, 1)
        self.v_target_network = copy.deepcopy(self.v_network)
        self.q_network = ThreeLayerNet(d.obs_dim + d.action_dim + n, hidden, 1)
        self.q_target_network = copy.deepcopy(self.q_network)
        self.mix_network = BlockMixer(blocks, block, n, cfg.mixer_hidden)
        self.mix_target_network = copy.deepcopy(self.mix_network)
        self.policy_network = GaussianActor(d.obs_dim + n, hidden, d.action_dim)
        self.q_param = list(self.q_network.parameters()) + list(self.mix_network.parameters())
        self.optimizers = {
            "v": torch.optim.Adam(self.v_network.parameters(), cfg.lr_v),
            "q": torch.optim.Adam(self.q_param, cfg.lr_q),
            "policy": torch.optim.Adam(self.policy_network.parameters(), cfg.lr_policy),
        }
        self.rng = np.random.default_rng(0)

    def sample(self) -> tuple[torch.Tensor, ...]:
        ind = self.rng.integers(0, len(self.data["o"]), size=self.batch_size)
        return tuple(torch.FloatTensor(self.data[name][ind]) for name in self.FIELDS)

    def losses(self, o, s, a, r, mask, s_next, o_next) -> dict[str, torch.Tensor]:
        """The reference's losses and per-step diagnostics: o [B, N, O], s [B, K, D],
        a [B, N, A], r and mask [B, 1]."""
        alpha = self.cfg.alpha
        ids = torch.eye(self.n_agents).expand(o.shape[0], -1, -1)
        o_with_id = torch.cat((o, ids), dim=-1)
        o_with_a_id = torch.cat((o, a, ids), dim=-1)
        o_next_with_id = torch.cat((o_next, ids), dim=-1)
        q_values = self.q_network(o_with_a_id)
        w, b = self.mix_network(s)
        q_total = (w * q_values).sum(dim=-2) + b.squeeze(dim=-1)
        v_next = self.v_target_network(o_next_with_id)
        w_next, b_next = self.mix_target_network(s_next)
        v_next_total = (w_next * v_next).sum(dim=-2) + b_next.squeeze(dim=-1)
        expected_q_total = r + self.cfg.gamma * mask * v_next_total.detach()
        result = {"q": ((q_total - expected_q_total.detach()) ** 2).mean()}
        result.update(  # computed every step, read only when the reference logs
            expected_q_total=expected_q_total.mean(),
            q_total=q_total.mean(),
            w1=w[:, 0, :].mean(),
            w2=w[:, 1 % self.n_agents, :].mean(),
            b=b.mean(),
            q_values1=q_values[:, 0, :].mean(),
            q_values2=q_values[:, 1 % self.n_agents, :].mean(),
        )
        q_target_values = self.q_target_network(o_with_a_id)
        w_target, _ = self.mix_target_network(s)
        v_values = self.v_network(o_with_id)
        z = 1 / alpha * (w_target.detach() * q_target_values.detach() - w_target.detach() * v_values)
        z = torch.clamp(z, min=-10.0, max=10.0)
        exp_a = torch.exp(z).detach().squeeze(-1)
        max_z = torch.max(z)
        max_z = torch.where(max_z < -1.0, torch.tensor(-1.0), max_z).detach()
        v_loss = torch.exp(z - max_z) + torch.exp(-max_z) * w_target.detach() * v_values / alpha
        result["v"] = v_loss.mean()
        result["policy"] = -(exp_a * self.policy_network.log_density(o_with_id, a)).mean()
        result.update(
            v_values1=v_values[:, 0, :].mean(),
            q_target_values1=q_target_values[:, 0, :].mean(),
            q_target_values2=q_target_values[:, 1 % self.n_agents, :].mean(),
        )
        return result

    def train_step(self, batch) -> None:
        o, s, a, r, mask, s_next, o_next, _ = batch
        loss = self.losses(o, s, a, r, mask, s_next, o_next)
        params = {
            "policy": list(self.policy_network.parameters()),
            "q": self.q_param,
            "v": list(self.v_network.parameters()),
        }
        for name in ("policy", "q", "v"):
            self.optimizers[name].zero_grad()
            loss[name].backward()
            nn.utils.clip_grad_norm_(params[name], self.cfg.grad_clip)
            self.optimizers[name].step()
        for online, target in (
            (self.q_network, self.q_target_network),
            (self.mix_network, self.mix_target_network),
            (self.v_network, self.v_target_network),
        ):
            polyak_per_parameter(online, target, self.cfg.tau)


def reference_as_written(
    storage: TransitionStorage, cfg, batch_size: int = 128
) -> SmacReference | MujocoReference:
    """The reference's training path for the data's action type (discrete: SMAC's)."""
    if storage.dims.action_type == "discrete":
        return SmacReference(storage, cfg, batch_size)
    return MujocoReference(storage, cfg, batch_size)


def as_written_loop(reference: SmacReference | MujocoReference, steps: int, warmup: int) -> float:
    """Updates/s of the reference's loop (sampling included) after ``warmup`` updates."""
    if isinstance(reference, SmacReference):
        stream = reference.batches()
        next_batch = lambda: next(stream)  # noqa: E731
    else:
        next_batch = reference.sample
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        reference.train_step(next_batch())
    return steps / (time.perf_counter() - start)
