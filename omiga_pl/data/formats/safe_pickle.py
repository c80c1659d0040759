"""Load foreign ``torch.save`` / pickle files without running code they could carry.

A pickle can call any importable function while it loads. Published episode files
only need NumPy arrays, NumPy scalars, torch tensors and plain containers, so the
unpickler here resolves exactly those globals and refuses every other one *before*
calling it. It subclasses the C unpickler, so it is as fast as ``pickle.load``
(``torch.load(weights_only=True)`` runs a pure-Python unpickler, several times slower
on files made of many small arrays).

``trusted=True`` falls back to the ordinary unpickler: that executes whatever the file
asks for, so it is only for files from a source you trust.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

# numpy 1.x pickles name ``numpy.core``; numpy 2 renamed it ``numpy._core``.
_MODULE_ALIASES = {
    "numpy.core.multiarray": "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric" if hasattr(np, "_core") else "numpy.core.numeric",
}
_ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"),
}


class RefusedGlobal(pickle.UnpicklingError):
    """The file asked for a global outside the allow-list; nothing was called."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.qualified = f"{module}.{name}"


class RestrictedUnpickler(pickle.Unpickler):
    """C unpickler that resolves only the allow-listed globals above."""

    def find_class(self, module: str, name: str) -> Any:
        module = _MODULE_ALIASES.get(module, module)
        if (module, name) in _ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        if module == "torch" and _is_torch_dtype(name):
            return super().find_class(module, name)
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _storage_from_bytes  # how plain pickle stores a tensor: torch.load inside
        raise RefusedGlobal(module, name)


def _storage_from_bytes(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), weights_only=False, pickle_module=_RestrictedPickleModule)


def _is_torch_dtype(name: str) -> bool:
    import torch

    return isinstance(getattr(torch, name, None), torch.dtype)


class _RestrictedPickleModule:
    """The ``pickle_module`` handed to ``torch.load``: only ``Unpickler``/``load`` are used."""

    __name__ = "omiga_pl_restricted_pickle"
    Unpickler = RestrictedUnpickler

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()


def load_pickled(path: str | os.PathLike, trusted: bool = False) -> Any:
    """Contents of a ``torch.save`` zip archive, a legacy torch file or a plain pickle.

    Raises :class:`RefusedGlobal` for a global outside the allow-list (unless
    ``trusted``) and the usual pickle / zip / EOF errors for damaged files.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head[:2] == b"PK" or (head[:1] == b"\x80" and _legacy_torch(path)):
        import torch

        with open(path, "rb") as handle:
            if trusted:
                return torch.load(handle, map_location="cpu", weights_only=False)
            return torch.load(
                handle, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule
            )
    with open(path, "rb") as handle:
        data = handle.read()
    if trusted:
        return pickle.loads(data)
    return RestrictedUnpickler(io.BytesIO(data)).load()


_LEGACY_TORCH_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _legacy_torch(path: Path) -> bool:
    """Whether a non-zip file is torch's pre-1.6 format (it opens with a pickled magic number)."""
    with open(path, "rb") as handle:
        return handle.read(14)[2:] == _LEGACY_TORCH_MAGIC


def is_pickle_like(path: str | os.PathLike) -> bool:
    """Cheap sniff: a torch zip archive or a binary pickle (protocol >= 2)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    if head[:2] == b"PK":
        return zipfile.is_zipfile(path)
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
