"""Importer for OG-MARL vaults: flashbax ``Vault`` directories of tensorstore/zarr arrays.

A vault directory (``<root>/<env>/<scenario>.vlt/<Quality>/``) holds ``metadata.json``
(the tree of array names, shapes and dtypes) and one zarr array per leaf inside an
OCDBT key-value store (older vaults: plain zarr directories), plus ``vault_index``,
the number of valid time steps. Leaves are ``[B, time, ...]``:

===========================  ==================  =====================================
leaf                         shape               native use
===========================  ==================  =====================================
observations                 [B, T, N, O]        observations
actions                      [B, T, N] / [..A]   actions (index / continuous)
rewards                      [B, T, N]           rewards (agent 0, team reward)
terminals / truncations      [B, T, N]           episode ends (agent 0's flags)
infos.state (optional)       [B, T, S]           states
infos.legals (optional)      [B, T, N, A]        avail_actions
===========================  ==================  =====================================

The arrays are read with ``tensorstore`` directly: no JAX or flashbax at run time.
Steps are stored back to back with no final observation, so each episode's final row
repeats its last observation (a truncated episode then bootstraps from that copy; the
card counts them). Steps after the last episode end (an unfinished episode) are dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from omiga_pl.data.formats.importing import (
    Notes,
    allow_taken_actions,
    as_float32,
    as_index,
    as_mask,
    check_action_width,
    final_row_index,
)
from omiga_pl.data.formats.native import EpisodeDataset
from omiga_pl.errors import DatasetError, OmigaError

FORMAT = "og-marl"
METADATA = "metadata.json"
REQUIRED = ("observations", "actions", "rewards", "terminals", "truncations")
OPTIONAL = ("infos.state", "infos.legals")
# Environment directories of the OG-MARL dataset hub (vaults/<env>/<scenario>.vlt/<Quality>).
OG_MARL_ENVS = (
    "smac_v1",
    "smac_v2",
    "mamujoco",
    "gymnasium_mamujoco",
    "mpe",
    "flatland",
    "pettingzoo",
    "rware",
    "lbf",
    "voltage_control",
    "cityflow",
    "smax",
)


def find_vault(src: str | os.PathLike) -> Path:
    """The vault directory (the one holding ``metadata.json``) that ``src`` names."""
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(src, None, "expected a flashbax vault directory")
    if (src / METADATA).is_file():
        return src
    children = sorted(p for p in src.iterdir() if (p / METADATA).is_file())
    if len(children) == 1:
        return children[0]
    if children:
        names = [p.name for p in children]
        raise DatasetError(src, None, f"holds {len(children)} vaults {names}: pass one of them")
    if not any(src.iterdir()):
        raise DatasetError(src, None, "empty directory")
    raise DatasetError(src, METADATA, "missing: not a flashbax vault directory")


def read_metadata(vault: Path) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """Leaf name -> shape string, leaf name -> dtype, and the raw metadata."""
    try:
        meta = json.loads((vault / METADATA).read_text())
        shapes = _flatten(meta["structure_shape"])
        dtypes = _flatten(meta["structure_dtype"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DatasetError(vault / METADATA, None, f"not valid vault metadata: {error}") from None
    return shapes, dtypes, meta


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _ts() -> Any:
    try:
        import tensorstore
    except ImportError:
        raise OmigaError(
            "reading OG-MARL vaults needs the 'tensorstore' package: pip install tensorstore"
        ) from None
    return tensorstore


def _spec(vault: Path, name: str) -> dict[str, Any]:
    """Tensorstore spec of one leaf (flashbax names it ``<dotted.path>.``)."""
    if (vault / "manifest.ocdbt").exists():
        kvstore = {"driver": "ocdbt", "base": f"file://{vault.resolve()}", "path": name}
    else:  # vaults written before flashbax used OCDBT: plain zarr directories
        kvstore = {"driver": "file", "path": f"{(vault / name).resolve()}/"}
    return {"driver": "zarr", "kvstore": kvstore}


def open_leaf(vault: Path, field: str, store_name: str) -> Any:
    """Open one array read-only; a missing or unreadable one names its field."""
    ts = _ts()
    try:
        return ts.open(_spec(vault, store_name), open=True, read=True, write=False).result()
    except Exception as error:  # tensorstore raises ValueError/RuntimeError subclasses
        first = str(error).split("[tensorstore_spec")[0].strip()
        raise DatasetError(vault, field, f"array cannot be opened (missing or corrupt): {first}") from None


def read_leaf(vault: Path, field: str, pending: Any) -> np.ndarray:
    """Wait for one started read; a failure names the field."""
    try:
        return np.asarray(pending.result())
    except Exception as error:
        first = str(error).split("[tensorstore_spec")[0].strip()
        raise DatasetError(vault, field, f"cannot be read (truncated or corrupt chunk?): {first}") from None


def read_vault_arrays(vault: Path, progress: bool = False) -> tuple[dict[str, np.ndarray], int]:
    """Every known leaf as NumPy [B, T, ...] (T = the vault index) and T."""
    from tqdm import tqdm

    shapes, _, _ = read_metadata(vault)
    missing = [name for name in REQUIRED if name not in shapes]
    if missing:
        raise DatasetError(
            vault, missing[0], f"missing from the vault (metadata.json lists {sorted(shapes)})"
        )
    index = open_leaf(vault, "vault_index", "vault_index")
    n_steps = int(np.asarray(index.read().result()).reshape(-1)[0])
    if n_steps <= 0:
        raise DatasetError(vault, "vault_index", f"the vault holds no steps (vault_index {n_steps})")
    names = [n for n in REQUIRED + OPTIONAL if n in shapes]
    pending = {}
    for name in names:  # start every read first: tensorstore reads them concurrently
        store = open_leaf(vault, name, f"{name}.")
        if store.shape[1] < n_steps:
            raise DatasetError(
                vault, name, f"holds {store.shape[1]} steps but vault_index says {n_steps} (truncated?)"
            )
        pending[name] = store[:, :n_steps].read()
    arrays = {}
    for name in tqdm(names, desc=f"reading {vault.name}", unit="array", disable=not progress):
        arrays[name] = read_leaf(vault, name, pending[name])
    return arrays, n_steps


def _check_layout(vault: Path, arrays: dict[str, np.ndarray]) -> tuple[int, int, int]:
    """B, T, N after checking every leaf's leading axes and agent count."""
    obs = arrays["observations"]
    if obs.ndim != 4:
        raise DatasetError(vault, "observations", f"expected shape [B, T, N, O], found {list(obs.shape)}")
    batch, n_steps, n_agents = obs.shape[:3]
    # Allowed ranks; team-level rewards / flags may come without the agent axis.
    per_agent = {
        "actions": (3, 4),
        "rewards": (2, 3),
        "terminals": (2, 3),
        "truncations": (2, 3),
        "infos.legals": (4,),
    }
    for name, array in arrays.items():
        if array.shape[:2] != (batch, n_steps):
            raise DatasetError(
                vault, name, f"expected leading axes [B={batch}, T={n_steps}], found {list(array.shape[:2])}"
            )
        if name in per_agent:
            if array.ndim not in per_agent[name]:
                raise DatasetError(vault, name, f"expected shape [B, T, N, ...], found {list(array.shape)}")
            if array.ndim > 2 and array.shape[2] != n_agents:
                raise DatasetError(
                    vault,
                    name,
                    f"inconsistent agent counts: observations has {n_agents} agents, "
                    f"{name} has {array.shape[2]}",
                )
    state = arrays.get("infos.state")
    if state is not None and state.ndim != 3:
        raise DatasetError(vault, "infos.state", f"expected shape [B, T, S], found {list(state.shape)}")
    return batch, n_steps, n_agents


def import_og_marl_vault(
    src: str | os.PathLike,
    *,
    progress: bool = False,
    env_family: str | None = None,
    scenario: str | None = None,
    quality: str | None = None,
) -> tuple[EpisodeDataset, dict[str, Any]]:
    """Read an OG-MARL vault (read-only) into the native layout; see the module docstring.

    Args:
        src: the vault directory ``.../<scenario>.vlt/<Quality>`` (or its parent when it
            holds a single vault).
        progress: show a progress bar over arrays.
        env_family, scenario, quality: recorded in the card; inferred from the path
            (``<env>/<scenario>.vlt/<Quality>``) when omitted.
    """
    vault = find_vault(src)
    arrays, _ = read_vault_arrays(vault, progress)
    batch, _, n_agents = _check_layout(vault, arrays)
    notes: Notes = {}

    ends_t = as_mask(vault, "terminals", arrays["terminals"])
    ends_u = as_mask(vault, "truncations", arrays["truncations"])
    if ends_t.ndim == 3:
        disagree = int((ends_t.any(-1) != ends_t.all(-1)).sum() + (ends_u.any(-1) != ends_u.all(-1)).sum())
        ends_t, ends_u = ends_t[..., 0], ends_u[..., 0]
        if disagree:
            notes["episode_ends"] = f"agents' done flags disagree at {disagree} step(s); agent 0's are used"
    both = int((ends_t & ends_u).sum())
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in arrays}
    term_list, trunc_list, lengths_list = [], [], []
    dropped = 0
    for b in range(batch):
        done = ends_t[b] | ends_u[b]
        end_steps = np.flatnonzero(done)
        if end_steps.size == 0:
            dropped += done.shape[0]
            continue
        last = int(end_steps[-1]) + 1
        dropped += done.shape[0] - last
        for name, array in arrays.items():
            pieces[name].append(array[b, :last])
        term_list.append(ends_t[b, :last])
        trunc_list.append(ends_u[b, :last] & ~ends_t[b, :last])
        lengths_list.append(np.diff(np.concatenate([[-1], end_steps])))
    if not lengths_list:
        raise DatasetError(
            vault, "terminals", "no complete episode: no step is flagged terminal or truncated"
        )
    cat = {name: np.concatenate(parts) for name, parts in pieces.items()}
    lengths = np.concatenate(lengths_list).astype(np.int64)
    terminations = np.concatenate(term_list)
    truncations = np.concatenate(trunc_list)
    rows = final_row_index(lengths)
    n_steps = int(lengths.sum())
    step_rows = np.arange(n_steps) + np.repeat(np.arange(lengths.shape[0]), lengths)

    obs = as_float32(vault, "observations", cat["observations"])
    rewards = as_float32(vault, "rewards", cat["rewards"])
    if rewards.ndim == 2:
        differ = int((rewards != rewards[:, :1]).any(axis=1).sum())
        rewards = rewards[:, 0]
        notes["rewards"] = "agent 0's reward" + (
            f"; agents' rewards differ at {differ} step(s)" if differ else ""
        )
    actions = cat["actions"]
    avail = None
    if "infos.legals" in cat:
        avail = as_mask(vault, "infos.legals", cat["infos.legals"])
        actions = as_index(vault, "actions", actions)
        check_action_width(vault, actions, avail.shape[2], "actions")
        avail = np.ascontiguousarray(avail[rows])
        repaired = allow_taken_actions(avail, actions, step_rows)
        notes["avail_actions"] = "infos.legals; final row repeats the last step's mask" + (
            f"; {repaired} taken action(s) marked illegal were set available" if repaired else ""
        )
    elif actions.ndim == 2 or np.issubdtype(actions.dtype, np.integer):
        notes["avail_actions"] = "none stored (no infos.legals): every action counts as available"
    if actions.ndim == 2:
        actions = as_index(vault, "actions", actions)
    else:
        actions = as_float32(vault, "actions", actions)
    states = None
    if "infos.state" in cat:
        states = np.ascontiguousarray(as_float32(vault, "infos.state", cat["infos.state"])[rows])
        notes["states"] = "infos.state; final row repeats the last state"
    else:
        notes["states"] = "none stored (no infos.state): the mixer sees the concatenated observations"
    data = EpisodeDataset(
        observations=np.ascontiguousarray(obs[rows]),
        states=states,
        avail_actions=avail,
        actions=actions,
        rewards=np.ascontiguousarray(rewards),
        terminations=terminations,
        truncations=truncations,
        episode_lengths=lengths,
    )
    data.validate(vault)
    notes["observations"] = (
        "each episode's final row repeats its last observation (vaults store no final observation)"
    )
    notes["terminations"] = "agent 0's terminals flag"
    notes["truncations"] = (
        f"agent 0's truncations flag where not terminal: {int(truncations.sum())} episode(s), which "
        "bootstrap from the repeated last observation"
        + (f"; {both} step(s) flagged both kept as terminal" if both > 0 else "")
    )
    if dropped:
        notes["episodes"] = f"dropped {dropped} step(s) after the last episode end (an unfinished episode)"
    notes["episode_won"] = "not recorded by this layout"
    return data, _card(vault, env_family, scenario, quality, batch, n_agents, notes)


def _card(
    vault: Path,
    env_family: str | None,
    scenario: str | None,
    quality: str | None,
    batch: int,
    n_agents: int,
    notes: Notes,
) -> dict[str, Any]:
    parent = vault.resolve().parent
    inferred_scenario = parent.name[: -len(".vlt")] if parent.name.endswith(".vlt") else None
    family = parent.parent.name if parent.parent.name in OG_MARL_ENVS else None
    card: dict[str, Any] = {
        "env_family": env_family or family or "unknown",
        "scenario": scenario or inferred_scenario or "unknown",
        "quality": quality or vault.name.lower(),
        "source_format": FORMAT,
        "source_path": str(vault),
        "source_batch_rows": batch,
        "derived": notes,
    }
    return card
