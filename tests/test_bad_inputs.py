"""Every bad input and fault of tests/bad_input_corpus.py ends in one clear line and harms nothing.

Each case builds its own broken dataset, card, config, checkpoint or output location and
runs the real CLI on it (in-process; a handful again through a real subprocess): exit 2,
exactly one ``<prog>: error:`` line on stderr naming the file and the field / key, no
traceback, every existing file unchanged (sha256) and nothing left behind. The counts by
class: ``python scripts/bad_input_report.py``.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch
from bad_input_corpus import (
    Case,
    all_cases,
    build_base,
    copy_run,
    fit_common,
    private_environment,
    resume_args,
    run_case,
    snapshot,
)

from omiga_pl.fit import main as fit_main

CASES = all_cases()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("bad_inputs") / "base")


def describe(case: Case, outcome) -> str:
    return (
        f"{case.id}: {outcome.problems} exit {outcome.code}; raised {outcome.error}; "
        f"stderr {outcome.stderr[-3:]}"
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_harms_nothing(case, base, tmp_path):
    outcome = run_case(case, tmp_path / "ws", base)
    assert not outcome.problems, describe(case, outcome)
    if case.expect_code == 2:
        assert outcome.code == 2 and outcome.line.startswith(f"omiga_pl.{case.cli}: error: ")
        assert "Traceback" not in "\n".join(outcome.stderr)


def test_the_corpus_covers_every_class():
    classes = {c.cls for c in CASES}
    assert classes == {"dataset", "card", "config", "checkpoint", "output", "arguments", "fault", "valid"}
    assert len(CASES) >= 400 and len({c.id for c in CASES}) == len(CASES)


SUBPROCESS_CASES = [c for c in CASES if c.subprocess]


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[c.id for c in SUBPROCESS_CASES])
def test_real_process_prints_one_line_and_no_traceback(case, base, tmp_path):
    """The same cases through ``python -m ...``: nothing but the one line reaches stderr."""
    assert case.patch is None
    ws = tmp_path / "ws"
    ws.mkdir()
    with private_environment(ws, base):
        argv = [str(a) for a in case.build(ws, base)]
        before = snapshot(ws, base.root)
        module = "omiga_pl.fit" if case.cli == "fit" else "omiga_pl.data"
        done = subprocess.run(
            [sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=ws, timeout=300
        )
        after = snapshot(ws, base.root)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"{module}: error: "), lines
    assert "Traceback" not in done.stderr
    assert after == before


def test_a_checkpoint_write_that_fails_half_way_keeps_the_previous_one(base, tmp_path, monkeypatch):
    """torch.save writes half its bytes, then the disk is full: last.ckpt still loads, at update 4."""
    ws = tmp_path / "ws"
    ws.mkdir()
    run = copy_run(ws, base)
    last = run / "checkpoints" / "last.ckpt"
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(getattr(f, "name", f))
        if len(calls) == 1:  # step=6.ckpt succeeds
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save)
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = fit_main(
            [str(a) for a in resume_args(ws, last, "trainer.max_steps=8", "log.checkpoint_every=2")]
        )
    monkeypatch.undo()
    assert code == 2
    message = err.getvalue().strip().splitlines()[-1]
    assert message == (
        f"omiga_pl.fit: error: {last.resolve()}: cannot write checkpoint: No space left on device; "
        "the previous checkpoint of that name is intact"
    )
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 4
    assert (
        torch.load(run / "checkpoints" / "step=6.ckpt", map_location="cpu", weights_only=False)["global_step"]
        == 6
    )
    assert not [p for p in last.parent.iterdir() if p.name.endswith(".tmp")]
    # The written temporary files were inside the run's own directory, never the system's.
    assert all(str(Path(c).parent) == str(last.parent.resolve()) for c in calls)


def test_a_taken_default_run_name_gets_a_suffix_and_the_message_names_this_runs_checkpoint(
    base, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr("omiga_pl.fit.time.strftime", lambda fmt: "20260101-000000")
    args = [f"data.path={base.good}", *fit_common(tmp_path)]
    assert fit_main(args) == 0
    first = tmp_path / "runs" / "omiga_3m_good_s0_20260101-000000"
    config_before = (first / "config.yaml").read_bytes()
    capsys.readouterr()
    assert fit_main([*args, "trainer.max_steps=3"]) == 0
    out = capsys.readouterr().out
    second = first.with_name(first.name + "-2")
    assert f"run name {first.name} is taken; this run is {second.name}" in out
    assert f"last checkpoint {(second / 'checkpoints' / 'last.ckpt').resolve()};" in out
    assert (first / "config.yaml").read_bytes() == config_before
    assert sorted(p.name for p in (second / "checkpoints").iterdir()) == [
        "last.ckpt",
        "step=2.ckpt",
        "step=3.ckpt",
    ]


def test_resume_in_its_own_directory_never_versions_checkpoint_names(base, tmp_path, capsys):
    ws = tmp_path / "ws"
    ws.mkdir()
    run = copy_run(ws, base)
    assert fit_main([str(a) for a in resume_args(ws, run / "checkpoints" / "last.ckpt")]) == 0
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step=2.ckpt", "step=4.ckpt", "step=6.ckpt"]
    assert f"last checkpoint {(run / 'checkpoints' / 'last.ckpt').resolve()};" in capsys.readouterr().out


def test_a_checkpoint_from_before_fingerprints_resumes_with_a_note(base, tmp_path, capsys):
    ws = tmp_path / "ws"
    ws.mkdir()
    run = copy_run(ws, base)
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    for key in ("fingerprint", "path"):
        checkpoint["OfflineMARLDataModule"].pop(key)
    torch.save(checkpoint, last)
    assert fit_main([str(a) for a in resume_args(ws, last)]) == 0
    assert (
        "predates dataset fingerprints: only the number of transitions (35) was checked"
        in capsys.readouterr().out
    )
