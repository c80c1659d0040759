"""Text rendering for ``python -m omiga_pl.data``: dataset summaries, histograms, tables."""

from __future__ import annotations

from typing import Any

import numpy as np

from omiga_pl.data.formats.native import EpisodeDataset, dataset_statistics

# Card keys the summary already shows; the rest is listed under "card".
SHOWN = {
    "env_family",
    "scenario",
    "quality",
    "episode_limit",
    "n_agents",
    "obs_dim",
    "state_dim",
    "has_states",
    "action_type",
    "action_dim",
    "n_episodes",
    "n_transitions",
    "episode_length_mean",
    "return_mean",
    "return_std",
    "return_min",
    "return_max",
    "win_rate",
    "n_terminations",
    "n_truncations",
    "derived",
    "format",
    "format_version",
}


def summary(label: str, fmt: str, data: EpisodeDataset, card: dict[str, Any], bins: int = 10) -> str:
    """The ``inspect`` text: identity, dims, statistics, derived notes, histogram, card."""
    stats = dataset_statistics(data)
    dims = data.dims
    lines = [
        f"dataset      {label}  ({fmt})",
        f"environment  {card.get('env_family', '?')}/{card.get('scenario', '?')}   quality "
        f"{card.get('quality', '?')}   episode limit {card.get('episode_limit', '?')}",
        f"agents       {dims.n_agents}   obs {dims.obs_dim}   state {dims.state_dim}"
        f"{'' if data.states is not None else ' (concatenated observations)'}   actions "
        f"{dims.action_type} × {dims.action_dim}",
        f"episodes     {stats['n_episodes']}   transitions {stats['n_transitions']}   "
        f"length mean {stats['episode_length_mean']:.1f} (min {int(data.episode_lengths.min())}, "
        f"max {int(data.episode_lengths.max())})",
        f"return       mean {stats['return_mean']:.4g} ± {stats['return_std']:.4g}   "
        f"min {stats['return_min']:.4g}   max {stats['return_max']:.4g}"
        + (f"   win rate {stats['win_rate']:.3f}" if "win_rate" in stats else ""),
        f"episode ends {stats['n_terminations']} terminated, {stats['n_truncations']} truncated",
    ]
    if dims.action_type == "continuous":
        lines.append(saturation_line(data.actions))
    derived = card.get("derived") or {}
    if derived:
        lines.append("derived      (what the importer reconstructed, and how)")
        lines += [f"  {key}: {value}" for key, value in derived.items()]
    lines.append(f"returns      histogram over {stats['n_episodes']} episodes")
    lines += ["  " + row for row in histogram(data.episode_returns(), bins)]
    rest = {k: v for k, v in card.items() if k not in SHOWN}
    if rest:
        lines.append("card")
        lines += [f"  {key}: {_short(value)}" for key, value in sorted(rest.items())]
    return "\n".join(lines)


def saturation_line(actions: np.ndarray) -> str:
    """Shares of continuous action entries at exactly +-1 and within 1e-3 of it.

    Exact +-1 are where a tanh-Gaussian's log-probability needs its atanh clip
    (docs/algorithms/policies.md); zero-padded entries of smaller agents count as unsaturated.
    """
    magnitude = np.abs(np.asarray(actions, dtype=np.float64))
    exact = float((magnitude >= 1.0).mean()) if magnitude.size else 0.0
    near = float((magnitude >= 0.999).mean()) if magnitude.size else 0.0
    return (
        f"actions      saturated (exactly +-1) {100 * exact:.1f} % of entries   "
        f"|a| >= 0.999 {100 * near:.1f} %   largest |a| {float(magnitude.max(initial=0.0)):.8g}"
    )


def histogram(values: np.ndarray, bins: int = 10, width: int = 40) -> list[str]:
    """Rows ``[lo, hi)  ####  count`` of a text histogram."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if low == high:
        return [f"[{low:.4g}, {high:.4g}]  {'#' * width}  {values.size}"]
    counts, edges = np.histogram(values, bins=bins)
    labels = [f"[{edges[i]:.4g}, {edges[i + 1]:.4g}{']' if i == bins - 1 else ')'}" for i in range(bins)]
    pad = max(map(len, labels))
    top = max(int(counts.max()), 1)
    return [
        f"{label:<{pad}}  {'#' * round(width * c / top):<{width}}  {int(c)}"
        for label, c in zip(labels, counts)
    ]


def registry_table(entries: dict[str, dict[str, Any]]) -> str:
    """One line per registry entry: name, kind, env, quality, dims, size, checksum."""
    header = ("name", "kind", "format", "env", "quality", "agents", "obs", "actions", "episodes", "sha256")
    rows = [header]
    for name, e in entries.items():
        actions = (
            f"{e.get('action_type', '?')[:4]}×{e.get('action_dim', '?')}" if e.get("action_type") else "?"
        )
        rows.append(
            (
                name,
                e.get("kind", "?"),
                str(e.get("format", "?")),
                str(e.get("env", "?")),
                str(e.get("quality", "?")),
                _value(e.get("n_agents")),
                _value(e.get("obs_dim")),
                actions,
                _value(e.get("n_episodes", (e.get("reported") or {}).get("n_episodes"))),
                (e.get("sha256") or "unchecked")[:12],
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(f"{c!s:<{w}}" for c, w in zip(row, widths)).rstrip() for row in rows)


def _value(value: Any) -> str:
    return "?" if value is None else str(value)


def _short(value: Any, limit: int = 300) -> str:
    """Text in full; long dicts / lists (e.g. version tables) cut at ``limit``."""
    text = str(value)
    if isinstance(value, str) or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
