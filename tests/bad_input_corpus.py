"""A corpus of bad inputs and faults, each run through the real CLIs, and how each ended.

Used by ``tests/test_bad_inputs.py`` (one test per case) and by
``scripts/bad_input_report.py`` (the counts by class). Every case builds its own inputs
in a fresh workspace: broken datasets, cards, configs, checkpoints and output locations.
A run is judged on what a user sees and keeps:

- ``traceback``: an exception escaped ``main`` (or stderr holds a traceback);
- ``accepted``: a bad input ran to exit 0 (``refused`` for a valid one that was not);
- ``not one line``: refused, but not with exactly one ``<prog>: error:`` line on stderr;
- ``misleading``: the line does not name the file and the field / key, or shows
  internals (OmegaConf node types, a key printed as '?');
- ``modified``: a file that existed before the command changed or vanished;
- ``leftover``: a file or directory that the failed command created.

The CLIs run in-process (``main([...])``), from inside the workspace.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from conftest import make_episodes

import omiga_pl
from omiga_pl.data.formats.native import write_native
from omiga_pl.data.formats.synthetic import write_omar, write_pymarl, write_smac_episodes

ROOT = Path(__file__).resolve().parent.parent
# The configs shipped with the code under test (its checkout's conf/), else this checkout's.
CODE_ROOT = Path(omiga_pl.__file__).resolve().parent.parent
CONF = CODE_ROOT / "conf" if (CODE_ROOT / "conf").is_dir() else ROOT / "conf"
SMAC_YAML = CONF / "smac.yaml"
MAMUJOCO_YAML = CONF / "mamujoco.yaml"
CLASSES = ("dataset", "card", "config", "checkpoint", "output", "arguments", "fault", "valid")
PROBLEMS = ("traceback", "accepted", "refused", "not one line", "misleading", "modified", "leftover", "check")
# Shown only by internals: never part of a message for a user.
FORBIDDEN_ALWAYS = ("Traceback", "AnyNode", "key '?'", "object_type=", "full_key:")
LENGTHS = [5, 7, 4, 6, 8, 5]
CARD = {"env_family": "smax", "scenario": "3m", "episode_limit": 100, "quality": "synthetic"}


# ---------------------------------------------------------------------------- the base


@dataclass
class Base:
    """Shared valid inputs, built once; cases copy what they break."""

    root: Path
    good: Path  # native smax/3m file
    same_size: Path  # other content, the same number of transitions
    other_size: Path  # other number of transitions
    smax_2s3z: Path  # a valid SMAX 2s3z file (for the pinned-scenario case)
    continuous: Path  # a valid continuous-action file (Hopper-3x1 sizes)
    smac_dir: Path  # an OMIGA SMAC episode directory (convert source)
    omar_dir: Path  # an OMAR MPE directory (convert source)
    run: Path  # a finished run directory: checkpoints at update 2 and 4


def fit_common(ws: Path) -> list[str]:
    """Overrides that keep a fit tiny and inside the workspace."""
    return [
        f"log.out_dir={ws / 'runs'}",
        "trainer.enable_progress_bar=false",
        "eval.enabled=false",
        "algo.hidden_sizes=[16]",
        "trainer.max_steps=2",
        "log.checkpoint_every=2",
        "log.log_every=1",
    ]


def continuous_episodes(lengths: list[int], seed: int = 0) -> Any:
    data = make_episodes(lengths, n_agents=3, obs_dim=14, seed=seed)
    rng = np.random.default_rng(seed)
    data.actions = rng.uniform(-1, 1, (data.n_transitions, 3, 1)).astype(np.float32)
    data.avail_actions = None
    data.states = None
    return data


def build_base(root: Path) -> Base:
    from omiga_pl.fit import main as fit_main

    root.mkdir(parents=True, exist_ok=True)
    base = Base(
        root=root,
        good=root / "good.h5",
        same_size=root / "same_size.h5",
        other_size=root / "other_size.h5",
        smax_2s3z=root / "smax_2s3z.h5",
        continuous=root / "continuous.h5",
        smac_dir=root / "smac" / "3m" / "good",
        omar_dir=root / "omar" / "simple_spread" / "medium" / "seed_0_data",
        run=root / "runs" / "base",
    )
    write_native(base.good, make_episodes(LENGTHS, seed=0), CARD)
    write_native(base.same_size, make_episodes(LENGTHS, seed=1), CARD)
    write_native(base.other_size, make_episodes([*LENGTHS, 3], seed=2), CARD)
    write_native(
        base.smax_2s3z,
        make_episodes([4, 5], n_agents=5, obs_dim=127, state_dim=120, n_actions=10),
        {"env_family": "smax", "scenario": "2s3z", "episode_limit": 100},
    )
    write_native(
        base.continuous,
        continuous_episodes([4, 5, 6]),
        {"env_family": "mamujoco", "scenario": "Hopper-3x1", "episode_limit": 1000, "obs_mode": "reference"},
    )
    write_smac_episodes(base.smac_dir, [4, 6, 3])
    write_omar(base.omar_dir, n_episodes=3, episode_length=5)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = fit_main(
            [
                f"data.path={base.good}",
                f"log.out_dir={root / 'runs'}",
                "log.run_name=base",
                "trainer.enable_progress_bar=false",
                "eval.enabled=false",
                "algo.hidden_sizes=[16]",
                "trainer.max_steps=4",
                "log.checkpoint_every=2",
            ]
        )
    assert code == 0, "the base run failed"
    return base


# ----------------------------------------------------------------------------- a case


@dataclass
class Case:
    """One bad input (or fault): ``build`` prepares the workspace and returns the argv."""

    id: str
    cls: str
    cli: str  # "fit" or "data"
    build: Callable[[Path, Base], list[str]]
    # Every entry must appear in the error line; a tuple entry: any one of its strings.
    expect: tuple[Any, ...] = ()
    forbid: tuple[str, ...] = ()
    # Entered around the command (fault injection, simulated file-system states).
    patch: Callable[[Path, Base], contextlib.AbstractContextManager] | None = None
    expect_code: int = 2
    # Extra post-condition: returns what is wrong, or None.
    check: Callable[[Path, Base], str | None] | None = None
    # New files are expected (a run that trained before its fault).
    allow_new: bool = False
    # Also run through a real subprocess in the test module (no patches allowed).
    subprocess: bool = False


@dataclass
class Outcome:
    code: int | None
    stderr: list[str]
    problems: list[str] = field(default_factory=list)
    error: str | None = None  # an escaped exception

    @property
    def line(self) -> str:
        return self.stderr[-1] if self.stderr else ""


def snapshot(*roots: Path) -> dict[str, str]:
    """path -> sha256 (files), 'dir' or 'link:<target>', for everything under ``roots``."""
    found: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if path.is_symlink():
                    found[str(path)] = "link:" + os.readlink(path)
                elif path.is_dir():
                    found[str(path)] = "dir"
                else:
                    try:
                        found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                    except OSError as error:
                        found[str(path)] = f"unreadable:{error.errno}"
    return found


def run_case(case: Case, ws: Path, base: Base) -> Outcome:
    """Build, run in-process from inside ``ws``, and judge one case."""
    ws.mkdir(parents=True, exist_ok=True)
    with private_environment(ws, base):
        return _run_case(case, ws, base)


@contextlib.contextmanager
def private_environment(ws: Path, base: Base) -> Iterator[None]:
    """A registry of the workspace's own and a checksum cache outside every snapshot."""
    saved = {key: os.environ.get(key) for key in ("OMIGA_PL_REGISTRY", "OMIGA_PL_CACHE")}
    os.environ["OMIGA_PL_REGISTRY"] = str(ws / "registry.yaml")
    os.environ["OMIGA_PL_CACHE"] = str(base.root.parent / "sha256-cache")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_case(case: Case, ws: Path, base: Base) -> Outcome:
    from omiga_pl.data.__main__ import main as data_main
    from omiga_pl.fit import main as fit_main

    argv = [str(a) for a in case.build(ws, base)]
    main = fit_main if case.cli == "fit" else data_main
    err, out = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    with case.patch(ws, base) if case.patch else contextlib.nullcontext():
        before = snapshot(ws, base.root)
        os.chdir(ws)
        error = None
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                try:
                    code: int | None = main(argv)
                except SystemExit as exit_:
                    code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException as raised:
            code, error = (
                None,
                f"{type(raised).__name__}: {str(raised).splitlines()[0] if str(raised) else ''}",
            )
        finally:
            os.chdir(cwd)
        after = snapshot(ws, base.root)
    _restore_permissions(ws)
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    outcome = Outcome(code, lines, error=error)
    problems = outcome.problems
    if error is not None or any("Traceback" in line for line in lines):
        problems.append("traceback")
    elif case.expect_code == 0:
        if code != 0:
            problems.append("refused")
    elif code == 0:
        problems.append("accepted")
    else:
        prog = "omiga_pl.fit: error: " if case.cli == "fit" else "omiga_pl.data: error: "
        # A run that trained before its fault may have printed progress before the error.
        shown_lines = lines[-1:] if case.allow_new else lines
        if code != 2 or len(shown_lines) != 1 or not shown_lines[0].startswith(prog):
            problems.append("not one line")
        message = outcome.line
        missing = [e for e in case.expect if not _contains(message, e)]
        shown = [f for f in (*case.forbid, *FORBIDDEN_ALWAYS) if f in message]
        if missing or shown:
            problems.append("misleading")
    changed = any(after.get(path) != digest for path, digest in before.items())
    # A resume that ran rewrites its own config.yaml: ``check`` judges what must survive.
    if changed and case.expect_code != 0 and not case.allow_new:
        problems.append("modified")
    new = [p for p in after if p not in before]
    if new and not case.allow_new and case.expect_code != 0 and code != 0:
        problems.append("leftover")
    if case.check is not None:
        problem = case.check(ws, base)
        if problem:
            problems.append("check")
            outcome.error = (outcome.error or "") + problem
    return outcome


def _contains(message: str, expected: Any) -> bool:
    if isinstance(expected, tuple):
        return any(e in message for e in expected)
    return expected in message


def _restore_permissions(ws: Path) -> None:
    for dirpath, dirnames, _ in os.walk(ws):
        for name in dirnames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)


# -------------------------------------------------------------------- raw native files


def arrays_of(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as handle:
        return {name: handle[name][()] for name in handle}


def card_of(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as handle:
        return json.loads(handle.attrs["card_json"])


GROUP = object()  # put an HDF5 group where a dataset is expected


def write_raw(path: Path, arrays: dict[str, Any], card_json: Any) -> Path:
    """An HDF5 file with exactly these datasets and this ``card_json`` attribute (no checks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        for name, value in arrays.items():
            if value is GROUP:
                handle.create_group(name).create_dataset("x", data=np.zeros(3))
            elif value is not None:
                handle.create_dataset(name, data=value)
        if card_json is not None:
            handle.attrs["card_json"] = card_json
    return path


def broken_dataset(
    ws: Path, base: Base, edit: Callable[[dict[str, Any]], None], source: Path | None = None
) -> Path:
    arrays = arrays_of(source or base.good)
    edit(arrays)
    return write_raw(ws / "bad.h5", arrays, json.dumps(card_of(source or base.good)))


def with_card(ws: Path, base: Base, card_json: Any) -> Path:
    return write_raw(ws / "bad.h5", arrays_of(base.good), card_json)


# -------------------------------------------------------------------------- the cases


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(arrays: dict[str, Any]) -> None:
        arrays[name] = value(arrays) if callable(value) else value

    return edit


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda arrays: arrays.pop(name)


def _shift_lengths(arrays: dict[str, Any]) -> None:
    lengths = arrays["episode_lengths"].copy()
    lengths[0] += 1
    lengths[1] -= 1
    arrays["episode_lengths"] = lengths


def _nan_at(name: str, value: float) -> Callable[[dict[str, Any]], None]:
    def edit(arrays: dict[str, Any]) -> None:
        array = arrays[name].copy()
        array.flat[7] = value
        arrays[name] = array

    return edit


def _flag(name: str, index: int, value: bool) -> Callable[[dict[str, Any]], None]:
    def edit(arrays: dict[str, Any]) -> None:
        flags = arrays[name].copy()
        flags[index] = value
        arrays[name] = flags

    return edit


def _unavailable_taken(arrays: dict[str, Any]) -> None:
    avail = arrays["avail_actions"].copy()
    avail[0, 1, arrays["actions"][0, 1]] = False
    arrays["avail_actions"] = avail


def _end_unflagged(arrays: dict[str, Any]) -> None:
    terms = arrays["terminations"].copy()
    terms[LENGTHS[0] - 1] = False
    arrays["terminations"] = terms


T = sum(LENGTHS)
E = len(LENGTHS)
# (id, edit, field the message must name, extra expected text or None, forbidden text)
DATASET_EDITS: list[tuple[str, Callable[[dict[str, Any]], None], str, Any, tuple[str, ...]]] = [
    *[
        (f"missing-{n}", _drop(n), n, "missing", ())
        for n in ("observations", "actions", "rewards", "terminations", "truncations", "episode_lengths")
    ],
    ("group-for-observations", _set("observations", GROUP), "observations", None, ()),
    ("group-for-episode_lengths", _set("episode_lengths", GROUP), "episode_lengths", None, ()),
    (
        "scalar-episode_lengths",
        _set("episode_lengths", np.int64(T)),
        "episode_lengths",
        None,
        ("no episodes",),
    ),
    (
        "2d-episode_lengths",
        _set("episode_lengths", lambda a: a["episode_lengths"][None]),
        "episode_lengths",
        None,
        ("no episodes",),
    ),
    (
        "empty-episode_lengths",
        _set("episode_lengths", np.zeros(0, np.int64)),
        "episode_lengths",
        "no episodes",
        (),
    ),
    (
        "zero-episode_length",
        _set("episode_lengths", lambda a: np.r_[a["episode_lengths"][:-1], 0]),
        "episode_lengths",
        None,
        (),
    ),
    (
        "float-episode_lengths",
        _set("episode_lengths", lambda a: a["episode_lengths"].astype(float)),
        "episode_lengths",
        None,
        (),
    ),
    ("shifted-episode_lengths", _shift_lengths, "episode_lengths", None, ("field 'actions'",)),
    (
        "too-long-episode_lengths",
        _set("episode_lengths", lambda a: a["episode_lengths"] + 1),
        "episode_lengths",
        None,
        (),
    ),
    ("nan-observations", _nan_at("observations", np.nan), "observations", "finite", ()),
    ("inf-states", _nan_at("states", np.inf), "states", "finite", ()),
    ("nan-rewards", _nan_at("rewards", np.nan), "rewards", "finite", ()),
    ("2d-observations", _set("observations", lambda a: a["observations"][:, 0]), "observations", None, ()),
    (
        "int-observations",
        _set("observations", lambda a: a["observations"].astype(np.int32)),
        "observations",
        None,
        (),
    ),
    ("string-observations", _set("observations", np.array([b"x"] * (T + E))), "observations", None, ()),
    ("zero-agents", _set("observations", np.zeros((T + E, 0, 75), np.float32)), "observations", None, ()),
    (
        "float-discrete-actions",
        _set("actions", lambda a: a["actions"].astype(np.float32)),
        "actions",
        None,
        (),
    ),
    ("negative-actions", _set("actions", lambda a: a["actions"] - 5), "actions", None, ()),
    ("actions-beyond-avail", _set("actions", lambda a: a["actions"] + 8), "actions", None, ()),
    ("4d-actions", _set("actions", lambda a: a["actions"][..., None, None]), "actions", None, ()),
    ("scalar-actions", _set("actions", np.int64(3)), "actions", None, ()),
    ("unavailable-action-taken", _unavailable_taken, "actions", "unavailable", ()),
    ("short-rewards", _set("rewards", lambda a: a["rewards"][:-1]), "rewards", None, ()),
    (
        "per-agent-rewards-differ",
        _set("rewards", lambda a: np.stack([a["rewards"], a["rewards"] + 1], 1)),
        "rewards",
        None,
        (),
    ),
    ("string-2d-rewards", _set("rewards", np.array([[b"a", b"b"]] * T)), "rewards", None, ()),
    (
        "int-terminations",
        _set("terminations", lambda a: a["terminations"].astype(np.int64)),
        "terminations",
        None,
        (),
    ),
    ("short-truncations", _set("truncations", lambda a: a["truncations"][:-1]), "truncations", None, ()),
    ("done-mid-episode", _flag("terminations", 1, True), "terminations", None, ()),
    ("end-without-flag", _end_unflagged, ("truncations", "terminations"), None, ()),
    ("terminated-and-truncated", _flag("truncations", LENGTHS[0] - 1, True), "truncations", None, ()),
    ("short-states", _set("states", lambda a: a["states"][:-1]), "states", None, ()),
    ("group-for-states", _set("states", GROUP), "states", None, ()),
    (
        "int-avail_actions",
        _set("avail_actions", lambda a: a["avail_actions"].astype(np.int64)),
        "avail_actions",
        None,
        (),
    ),
    ("short-episode_won", _set("episode_won", lambda a: a["episode_won"][:-1]), "episode_won", None, ()),
    (
        "float-episode_won",
        _set("episode_won", lambda a: a["episode_won"].astype(np.float32) * 3),
        "episode_won",
        None,
        (),
    ),
]


def _file_case(kind: str) -> Callable[[Path, Base], Path]:
    def make(ws: Path, base: Base) -> Path:
        path = ws / "bad.h5"
        if kind == "truncated":
            path.write_bytes(base.good.read_bytes()[:3000])
        elif kind == "text":
            path.write_text("observations,actions\n1,2\n")
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "directory":
            path.mkdir()
            (path / "observations.npy").write_bytes(b"\x93NUMPY")
        elif kind == "no-card":
            write_raw(path, arrays_of(base.good), None)
        elif kind == "foreign-hdf5":
            write_raw(path, {"x": np.zeros(3)}, None)
        elif kind == "missing":
            pass
        return path

    return make


FILE_KINDS = [
    ("truncated-file", "truncated", ("truncated", "corrupt")),
    ("text-file", "text", ("HDF5", "hdf5")),
    ("empty-file", "empty", ("HDF5", "empty")),
    ("directory-as-file", "directory", "directory"),
    ("no-card_json", "no-card", "card_json"),
    ("foreign-hdf5", "foreign-hdf5", ("card_json", "keys")),
    ("missing-file", "missing", ("not found", "no such")),
]


def dataset_cases() -> list[Case]:
    cases = []
    for name, edit, field_name, extra, forbid in DATASET_EDITS:
        fields = field_name if isinstance(field_name, tuple) else (field_name,)
        want = (tuple(f"'{f}'" for f in fields),) + ((extra,) if extra else ())

        def fit_build(ws: Path, base: Base, edit: Any = edit) -> list[str]:
            return [f"data.path={broken_dataset(ws, base, edit)}", *fit_common(ws)]

        def validate_build(ws: Path, base: Base, edit: Any = edit) -> list[str]:
            return ["validate", broken_dataset(ws, base, edit), "--env", "smax:3m"]

        for cli, build in (("fit", fit_build), ("data", validate_build)):
            cases.append(
                Case(
                    f"dataset/{name}/{'fit' if cli == 'fit' else 'validate'}",
                    "dataset",
                    cli,
                    build,
                    expect=("bad.h5", *want),
                    forbid=forbid,
                )
            )
    for name, kind, expected in FILE_KINDS:
        make = _file_case(kind)
        multi = ("\n", "Unable to synchronously")
        cases.append(
            Case(
                f"dataset/{name}/fit",
                "dataset",
                "fit",
                lambda ws, base, make=make: [f"data.path={make(ws, base)}", *fit_common(ws)],
                expect=("bad.h5", expected),
                forbid=multi,
                subprocess=kind == "directory",
            )
        )
        cases.append(
            Case(
                f"dataset/{name}/inspect",
                "dataset",
                "data",
                lambda ws, base, make=make: ["inspect", make(ws, base)],
                expect=("bad.h5", expected),
                forbid=multi,
            )
        )
    # Continuous-action datasets (inspect: no simulator needed).
    for name, edit, field_name in [
        ("continuous-actions-beyond-1", _set("actions", lambda a: a["actions"] * 3), "actions"),
        (
            "continuous-with-avail_actions",
            _set("avail_actions", np.ones((15 + 3, 3, 4), bool)),
            "avail_actions",
        ),
        ("continuous-nan-actions", _nan_at("actions", np.nan), "actions"),
    ]:
        cases.append(
            Case(
                f"dataset/{name}/inspect",
                "dataset",
                "data",
                lambda ws, base, edit=edit: ["inspect", broken_dataset(ws, base, edit, base.continuous)],
                expect=("bad.h5", f"'{field_name}'"),
            )
        )
    # Datasets that do not fit the environment (sizes), through fit.
    for name, kwargs, field_name in [
        ("obs-size-mismatch", {"obs_dim": 70}, "observations"),
        ("agent-count-mismatch", {"n_agents": 4}, "observations"),
        ("state-size-mismatch", {"state_dim": 10}, "states"),
        ("action-count-mismatch", {"n_actions": 9}, "actions"),
    ]:

        def build(ws: Path, base: Base, kwargs: Any = kwargs) -> list[str]:
            path = ws / "bad.h5"
            write_native(path, make_episodes(LENGTHS, **kwargs), CARD)
            return [f"data.path={path}", *fit_common(ws)]

        cases.append(
            Case(f"dataset/{name}/fit", "dataset", "fit", build, expect=("bad.h5", f"'{field_name}'"))
        )
    return cases


def _card_edit(key: str, value: Any) -> Callable[[dict[str, Any]], str]:
    def edit(card: dict[str, Any]) -> str:
        card = dict(card)
        if value is _DELETE:
            card.pop(key, None)
        else:
            card[key] = value
        return json.dumps(card)

    return edit


_DELETE = object()
# (id, card_json (a value or an edit of the good card), field the message must name)
CARD_CASES: list[tuple[str, Any, str]] = [
    ("not-json", "{this is not json", "card_json"),
    ("json-list", "[1, 2, 3]", "card_json"),
    ("json-null", "null", "card_json"),
    ("json-number", "42", "card_json"),
    ("json-string", '"a card"', "card_json"),
    ("attribute-is-integer", np.int64(5), "card_json"),
    ("empty-string", "", "card_json"),
    ("format-missing", _card_edit("format", _DELETE), "format"),
    ("format-foreign", _card_edit("format", "d4rl"), "format"),
    ("format_version-string", _card_edit("format_version", "1"), "format_version"),
    ("format_version-future", _card_edit("format_version", 9), "format_version"),
    ("episode_limit-string", _card_edit("episode_limit", "100"), "episode_limit"),
    ("episode_limit-float", _card_edit("episode_limit", 12.5), "episode_limit"),
    ("episode_limit-negative", _card_edit("episode_limit", -5), "episode_limit"),
    ("episode_limit-bool", _card_edit("episode_limit", True), "episode_limit"),
    ("episode_limit-list", _card_edit("episode_limit", [100]), "episode_limit"),
    ("env_family-int", _card_edit("env_family", 3), "env_family"),
    ("env_family-unknown", _card_edit("env_family", "starcraft2"), "env_family"),
    ("scenario-list", _card_edit("scenario", ["3m"]), "scenario"),
    ("scenario-unknown", _card_edit("scenario", "99m"), "scenario"),
    ("quality-dict", _card_edit("quality", {"a": 1}), "quality"),
    ("reference_returns-string", _card_edit("reference_returns", "high"), "reference_returns"),
    (
        "reference_returns-bad-value",
        _card_edit("reference_returns", {"random": "x", "expert": 1}),
        "reference_returns",
    ),
    ("derived-string", _card_edit("derived", "observations repeated"), "derived"),
    ("obs_mode-unknown", _card_edit("obs_mode", "pixels"), "obs_mode"),
    ("agent_obsk-string", _card_edit("agent_obsk", "two"), "agent_obsk"),
    ("n_agents-string", _card_edit("n_agents", "3"), "n_agents"),
    ("n_agents-disagrees", _card_edit("n_agents", 5), "n_agents"),
    ("n_transitions-disagrees", _card_edit("n_transitions", 999), "n_transitions"),
    ("n_episodes-negative", _card_edit("n_episodes", -1), "n_episodes"),
    ("action_type-unknown", _card_edit("action_type", "banana"), "action_type"),
    ("has_states-string", _card_edit("has_states", "yes"), "has_states"),
]


FIT_ONLY_CARD_CASES = ("env_family-unknown", "scenario-unknown")


def card_cases() -> list[Case]:
    cases = []
    for name, card_json, field_name in CARD_CASES:

        def bad(ws: Path, base: Base, card_json: Any = card_json) -> Path:
            value = card_json(card_of(base.good)) if callable(card_json) else card_json
            return with_card(ws, base, value)

        commands = {
            "fit": ("fit", lambda ws, base, bad=bad: [f"data.path={bad(ws, base)}", *fit_common(ws)]),
            "fit-smac-yaml": (
                "fit",
                lambda ws, base, bad=bad: [
                    "--config",
                    SMAC_YAML,
                    f"data.path={bad(ws, base)}",
                    *fit_common(ws),
                ],
            ),
            "inspect": ("data", lambda ws, base, bad=bad: ["inspect", bad(ws, base)]),
            "validate": ("data", lambda ws, base, bad=bad: ["validate", bad(ws, base), "--env", "smax:3m"]),
            "convert": ("data", lambda ws, base, bad=bad: ["convert", bad(ws, base), ws / "out.h5"]),
            "register": ("data", lambda ws, base, bad=bad: ["register", bad(ws, base)]),
        }
        for command, (cli, build) in commands.items():
            if name in FIT_ONLY_CARD_CASES and cli != "fit":
                continue  # a card may name an environment omiga_pl cannot run: only fit needs one
            cases.append(
                Case(
                    f"card/{name}/{command}",
                    "card",
                    cli,
                    build,
                    expect=("bad.h5", f"'{field_name}'"),
                    subprocess=name == "not-json" and command == "inspect",
                )
            )
    return cases


def _yaml(text: str | bytes) -> Callable[[Path, Base], list[str]]:
    def build(ws: Path, base: Base) -> list[str]:
        path = ws / "bad.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        elif text == "<directory>":
            path.mkdir()
        elif text != "<missing>":
            path.write_text(text)
        return ["--config", path, f"data.path={base.good}", *fit_common(ws)]

    return build


def _override(*items: str, config: Path | None = None) -> Callable[[Path, Base], list[str]]:
    def build(ws: Path, base: Base) -> list[str]:
        head = ["--config", config] if config else []
        return [*head, f"data.path={base.good}", *fit_common(ws), *items]

    return build


# (id, overrides, key the message must name)
OVERRIDE_CASES: list[tuple[str, tuple[str, ...], str]] = [
    ("threads-negative", ("threads=-1",), "threads"),
    ("threads-zero", ("threads=0",), "threads"),
    ("seed-negative", ("seed=-1",), "seed"),
    ("seed-too-large", ("seed=4294967296",), "seed"),
    ("seed-string", ("seed=abc",), "seed"),
    ("seed-null", ("seed=null",), "seed"),
    ("seed-list", ("seed=[1,2]",), "seed"),
    ("seed-dict", ("seed={a:1}",), "seed"),
    ("eval-seed-negative", ("eval.seed_offset=-100",), "eval.seed_offset"),
    ("batch_size-negative", ("data.batch_size=-3",), "data.batch_size"),
    ("batch_size-null", ("data.batch_size=null",), "data.batch_size"),
    ("batch_size-float", ("data.batch_size=1.5",), "data.batch_size"),
    ("max_steps-zero", ("trainer.max_steps=0",), "trainer.max_steps"),
    ("max_steps-string", ("trainer.max_steps=many",), "trainer.max_steps"),
    ("log_every-zero", ("log.log_every=0",), "log.log_every"),
    ("checkpoint_every-negative", ("log.checkpoint_every=-5",), "log.checkpoint_every"),
    ("eval-every-negative", ("eval.enabled=true", "eval.every=-1"), "eval.every"),
    ("eval-episodes-zero", ("eval.enabled=true", "eval.episodes=0"), "eval.episodes"),
    ("eval-final-episodes-negative", ("eval.final_episodes=-5",), "eval.final_episodes"),
    ("eval-enabled-maybe", ("eval.enabled=maybe",), "eval.enabled"),
    ("devices-zero", ("trainer.devices=0",), "trainer.devices"),
    ("devices-negative", ("trainer.devices=-2",), "trainer.devices"),
    ("devices-string", ("trainer.devices=abc",), "trainer.devices"),
    ("devices-list", ("trainer.devices=[0,5]",), "trainer.devices"),
    ("accelerator-bogus", ("trainer.accelerator=bogus",), "trainer.accelerator"),
    ("accelerator-tpu", ("trainer.accelerator=tpu",), "trainer.accelerator"),
    ("strategy-bogus", ("trainer.strategy=bogus",), "trainer.strategy"),
    ("strategy-fsdp-on-cpu", ("trainer.strategy=fsdp",), "trainer.strategy"),
    ("strategy-deepspeed", ("trainer.strategy=deepspeed",), "trainer.strategy"),
    ("precision-bogus", ("trainer.precision=bogus",), "trainer.precision"),
    ("precision-16-mixed", ("trainer.precision=16-mixed",), "trainer.precision"),
    ("precision-transformer-engine", ("trainer.precision=transformer-engine",), "trainer.precision"),
    ("num_nodes-zero", ("trainer.num_nodes=0",), "trainer.num_nodes"),
    ("env-family-bogus", ("env.family=bogus",), "env.family"),
    ("env-scenario-bogus", ("env.scenario=99m",), "env.scenario"),
    ("env-episode_limit-negative", ("env.episode_limit=-5",), "env.episode_limit"),
    ("env-episode_limit-zero", ("env.episode_limit=0",), "env.episode_limit"),
    ("env-obs_mode-on-smax", ("env.obs_mode=local",), "env.obs_mode"),
    ("env-agent_obsk-negative", ("env.agent_obsk=-1",), "env.agent_obsk"),
    ("algo-name-bogus", ("algo.name=bogus",), "algo.name"),
    ("algo-tau-too-big", ("algo.tau=2",), "algo.tau"),
    ("algo-gamma-negative", ("algo.gamma=-0.5",), "algo.gamma"),
    ("algo-lr-zero", ("algo.lr_q=0",), "algo.lr_q"),
    ("algo-hidden-empty", ("algo.hidden_sizes=[]",), "algo.hidden_sizes"),
    ("algo-hidden-strings", ("algo.hidden_sizes=[a,b]",), "algo.hidden_sizes"),
    ("algo-hidden-scalar", ("algo.hidden_sizes=16",), "algo.hidden_sizes"),
    ("algo-adam-bogus", ("algo.adam_impl=bogus",), "algo.adam_impl"),
    ("algo-unknown-key", ("algo.alpah=3",), "algo.alpah"),
    ("algo-key-of-another-algorithm", ("algo.name=bc", "algo.alpha=3"), "algo.alpha"),
    ("section-as-scalar", ("data=3",), "data"),
    ("algo-section-as-scalar", ("algo=5",), "algo"),
    ("trainer-section-null", ("trainer=null",), "trainer"),
    ("unknown-top-level-key", ("nonsense=1",), "nonsense"),
    ("unknown-nested-key", ("trainer.max_stepz=1",), "trainer.max_stepz"),
    ("deep-unknown-key", ("data.path.x=1",), "data.path"),
    ("override-without-equals", ("seed",), "seed"),
    ("override-empty-key", ("=3",), "=3"),
    ("data-path-empty", ("data.path=",), "data.path"),
    ("run_name-with-slash", ("log.run_name=a/b",), "log.run_name"),
    ("run_name-dotdot", ("log.run_name=..",), "log.run_name"),
    ("out_dir-empty", ("log.out_dir=",), "log.out_dir"),
]

YAML_CASES: list[tuple[str, Any, tuple[Any, ...]]] = [
    ("top-level-list", "- seed: 1\n- data: 2\n", ("bad.yaml", "mapping")),
    ("top-level-scalar", "42\n", ("bad.yaml", "mapping")),
    ("not-yaml", "algo: [unclosed\n", ("bad.yaml", "YAML")),
    ("tab-indented", "algo:\n\tname: omiga\n", ("bad.yaml", "YAML")),
    ("not-utf8", b"seed: \xff\xfe\n", ("bad.yaml",)),
    ("directory", "<directory>", ("bad.yaml", "directory")),
    ("missing", "<missing>", ("bad.yaml", "not found")),
    ("unknown-key", "algo:\n  gama: 0.9\n", ("bad.yaml", "'algo.gama'")),
    ("wrong-type", "eval:\n  every: soon\n", ("bad.yaml", "'eval.every'")),
    ("section-as-scalar", "trainer: 5\n", ("bad.yaml", "'trainer'")),
    ("section-as-list", "algo: [1, 2]\n", ("bad.yaml", "'algo'")),
    ("algo-name-unknown", "algo:\n  name: dqn\n", ("bad.yaml", "'algo.name'")),
    ("algo-name-number", "algo:\n  name: 3\n", ("bad.yaml", "'algo.name'")),
    ("value-range", "seed: -7\n", ("bad.yaml", "'seed'")),
    ("algo-value-range", "algo:\n  tau: 3\n", ("bad.yaml", "'algo.tau'")),
    ("duplicate-key", "seed: 1\nseed: 2\n", ("bad.yaml", "seed")),
]


# The message names the key without quotes: env.* are checked against the card ("... (env.family)"),
# a list element is named with its index ('algo.hidden_sizes[0]').
UNQUOTED = ("env-family-bogus", "env-scenario-bogus", "algo-hidden-strings")


def config_cases() -> list[Case]:
    cases = []
    for name, items, key in OVERRIDE_CASES:
        cases.append(
            Case(
                f"config/{name}",
                "config",
                "fit",
                _override(*items),
                expect=(key if name in UNQUOTED else f"'{key}'" if not key.startswith("=") else key,),
                subprocess=False,
            )
        )
    for name, text, expected in YAML_CASES:
        cases.append(
            Case(
                f"config/yaml-{name}",
                "config",
                "fit",
                _yaml(text),
                expect=expected,
                subprocess=name == "top-level-list",
            )
        )
    return cases


# --------------------------------------------------------------------------- checkpoints


def copy_run(ws: Path, base: Base) -> Path:
    """The base run, copied into the workspace (a refused resume must leave it untouched)."""
    target = ws / "runs" / "base"
    shutil.copytree(base.run, target, symlinks=True)
    return target


def resume_args(ws: Path, ckpt: Path, *extra: str) -> list[str]:
    return [
        "--resume",
        ckpt,
        f"log.out_dir={ws / 'runs'}",
        "trainer.enable_progress_bar=false",
        "trainer.max_steps=6",
        *extra,
    ]


def _ckpt_edit(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path, Base], list[str]]:
    def build(ws: Path, base: Base) -> list[str]:
        run = copy_run(ws, base)
        checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        replaced = edit(checkpoint)
        path = ws / "broken.ckpt"
        torch.save(checkpoint if replaced is None else replaced, path)
        return resume_args(ws, path)

    return build


def _ckpt_bytes(make: Callable[[bytes], bytes | None]) -> Callable[[Path, Base], list[str]]:
    def build(ws: Path, base: Base) -> list[str]:
        run = copy_run(ws, base)
        path = ws / "broken.ckpt"
        content = make((run / "checkpoints" / "last.ckpt").read_bytes())
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
        return resume_args(ws, path)

    return build


def _pop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(checkpoint: dict[str, Any]) -> None:
        target = checkpoint
        for key in keys[:-1]:
            target = target[key]
        target.pop(keys[-1])

    return edit


def _assign(value: Any, *keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(checkpoint: dict[str, Any]) -> None:
        target = checkpoint
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value(target[keys[-1]]) if callable(value) else value

    return edit


def _first_weight(checkpoint: dict[str, Any]) -> str:
    return next(iter(checkpoint["state_dict"]))


def _drop_weight(checkpoint: dict[str, Any]) -> None:
    checkpoint["state_dict"].pop(_first_weight(checkpoint))


def _extra_weight(checkpoint: dict[str, Any]) -> None:
    checkpoint["state_dict"]["ghost.weight"] = torch.zeros(3)


def _reshape_weight(checkpoint: dict[str, Any]) -> None:
    checkpoint["state_dict"][_first_weight(checkpoint)] = torch.zeros(7, 7)


def _string_weight(checkpoint: dict[str, Any]) -> None:
    checkpoint["state_dict"][_first_weight(checkpoint)] = "weights"


def _nan_weight(checkpoint: dict[str, Any]) -> None:
    checkpoint["state_dict"][_first_weight(checkpoint)] = torch.full_like(
        checkpoint["state_dict"][_first_weight(checkpoint)], float("nan")
    )


def _one_group_less(checkpoint: dict[str, Any]) -> None:
    checkpoint["optimizer_states"][0]["param_groups"].pop()


def _group_size(checkpoint: dict[str, Any]) -> None:
    checkpoint["optimizer_states"][0]["param_groups"][0]["params"].pop()


def _dims(checkpoint: dict[str, Any]) -> None:
    checkpoint["hyper_parameters"]["dims"]["obs_dim"] = 99


def _loop_step(checkpoint: dict[str, Any]) -> None:
    checkpoint["loops"]["fit_loop"].pop("epoch_loop.manual_optimization.optim_step_progress")


def _resume_other_data(which: str) -> Callable[[Path, Base], list[str]]:
    def build(ws: Path, base: Base) -> list[str]:
        run = copy_run(ws, base)
        return resume_args(ws, run / "checkpoints" / "last.ckpt", f"data.path={getattr(base, which)}")

    return build


def _resume_with(*items: str) -> Callable[[Path, Base], list[str]]:
    def build(ws: Path, base: Base) -> list[str]:
        run = copy_run(ws, base)
        return resume_args(ws, run / "checkpoints" / "last.ckpt", *items)

    return build


# (id, build, what the message must name besides the checkpoint file)
CHECKPOINT_CASES: list[tuple[str, Callable[[Path, Base], list[str]], tuple[Any, ...]]] = [
    (
        "missing-file",
        lambda ws, base: (copy_run(ws, base), resume_args(ws, ws / "broken.ckpt"))[1],
        ("not found",),
    ),
    ("directory", _ckpt_bytes(lambda b: None), ("directory",)),
    ("empty-file", _ckpt_bytes(lambda b: b""), ("checkpoint",)),
    ("random-bytes", _ckpt_bytes(lambda b: os.urandom(2048)), ("checkpoint",)),
    ("truncated", _ckpt_bytes(lambda b: b[: len(b) // 2]), ("checkpoint",)),
    ("text-file", _ckpt_bytes(lambda b: b"model: weights\n"), ("checkpoint",)),
    ("torch-list", _ckpt_edit(lambda c: [1, 2, 3]), ("checkpoint",)),
    ("torch-tensor", _ckpt_edit(lambda c: torch.zeros(3)), ("checkpoint",)),
    ("no-omiga-config", _ckpt_edit(_pop("omiga_pl_config")), ("'omiga_pl_config'",)),
    ("config-not-a-dict", _ckpt_edit(_assign("settings", "omiga_pl_config")), ("'omiga_pl_config'",)),
    ("config-unknown-key", _ckpt_edit(_assign(lambda c: {**c, "extra": 1}, "omiga_pl_config")), ("'extra'",)),
    ("config-bad-value", _ckpt_edit(_assign(5.0, "omiga_pl_config", "algo", "tau")), ("'algo.tau'",)),
    ("config-bad-type", _ckpt_edit(_assign("soon", "omiga_pl_config", "eval", "every")), ("'eval.every'",)),
    ("no-state_dict", _ckpt_edit(_pop("state_dict")), ("'state_dict'",)),
    ("state_dict-none", _ckpt_edit(_assign(None, "state_dict")), ("'state_dict'",)),
    ("state_dict-list", _ckpt_edit(_assign([1, 2], "state_dict")), ("'state_dict'",)),
    ("state_dict-missing-weight", _ckpt_edit(_drop_weight), ("'state_dict'", "missing")),
    ("state_dict-extra-weight", _ckpt_edit(_extra_weight), ("'state_dict'", "ghost.weight")),
    ("state_dict-wrong-shape", _ckpt_edit(_reshape_weight), ("'state_dict'", "shape")),
    ("state_dict-not-a-tensor", _ckpt_edit(_string_weight), ("'state_dict'",)),
    ("state_dict-nan", _ckpt_edit(_nan_weight), ("'state_dict'", ("finite", "NaN", "nan"))),
    ("no-loops", _ckpt_edit(_pop("loops")), ("'loops'",)),
    ("loops-without-fit_loop", _ckpt_edit(_pop("loops", "fit_loop")), ("'loops",)),
    ("loops-without-step-progress", _ckpt_edit(_loop_step), ("'loops",)),
    ("loops-step-disagrees", _ckpt_edit(_assign(17, "global_step")), ("global_step",)),
    ("no-global_step", _ckpt_edit(_pop("global_step")), ("'global_step'",)),
    ("no-optimizer_states", _ckpt_edit(_pop("optimizer_states")), ("'optimizer_states'",)),
    ("optimizer_states-empty", _ckpt_edit(_assign([], "optimizer_states")), ("'optimizer_states'",)),
    ("optimizer-group-missing", _ckpt_edit(_one_group_less), ("'optimizer_states'",)),
    ("optimizer-group-size", _ckpt_edit(_group_size), ("'optimizer_states'",)),
    ("no-datamodule-state", _ckpt_edit(_pop("OfflineMARLDataModule")), ("OfflineMARLDataModule",)),
    (
        "datamodule-state-not-dict",
        _ckpt_edit(_assign(3, "OfflineMARLDataModule")),
        ("OfflineMARLDataModule",),
    ),
    ("no-lightning-version", _ckpt_edit(_pop("pytorch-lightning_version")), ("'pytorch-lightning_version'",)),
    ("no-hyper_parameters", _ckpt_edit(_pop("hyper_parameters")), ("'hyper_parameters'",)),
    ("dims-disagree", _ckpt_edit(_dims), (("network sizes", "dims"),)),
    ("other-data-same-size", _resume_other_data("same_size"), ("same_size.h5", "good.h5", "fingerprint")),
    ("other-data-other-size", _resume_other_data("other_size"), ("other_size.h5", "n_transitions")),
    ("changed-algorithm-key", _resume_with("algo.alpha=3"), ("'algo.alpha'",)),
    ("changed-batch-size", _resume_with("data.batch_size=64"), ("'data.batch_size'",)),
    ("changed-algorithm", _resume_with("algo.name=bc"), ("'algo.name'",)),
    ("bad-override", _resume_with("trainer.max_steps=0"), ("'trainer.max_steps'",)),
    ("bad-trainer-option", _resume_with("trainer.precision=bogus"), ("'trainer.precision'",)),
]


def checkpoint_cases() -> list[Case]:
    cases = []
    for name, build, expected in CHECKPOINT_CASES:
        # A bad override on resume is the command line's, not the checkpoint's.
        ckpt = (
            ()
            if name.startswith("bad-")
            else ("last.ckpt" if name.startswith(("other-data", "changed")) else "broken.ckpt",)
        )
        cases.append(
            Case(
                f"checkpoint/{name}",
                "checkpoint",
                "fit",
                build,
                expect=(*ckpt, *expected),
                subprocess=name == "truncated",
            )
        )
    return cases


# ------------------------------------------------------------------ output locations


def _read_only_patch(*relative: str) -> Callable[[Path, Base], contextlib.AbstractContextManager]:
    """Directories under the workspace made read-only (mode 0o555). As root, where mode bits
    do not bind, ``os.access`` answers as it would for any other user."""

    @contextlib.contextmanager
    def patch(ws: Path, base: Base) -> Iterator[None]:
        targets = [ws / r for r in relative]
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o555)
        if os.geteuid() != 0:
            yield
            return
        real_access = os.access

        def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
            resolved = Path(os.fspath(path)).absolute()
            if mode & os.W_OK and any(resolved == t or t in resolved.parents for t in targets):
                return False
            return real_access(path, mode, *args, **kwargs)

        os.access = access
        try:
            yield
        finally:
            os.access = real_access

    return patch


def _no_room(ws: Path, base: Base) -> contextlib.AbstractContextManager:
    real = shutil.disk_usage

    @contextlib.contextmanager
    def patch() -> Iterator[None]:
        shutil.disk_usage = lambda path: real(path)._replace(free=1024)  # type: ignore[assignment]
        try:
            yield
        finally:
            shutil.disk_usage = real  # type: ignore[assignment]

    return patch()


def _held_lock(ws: Path, base: Base) -> contextlib.AbstractContextManager:
    @contextlib.contextmanager
    def patch() -> Iterator[None]:
        with open(ws / "runs" / "base" / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield

    return patch()


def _fit_out(out_dir: Callable[[Path], Path]) -> Callable[[Path, Base], list[str]]:
    def build(ws: Path, base: Base) -> list[str]:
        return [f"data.path={base.good}", *fit_common(ws), f"log.out_dir={out_dir(ws)}"]

    return build


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a user's file\n")
    return path


def _convert_to(
    dst: Callable[[Path, Base], Path], *extra: str, src: str = "smac"
) -> Callable[[Path, Base], list[str]]:
    def build(ws: Path, base: Base) -> list[str]:
        source = base.smac_dir if src == "smac" else ws / "mine.h5"
        if src == "native":
            shutil.copy(base.good, source)
        return ["convert", source, dst(ws, base), "--no-progress", *extra]

    return build


def _hardlink(ws: Path, base: Base) -> Path:
    os.link(ws / "mine.h5", ws / "alias.h5")
    return ws / "alias.h5"


def _symlink(ws: Path, base: Base) -> Path:
    (ws / "alias.h5").symlink_to(ws / "mine.h5")
    return ws / "alias.h5"


def _sidecar_dir(ws: Path, base: Base) -> Path:
    (ws / "out.h5.md").mkdir()
    return ws / "out.h5"


def _existing_run(ws: Path, base: Base) -> list[str]:
    _touch(ws / "runs" / "taken" / "config.yaml")
    return [f"data.path={base.good}", *fit_common(ws), "log.run_name=taken"]


def _resume_locked(ws: Path, base: Base) -> list[str]:
    run = copy_run(ws, base)
    return resume_args(ws, run / "checkpoints" / "last.ckpt")


def _registry_at(where: Callable[[Path], Path]) -> Callable[[Path, Base], list[str]]:
    def build(ws: Path, base: Base) -> list[str]:
        shutil.copy(base.good, ws / "mine.h5")
        return ["register", ws / "mine.h5", "--registry", where(ws)]

    return build


def _registry_file(text: str, command: str) -> Callable[[Path, Base], list[str]]:
    def build(ws: Path, base: Base) -> list[str]:
        (ws / "reg.yaml").write_text(text)
        return [command, "--registry", ws / "reg.yaml"]

    return build


OUTPUT_CASES: list[tuple[str, str, Callable[[Path, Base], list[str]], tuple[Any, ...], Any]] = [
    (
        "fit-out_dir-is-a-file",
        "fit",
        _fit_out(lambda ws: _touch(ws / "runs")),
        ("'log.out_dir'", "runs"),
        None,
    ),
    (
        "fit-out_dir-below-a-file",
        "fit",
        _fit_out(lambda ws: _touch(ws / "file") / "runs"),
        ("'log.out_dir'", "file"),
        None,
    ),
    (
        "fit-out_dir-read-only",
        "fit",
        _fit_out(lambda ws: ws / "ro" / "runs"),
        ("'log.out_dir'", "ro"),
        _read_only_patch("ro"),
    ),
    ("fit-run_name-taken", "fit", _existing_run, ("'log.run_name'", "taken"), None),
    (
        "fit-run-in-use",
        "fit",
        _resume_locked,
        ("runs/base", ("in use", "another process", "lock")),
        _held_lock,
    ),
    (
        "convert-dst-is-a-directory",
        "data",
        _convert_to(lambda ws, b: (ws / "outdir").mkdir() or ws / "outdir"),
        ("outdir", "directory"),
        None,
    ),
    (
        "convert-dst-directory-overwrite",
        "data",
        _convert_to(lambda ws, b: (ws / "outdir").mkdir() or ws / "outdir", "--overwrite"),
        ("outdir", "directory"),
        None,
    ),
    (
        "convert-dst-below-a-file",
        "data",
        _convert_to(lambda ws, b: _touch(ws / "file") / "out.h5"),
        ("file", ("not a directory", "is a file")),
        None,
    ),
    (
        "convert-dst-read-only",
        "data",
        _convert_to(lambda ws, b: ws / "ro" / "out.h5"),
        ("out.h5", ("writ", "read-only")),
        _read_only_patch("ro"),
    ),
    (
        "convert-onto-itself",
        "data",
        _convert_to(lambda ws, b: ws / "mine.h5", "--overwrite", src="native"),
        ("mine.h5", "source"),
        None,
    ),
    (
        "convert-onto-hardlink-of-source",
        "data",
        _convert_to(_hardlink, "--overwrite", src="native"),
        ("alias.h5", "source"),
        None,
    ),
    (
        "convert-onto-symlink-to-source",
        "data",
        _convert_to(_symlink, "--overwrite", src="native"),
        ("alias.h5", "source"),
        None,
    ),
    (
        "convert-no-room",
        "data",
        _convert_to(lambda ws, b: ws / "out.h5"),
        ("out.h5", ("space", "room")),
        _no_room,
    ),
    ("convert-sidecar-is-a-directory", "data", _convert_to(_sidecar_dir), ("out.h5.md", "directory"), None),
    (
        "convert-dst-exists",
        "data",
        _convert_to(lambda ws, b: _touch(ws / "out.h5")),
        ("out.h5", "--overwrite"),
        None,
    ),
    (
        "convert-dst-inside-source",
        "data",
        _convert_to(lambda ws, b: b.smac_dir / "x.h5"),
        ("x.h5", "inside"),
        None,
    ),
    (
        "register-registry-is-a-directory",
        "data",
        _registry_at(lambda ws: (ws / "regdir").mkdir() or ws / "regdir"),
        ("regdir", "directory"),
        None,
    ),
    (
        "register-registry-below-a-file",
        "data",
        _registry_at(lambda ws: _touch(ws / "file") / "reg.yaml"),
        ("file", ("not a directory", "is a file")),
        None,
    ),
    (
        "register-registry-read-only",
        "data",
        _registry_at(lambda ws: ws / "ro" / "reg.yaml"),
        ("reg.yaml",),
        _read_only_patch("ro"),
    ),
    (
        "list-registry-top-level-list",
        "data",
        _registry_file("- a\n- b\n", "list"),
        ("reg.yaml", "'datasets'"),
        None,
    ),
    (
        "verify-registry-not-yaml",
        "data",
        _registry_file("datasets: [unclosed\n", "verify"),
        ("reg.yaml", "YAML"),
        None,
    ),
    (
        "list-registry-entry-not-a-mapping",
        "data",
        _registry_file("datasets:\n  x: 3\n", "list"),
        ("reg.yaml", "'x'"),
        None,
    ),
    (
        "register-a-directory",
        "data",
        lambda ws, b: ["register", b.smac_dir],
        ("good", ("directory", "HDF5")),
        None,
    ),
    (
        "register-not-native",
        "data",
        lambda ws, b: ["register", b.smac_dir / "0.pt"],
        ("0.pt", ("HDF5", "native")),
        None,
    ),
]


def output_cases() -> list[Case]:
    return [
        Case(
            f"output/{name}",
            "output",
            cli,
            build,
            expect=expected,
            patch=patch,
            subprocess=name == "convert-onto-itself",
        )
        for name, cli, build, expected, patch in OUTPUT_CASES
    ]


# ------------------------------------------------------------------- CLI arguments


ARGUMENT_CASES: list[tuple[str, str, Callable[[Path, Base], list[str]], tuple[Any, ...]]] = [
    ("inspect-bins-zero", "data", lambda ws, b: ["inspect", b.good, "--bins", "0"], ("--bins",)),
    ("inspect-bins-negative", "data", lambda ws, b: ["inspect", b.good, "--bins", "-3"], ("--bins",)),
    ("inspect-bins-not-a-number", "data", lambda ws, b: ["inspect", b.good, "--bins", "many"], ("--bins",)),
    (
        "validate-env-family-unknown",
        "data",
        lambda ws, b: ["validate", b.good, "--env", "dota:5v5"],
        ("dota",),
    ),
    (
        "validate-env-scenario-unknown",
        "data",
        lambda ws, b: ["validate", b.good, "--env", "smax:99m"],
        ("99m",),
    ),
    ("validate-env-no-colon", "data", lambda ws, b: ["validate", b.good, "--env", "smax"], ("--env",)),
    (
        "convert-workers-zero",
        "data",
        lambda ws, b: ["convert", b.smac_dir, ws / "o.h5", "--workers", "0", "--no-progress"],
        ("--workers",),
    ),
    (
        "convert-episode-limit-negative",
        "data",
        lambda ws, b: ["convert", b.smac_dir, ws / "o.h5", "--episode-limit", "-1", "--no-progress"],
        ("--episode-limit",),
    ),
    (
        "convert-episode-length-zero",
        "data",
        lambda ws, b: ["convert", b.omar_dir, ws / "o.h5", "--episode-length", "0", "--no-progress"],
        ("--episode-length",),
    ),
    (
        "convert-from-unknown",
        "data",
        lambda ws, b: ["convert", b.smac_dir, ws / "o.h5", "--from", "d4rl"],
        ("--from",),
    ),
    (
        "convert-set-env-malformed",
        "data",
        lambda ws, b: ["convert", b.smac_dir, ws / "o.h5", "--set-env", "smax", "--no-progress"],
        ("--set-env",),
    ),
    (
        "convert-option-of-another-format",
        "data",
        lambda ws, b: ["convert", b.omar_dir, ws / "o.h5", "--from", "omar-mpe", "--episode-limit", "5"],
        ("--episode-limit",),
    ),
    ("inspect-unknown-name", "data", lambda ws, b: ["inspect", "no_such_dataset"], ("no_such_dataset",)),
    ("unknown-subcommand", "data", lambda ws, b: ["explode"], ("explode",)),
    ("unknown-option", "data", lambda ws, b: ["inspect", b.good, "--colour"], ("--colour",)),
    ("fit-unknown-option", "fit", lambda ws, b: ["--bogus", f"data.path={b.good}"], ("--bogus",)),
    ("fit-resume-without-path", "fit", lambda ws, b: ["--resume"], ("--resume",)),
]


def argument_cases() -> list[Case]:
    return [
        Case(f"arguments/{name}", "arguments", cli, build, expect=expected)
        for name, cli, build, expected in ARGUMENT_CASES
    ]


# ---------------------------------------------------------------------------- faults


def _failing_torch_save(fail_on: int) -> Callable[[Path, Base], contextlib.AbstractContextManager]:
    """torch.save writes half of its bytes and then fails with ENOSPC, from call ``fail_on`` on."""

    @contextlib.contextmanager
    def patch(ws: Path, base: Base) -> Iterator[None]:
        real = torch.save
        calls = {"n": 0}

        def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
            calls["n"] += 1
            if calls["n"] < fail_on:
                return real(obj, f, *args, **kwargs)
            buffer = io.BytesIO()
            real(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
            if isinstance(f, (str, os.PathLike)):
                with open(f, "wb") as handle:
                    handle.write(data)
            else:
                f.write(data)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        torch.save = save
        try:
            yield
        finally:
            torch.save = real

    return patch


def _last_is_step(step: int) -> Callable[[Path, Base], str | None]:
    def check(ws: Path, base: Base) -> str | None:
        last = ws / "runs" / "base" / "checkpoints" / "last.ckpt"
        try:
            checkpoint = torch.load(last, map_location="cpu", weights_only=False)
        except Exception as error:
            return f"last.ckpt is not loadable: {type(error).__name__}"
        if checkpoint.get("global_step") != step:
            return f"last.ckpt holds update {checkpoint.get('global_step')}, expected {step}"
        stray = [p.name for p in last.parent.iterdir() if p.name.endswith(".tmp")]
        return f"temporary files left: {stray}" if stray else None

    return check


class _HalfWriter:
    """A file whose writes stop half way with ENOSPC."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, data: bytes) -> int:
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handle.close()


def _failing_hdf5_write(ws: Path, base: Base) -> contextlib.AbstractContextManager:
    """The disk fills while the dataset is written: whether HDF5 writes the file itself
    (its third dataset fails) or Python writes the bytes HDF5 built (half of them land)."""

    @contextlib.contextmanager
    def patch() -> Iterator[None]:
        import builtins

        real_create, real_open = h5py.Group.create_dataset, builtins.open
        calls = {"n": 0}

        def create_dataset(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] >= 3 and self.file.driver != "core":
                raise OSError(errno.ENOSPC, "Can't write data (file write failed: No space left on device)")
            return real_create(self, *args, **kwargs)

        def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            handle = real_open(file, mode, *args, **kwargs)
            if "w" in mode and "b" in mode and ".out.h5." in os.fspath(file):
                return _HalfWriter(handle)
            return handle

        h5py.Group.create_dataset, builtins.open = create_dataset, open_
        try:
            yield
        finally:
            h5py.Group.create_dataset, builtins.open = real_create, real_open

    return patch()


def _failing_text_write(name: str) -> Callable[[Path, Base], contextlib.AbstractContextManager]:
    @contextlib.contextmanager
    def patch(ws: Path, base: Base) -> Iterator[None]:
        real = Path.write_text

        def write_text(self: Path, *args: Any, **kwargs: Any) -> int:
            if name in self.name:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(self, *args, **kwargs)

        Path.write_text = write_text  # type: ignore[method-assign]
        try:
            yield
        finally:
            Path.write_text = real  # type: ignore[method-assign]

    return patch


def _resume_more(ws: Path, base: Base) -> list[str]:
    run = copy_run(ws, base)
    return resume_args(ws, run / "checkpoints" / "last.ckpt", "trainer.max_steps=8", "log.checkpoint_every=2")


def fault_cases() -> list[Case]:
    return [
        # Resume at update 4, save at 6 (step=6.ckpt, then last.ckpt): the second save fails
        # half way, so last.ckpt must still be update 4's, intact.
        Case(
            "fault/checkpoint-write-fails-half-way",
            "fault",
            "fit",
            _resume_more,
            expect=("last.ckpt", ("space", "ENOSPC")),
            patch=_failing_torch_save(2),
            check=_last_is_step(4),
            allow_new=True,
        ),
        Case(
            "fault/first-checkpoint-write-fails",
            "fault",
            "fit",
            _resume_more,
            expect=("step=6.ckpt", ("space", "ENOSPC")),
            patch=_failing_torch_save(1),
            check=_last_is_step(4),
            allow_new=True,
        ),
        Case(
            "fault/convert-disk-full-mid-write",
            "fault",
            "data",
            _convert_to(lambda ws, b: ws / "out.h5"),
            expect=("out.h5", ("space", "ENOSPC")),
            patch=_failing_hdf5_write,
        ),
        Case(
            "fault/registry-write-fails",
            "fault",
            "data",
            _registry_at(lambda ws: ws / "reg.yaml"),
            expect=("reg.yaml", ("space", "ENOSPC")),
            patch=_failing_text_write("reg.yaml"),
        ),
        Case(
            "fault/run-config-write-fails",
            "fault",
            "fit",
            lambda ws, b: [f"data.path={b.good}", *fit_common(ws), "log.run_name=r"],
            expect=("config.yaml", ("space", "ENOSPC")),
            patch=_failing_text_write("config.yaml"),
        ),
    ]


# ---------------------------------------------------------------- valid inputs


def valid_cases() -> list[Case]:
    return [
        Case(
            "valid/smac-yaml-on-a-2s3z-dataset",
            "valid",
            "fit",
            lambda ws, b: ["--config", SMAC_YAML, f"data.path={b.smax_2s3z}", *fit_common(ws)],
            expect_code=0,
        ),
        Case(
            "valid/mamujoco-yaml-on-another-task",
            "valid",
            "fit",
            lambda ws, b: [
                "--config",
                MAMUJOCO_YAML,
                f"data.path={ROOT / 'data' / 'mamujoco_ant_2x4_expert.h5'}",
                *fit_common(ws),
            ],
            expect_code=0,
        ),
        Case("valid/resume-in-its-own-run-directory", "valid", "fit", _resume_with(), expect_code=0),
    ]


def _pymarl_buffer(edit: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Path, Base], list[str]]:
    """A pymarl episode buffer with one field replaced, converted by the data CLI."""

    def build(ws: Path, base: Base) -> list[str]:
        import h5py

        path = ws / "bad.h5"
        raw = write_pymarl(path, [3, 4], [False, True], 6)
        with h5py.File(path, "a") as handle:
            for key, value in edit(raw).items():
                del handle[key]
                if value is not None:
                    handle.create_dataset(key, data=value)
        return ["convert", path, ws / "o.h5", "--no-progress"]

    return build


PYMARL_EDITS = [
    (
        "filled-with-a-hole",
        lambda a: {
            "filled": np.concatenate([a["filled"][:, :1], 0 * a["filled"][:, 1:2], a["filled"][:, 2:]], 1)
        },
        "filled",
        "ones then zeros",
    ),
    (
        "terminated-mid-episode",
        lambda a: {"terminated": np.ones_like(a["terminated"])},
        "terminated",
        "terminated at step 0",
    ),
    ("no-reward", lambda a: {"reward": None}, "reward", "missing"),
    ("time-major-obs", lambda a: {"obs": a["obs"][0]}, "obs", "[B, T, N, O]"),
    ("nan-reward-inside-filled", lambda a: {"reward": np.full_like(a["reward"], np.nan)}, "reward", "finite"),
]


def pymarl_cases() -> list[Case]:
    return [
        Case(
            f"dataset/pymarl-{name}/convert",
            "dataset",
            "data",
            _pymarl_buffer(edit),
            expect=("bad.h5", f"'{field_name}'", text),
        )
        for name, edit, field_name, text in PYMARL_EDITS
    ]


def all_cases() -> list[Case]:
    return [
        *dataset_cases(),
        *pymarl_cases(),
        *card_cases(),
        *config_cases(),
        *checkpoint_cases(),
        *output_cases(),
        *argument_cases(),
        *fault_cases(),
        *valid_cases(),
    ]
