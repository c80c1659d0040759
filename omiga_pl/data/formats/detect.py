"""Which on-disk format is this path, and load it whatever it is.

``detect_format`` looks only at names and magic bytes (and HDF5 keys), never at the
data, and says why when it cannot decide. ``load_dataset`` reads a native file or runs
the matching importer, returning ``(EpisodeDataset, card)`` either way.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omiga_pl.data.formats.native import EpisodeDataset, hdf5_open_problem, read_native
from omiga_pl.data.formats.safe_pickle import is_pickle_like
from omiga_pl.errors import DatasetError, OmigaError

NATIVE = "native"
# format name -> (module, importer function); the MaMuJoCo importer lives in its own
# module owned elsewhere and is used only when that module is present.
IMPORTERS: dict[str, tuple[str, str]] = {
    "omiga-smac": ("omiga_pl.data.formats.smac_episodes", "import_smac_episodes"),
    "og-marl": ("omiga_pl.data.formats.og_marl", "import_og_marl_vault"),
    "omar-mpe": ("omiga_pl.data.formats.omar_mpe", "import_omar"),
    "omiga-mamujoco": ("omiga_pl.data.formats.omiga_mamujoco", "import_omiga_mamujoco"),
    "pymarl": ("omiga_pl.data.formats.pymarl", "import_pymarl"),
}
DESCRIPTIONS = {
    NATIVE: "omiga_pl native HDF5 (one file with a dataset card)",
    "omiga-smac": "OMIGA / MADT SMAC: directory of per-episode torch.save files",
    "og-marl": "OG-MARL flashbax vault directory (tensorstore/zarr arrays)",
    "omar-mpe": "OMAR MPE: directory of per-agent NumPy arrays (obs_0.npy, acs_0.npy, ...)",
    "omiga-mamujoco": "OMIGA MaMuJoCo HDF5 (keys o, s, a, r, d)",
    "pymarl": "pymarl / OffPyMARL episode buffer HDF5 (obs, actions, reward, terminated, filled; "
    "a file or a directory of them)",
}
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAMUJOCO_KEYS = {"o", "a", "r", "d"}
# pymarl's EpisodeBatch is recognised by obs + filled (its padding mask); the importer
# then names whichever other field is missing.
PYMARL_KEYS = {"obs", "filled"}


def known_formats() -> list[str]:
    """Every format name ``--from`` accepts (the MaMuJoCo one only when installed)."""
    names = [NATIVE]
    for name, (module, _) in IMPORTERS.items():
        if importlib.util.find_spec(module) is not None:
            names.append(name)
    return names


def importer(fmt: str) -> Callable[..., tuple[EpisodeDataset, dict[str, Any]]]:
    """The import function of ``fmt``; a clear error for an unknown or absent one."""
    if fmt not in IMPORTERS:
        raise OmigaError(f"--from: expected one of {known_formats()}, found '{fmt}'")
    module_name, function = IMPORTERS[fmt]
    if importlib.util.find_spec(module_name) is None:
        raise OmigaError(f"format '{fmt}' needs {module_name}, which this installation does not have")
    return getattr(importlib.import_module(module_name), function)


def detect_format(path: str | os.PathLike) -> str:
    """The format name of ``path``; :class:`DatasetError` when unknown or ambiguous."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, None, "not found")
    if path.is_file():
        return _detect_file(path)
    candidates = _detect_dir(path)
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise DatasetError(path, None, f"ambiguous: looks like each of {candidates}; pass --from FORMAT")
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DatasetError(path, None, "empty directory")
    nested = sorted(p.name for p in entries if p.is_dir() and _detect_dir(p))
    if nested:
        raise DatasetError(path, None, f"holds several datasets {nested}: pass one of them")
    raise DatasetError(
        path, None, f"a directory in no known dataset layout; known formats: {known_formats()}"
    )


def _detect_file(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head == HDF5_MAGIC:
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                if "card_json" in handle.attrs:
                    return NATIVE
                keys = set(handle.keys())
        except OSError as error:
            raise DatasetError(path, None, hdf5_open_problem(path, error)) from None
        if keys >= MAMUJOCO_KEYS:
            return "omiga-mamujoco"
        if keys >= PYMARL_KEYS:
            return "pymarl"
        raise DatasetError(
            path,
            None,
            f"an HDF5 file that is neither native (no card_json attribute), OMIGA MaMuJoCo "
            f"(keys o, s, a, r, d) nor a pymarl buffer (keys obs, filled, ...); found keys {sorted(keys)}",
        )
    if path.suffix == ".npy":
        raise DatasetError(path, None, "one array of an OMAR dataset: pass the directory that holds it")
    if is_pickle_like(path):
        raise DatasetError(path, None, "one episode file of an OMIGA SMAC dataset: pass its directory")
    if path.suffix in (".h5", ".hdf5"):
        raise DatasetError(path, None, "not an HDF5 file (truncated or corrupt?): bad signature")
    raise DatasetError(path, None, f"unknown dataset file; known formats: {known_formats()}")


def _is_pymarl_file(path: Path) -> bool:
    """An HDF5 file (no native card) with a pymarl episode buffer's keys; False if unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return "card_json" not in handle.attrs and set(handle.keys()) >= PYMARL_KEYS
    except OSError:
        return False


def _detect_dir(path: Path) -> list[str]:
    found = []
    if (path / "metadata.json").is_file():
        found.append("og-marl")
    elif any((child / "metadata.json").is_file() for child in path.iterdir() if child.is_dir()):
        children = [c for c in path.iterdir() if (c / "metadata.json").is_file()]
        if len(children) == 1:
            found.append("og-marl")
    if (path / "obs_0.npy").is_file():
        found.append("omar-mpe")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    h5 = [p for p in files if p.suffix in (".h5", ".hdf5")]
    if h5 and all(_is_pymarl_file(p) for p in h5[:3]):
        found.append("pymarl")
    sample = [p for p in files if p.suffix not in (".md", ".json", ".npy", ".txt")][:3]
    if sample and all(is_pickle_like(p) for p in sample):
        found.append("omiga-smac")
    return found


def load_dataset(
    path: str | os.PathLike, fmt: str | None = None, **options: Any
) -> tuple[EpisodeDataset, dict[str, Any], str]:
    """Read ``path`` in format ``fmt`` (detected when None): ``(data, card, format)``.

    ``options`` go to the importer; ``progress`` is dropped where unsupported, any
    other option the format does not take is an error naming it.
    """
    fmt = fmt or detect_format(path)
    options = {k: v for k, v in options.items() if v is not None and v is not False}
    if fmt == NATIVE:
        options.pop("progress", None)
        if options:
            raise OmigaError(f"option(s) {sorted(options)} do not apply to a native file")
        data, card = read_native(path)
        return data, card, fmt
    function = importer(fmt)
    accepted = inspect.signature(function).parameters
    if "progress" not in accepted:
        options.pop("progress", None)
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise OmigaError(f"{flags}: not an option of format '{fmt}'")
    data, card = function(path, **options)
    return data, card, fmt
