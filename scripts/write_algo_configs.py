"""Write ``conf/algo/<name>.yaml`` for every registered algorithm from its config dataclass.

Each file holds exactly the dataclass defaults (tests/test_algorithms.py checks that they
stay equal), with every key's comment copied from the dataclass source, where the key is
documented once.

    python scripts/write_algo_configs.py
"""

from __future__ import annotations

import inspect
import re
import sys
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omiga_pl.algos import ALGORITHMS  # noqa: E402


def field_comments(config_class: type) -> dict[str, list[str]]:
    """``# ...`` lines directly above each ``name: type = default`` line, over the MRO."""
    comments: dict[str, list[str]] = {}
    for klass in reversed(config_class.__mro__):
        if klass is object:
            continue
        pending: list[str] = []
        for line in inspect.getsource(klass).splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                pending.append(stripped)
                continue
            match = re.match(r"(\w+)\s*:", stripped)
            if match and pending:
                comments[match.group(1)] = pending
            pending = []
    return comments


def render(name: str) -> str:
    module = ALGORITHMS[name]
    config_class = module.config_class
    summary = (inspect.getdoc(sys.modules[module.__module__]) or "").splitlines()[0]
    lines = [
        f"# {summary}",
        f"# Defaults of {config_class.__name__} ({module.__module__}); tests keep this file equal to them.",
        f"# Action types: {', '.join(module.action_types)}. Use: --config conf/algo/{name}.yaml",
        "algo:",
    ]
    comments = field_comments(config_class)
    for key, value in asdict(config_class()).items():
        lines += [f"  {c}" for c in comments.get(key, [])]
        dumped = OmegaConf.to_yaml({key: value}).strip()
        if isinstance(value, list):
            dumped = f"{key}: {list(value)}"
        lines.append(f"  {dumped}")
    return "\n".join(lines) + "\n"


def main() -> None:
    out = ROOT / "conf" / "algo"
    out.mkdir(exist_ok=True)
    for name in ALGORITHMS:
        (out / f"{name}.yaml").write_text(render(name))
        print(f"wrote {out / name}.yaml")


if __name__ == "__main__":
    main()
