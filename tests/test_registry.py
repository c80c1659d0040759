"""The dataset registry: register, verify (cached), resolve by name, the shipped registry."""

from __future__ import annotations

import os

import pytest
import yaml
from conftest import make_episodes

from omiga_pl.data import registry
from omiga_pl.data.formats.detect import IMPORTERS, NATIVE
from omiga_pl.data.formats.native import sidecar_path, write_native
from omiga_pl.data.paths import resolve_data_path
from omiga_pl.errors import DatasetError, OmigaError


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private registry and checksum cache; one native file inside the registry dir."""
    reg = tmp_path / "data" / "registry.yaml"
    monkeypatch.setenv(registry.REGISTRY_ENV, str(reg))
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    path = tmp_path / "data" / "tiny_3m.h5"
    write_native(path, make_episodes([3, 4, 5]), {"env_family": "smax", "scenario": "3m", "quality": "good"})
    return reg, path


def test_register_verify_and_resolve(env):
    reg, path = env
    name, entry = registry.register(path)
    assert name == "tiny_3m" and entry["kind"] == "bundled" and entry["path"] == "tiny_3m.h5"
    assert entry["sha256"] == registry.sidecar_sha256(path)
    assert entry["env"] == "smax:3m" and entry["n_agents"] == 3 and entry["n_episodes"] == 3
    assert registry.verify_entry(name, registry.load_registry()[name]) == ("ok", str(path))
    assert registry.resolve("tiny_3m") == path
    assert resolve_data_path("tiny_3m") == path
    assert reg.read_text().startswith("# omiga_pl dataset registry")


def test_checksum_mismatch_is_one_clear_error(env):
    _, path = env
    registry.register(path)
    with open(path, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(DatasetError, match=r"sha256'.*checksum mismatch for registry entry 'tiny_3m'"):
        resolve_data_path("tiny_3m")
    status, _ = registry.verify_entry("tiny_3m", registry.load_registry()["tiny_3m"])
    assert status == "mismatch"


def test_verification_is_cached_until_the_file_changes(env, monkeypatch):
    _, path = env
    calls = []
    real = registry.sha256_file
    monkeypatch.setattr(registry, "sha256_file", lambda p: calls.append(p) or real(p))
    first = registry.cached_sha256(path)
    assert registry.cached_sha256(path) == first and len(calls) == 1
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert registry.cached_sha256(path) == first and len(calls) == 2


def test_register_refuses_a_file_that_changed_after_its_card(env):
    _, path = env
    card = sidecar_path(path)
    card.write_text(card.read_text().replace(registry.sidecar_sha256(path), "0" * 64))
    with pytest.raises(DatasetError, match="the sidecar card records 0000"):
        registry.register(path)


def test_generated_entries_missing_files_and_unknown_names(env, tmp_path):
    _reg, _ = env
    outside = tmp_path / "runs" / "made.h5"
    write_native(
        outside, make_episodes([2, 2]), {"env_family": "smax", "scenario": "3m", "command": "make it"}
    )
    _name, entry = registry.register(outside, name="made")
    assert entry["kind"] == "generated" and entry["path"] == str(outside.resolve())
    outside.unlink()
    with pytest.raises(DatasetError, match="registered as 'made' but not found; it was made by: make it"):
        registry.resolve("made")
    with pytest.raises(OmigaError, match="no dataset named 'nope'"):
        registry.resolve("nope")
    assert resolve_data_path("no/such/file.h5").name == "file.h5"  # not a name: path as given


def test_published_entries_point_to_their_source(env):
    _reg, _ = env
    registry.save_registry(
        {
            "omiga-smac:5m_vs_6m/good": {
                "kind": "published",
                "format": "omiga-smac",
                "source": "the OMIGA README",
            }
        }
    )
    with pytest.raises(
        DatasetError, match="a published dataset that is not on this machine; get it from the OMIGA"
    ):
        resolve_data_path("omiga-smac:5m_vs_6m/good")


def test_corrupt_registry_is_a_clear_error(env):
    reg, _ = env
    reg.write_text("datasets: [unclosed")
    with pytest.raises(DatasetError, match="registry.yaml: not valid YAML"):
        registry.load_registry()
    reg.write_text("datasets:\n  x: {kind: weird}\n")
    with pytest.raises(DatasetError, match=r"field 'x': expected an entry with kind in"):
        registry.load_registry()


def test_shipped_registry_is_consistent(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path))
    entries = registry.load_registry(registry.DEFAULT_REGISTRY)
    raw = yaml.safe_load(registry.DEFAULT_REGISTRY.read_text())
    assert raw["version"] == 1
    bundled = {n: e for n, e in entries.items() if e["kind"] == "bundled"}
    assert {"smax_3m_good", "smax_3m_medium", "smax_3m_poor"} <= set(bundled)
    listed = {e["path"] for e in bundled.values()}
    for path in sorted(registry.DEFAULT_REGISTRY.parent.glob("*.h5")):
        assert path.name in listed, f"{path} is not registered: python -m omiga_pl.data register {path}"
    for name, entry in bundled.items():
        path = registry.entry_file(name, entry, registry.DEFAULT_REGISTRY)
        assert path.is_file(), name
        assert entry["sha256"] == registry.sidecar_sha256(path), (
            f"{name}: registry sha256 differs from the sidecar card; run "
            f"python -m omiga_pl.data register {path}"
        )
        assert registry.verify_entry(name, entry, registry.DEFAULT_REGISTRY)[0] == "ok", name
    published = {n: e for n, e in entries.items() if e["kind"] == "published"}
    assert len(published) >= 40
    for name, entry in published.items():
        assert entry["format"] in set(IMPORTERS) | {NATIVE}, name
        assert entry["source"] and entry["env"] and entry["quality"], name
        assert entry["sha256"] is None and entry["checked"] is False and entry["why_unchecked"], name
    assert published["omiga-smac:2c_vs_64zg/poor"]["reported"]["n_episodes"] == 348
