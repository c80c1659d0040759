"""Offline dataset generation, one module per environment family.

* :mod:`omiga_pl.generate.smax`: epsilon-mixtures of JaxMARL's heuristic SMAX policy;
* :mod:`omiga_pl.generate.mamujoco`: D4RL-style levels from trained behaviour policies;
* :mod:`omiga_pl.generate.mpe`: random / medium-replay / medium / expert MPE levels
  (mpe2 via PettingZoo) from a parameter-shared PPO run (:mod:`omiga_pl.generate.mpe_behaviour`);
* :mod:`omiga_pl.generate.behaviour`: those behaviour policies (stable-baselines3
  training, resuming, loading, action noise).

Command line: ``python -m omiga_pl.generate --env smax ...`` (SMAX) and
``python -m omiga_pl.generate mamujoco {levels,convert} ...`` (MaMuJoCo), ``python -m
omiga_pl.generate mpe levels ...`` (MPE). Every loop that
steps episodes is :func:`omiga_pl.rollout.rollout`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """``python -m omiga_pl.generate``: ``mamujoco ...`` goes to the MaMuJoCo generator,
    anything else to the SMAX one (whose ``--env`` defaults to ``smax``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # Imported on demand: each family's generator pulls in its own simulator stack.
    if argv[:1] == ["mpe"]:
        from omiga_pl.generate import mpe

        return mpe.main(argv[1:])
    if argv[:1] == ["mamujoco"]:
        from omiga_pl.generate import mamujoco

        return mamujoco.main(argv[1:])
    from omiga_pl.generate import smax

    return smax.main(argv)
