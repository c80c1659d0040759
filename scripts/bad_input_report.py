"""Run the bad-input corpus (tests/bad_input_corpus.py) and print the counts by class.

    python scripts/bad_input_report.py            # the table
    python scripts/bad_input_report.py --show     # plus every case with a problem and its stderr
    python scripts/bad_input_report.py --only card --show
    python scripts/bad_input_report.py --code /path/to/older/checkout   # the same corpus, older code
    python scripts/bad_input_report.py --real-disk   # plus writes onto a really full file system (root)

Each case builds its own broken input in a fresh workspace and runs the real CLI on it
in-process; the columns count cases that ended in a traceback, were accepted though bad
(or refused though valid), were refused without exactly one error line, with a
misleading line (not naming the file and the field / key), that modified an existing
file, left files behind, or failed their own post-condition (e.g. the previous
checkpoint must still load after a failed write).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _code_root(argv: list[str]) -> str:
    """``--code DIR``: import omiga_pl (and its conf/) from DIR instead of this checkout."""
    return argv[argv.index("--code") + 1] if "--code" in argv[:-1] else str(ROOT)


sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, _code_root(sys.argv))

from bad_input_corpus import CLASSES, PROBLEMS, all_cases, build_base, run_case  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="list every case with a problem")
    parser.add_argument("--lines", action="store_true", help="print every case's error line")
    parser.add_argument("--only", help="only the cases whose id starts with this")
    parser.add_argument("--code", help="a checkout whose omiga_pl to run the corpus against")
    parser.add_argument(
        "--real-disk",
        action="store_true",
        help="also write onto a small, full tmpfs (needs root and mount), in real processes",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cases = [c for c in all_cases() if not args.only or c.id.startswith(args.only)]
    start = time.perf_counter()
    counts = {cls: dict.fromkeys(("cases", "clean", *PROBLEMS), 0) for cls in CLASSES}
    failures = []
    with tempfile.TemporaryDirectory(prefix="omiga_bad_inputs_") as tmp:
        base = build_base(Path(tmp) / "base")
        for index, case in enumerate(cases):
            outcome = run_case(case, Path(tmp) / f"case{index:04d}", base)
            row = counts[case.cls]
            row["cases"] += 1
            row["clean"] += not outcome.problems
            for problem in outcome.problems:
                row[problem] += 1
            if outcome.problems:
                failures.append((case, outcome))
            if args.lines:
                print(f"{case.id}: {outcome.line}", file=sys.stderr)
        if args.real_disk:
            real_disk = real_disk_cases(Path(tmp), base, args.code or str(ROOT))
    header = ("class", "cases", "clean", *PROBLEMS)
    rows = [[cls, *map(str, counts[cls].values())] for cls in CLASSES if counts[cls]["cases"]]
    total = ["all", *(str(sum(counts[c][k] for c in CLASSES)) for k in header[1:])]
    widths = [max(len(r[i]) for r in [list(header), *rows, total]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in [*rows, total]:
        print(line(row))
    import omiga_pl

    code = Path(omiga_pl.__file__).parent
    print(f"\n{len(cases)} cases in {time.perf_counter() - start:.0f} s against {code}")
    if args.real_disk:
        print("\nreal full disk (tmpfs), real processes:")
        for name, verdict in real_disk:
            print(f"  {name}: {verdict}")
    if args.show:
        for case, outcome in failures:
            print(f"\n{case.id}: {', '.join(outcome.problems)} (exit {outcome.code})")
            if outcome.error:
                print(f"    raised: {outcome.error}")
            for text in outcome.stderr[-3:]:
                print(f"    stderr: {text[:400]}")
    return 0


def real_disk_cases(tmp: Path, base, code: str) -> list[tuple[str, str]]:
    """Writes onto a really full file system (a 1 MiB tmpfs), each in its own process."""
    import shutil
    import subprocess

    import torch
    from bad_input_corpus import resume_args

    mount = tmp / "full"
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        return [("all", "skipped: cannot mount a tmpfs (needs root)")]
    env = {**os.environ, "PYTHONPATH": code, "OMIGA_PL_REGISTRY": str(tmp / "reg.yaml")}
    rows = []

    def judge(done: subprocess.CompletedProcess, prog: str, extra: str = "") -> str:
        lines = done.stderr.strip().splitlines()
        if done.returncode < 0 or done.returncode >= 128:
            return f"CRASH (exit {done.returncode}){extra}"
        if "Traceback" in done.stderr:
            return f"traceback (exit {done.returncode}){extra}"
        ok = done.returncode == 2 and lines and lines[-1].startswith(f"{prog}: error: ")
        return f"{'one clear line' if ok else 'UNCLEAR'}: {lines[-1] if lines else ''}{extra}"

    def leftovers() -> str:
        stray = [p.name for p in mount.rglob("*") if p.name.endswith(".tmp") or p.name == "out.h5"]
        return f"; left behind: {stray}" if stray else ""

    try:
        source = tmp / "big_source" / "3m" / "good"
        from omiga_pl.data.formats.synthetic import write_smac_episodes

        write_smac_episodes(source, [60] * 40)  # ~7 MiB of episode files, ~2 MiB converted
        convert = [sys.executable, "-m", "omiga_pl.data", "convert", str(source), str(mount / "out.h5")]
        done = subprocess.run([*convert, "--no-progress"], capture_output=True, text=True, env=env, cwd=tmp)
        rows.append(("convert onto a full disk", judge(done, "omiga_pl.data", leftovers())))
        # The room estimate passes (disk_usage says plenty) but the disk fills during the write.
        fooled = (
            "import shutil, sys; real = shutil.disk_usage; "
            "shutil.disk_usage = lambda p: real(p)._replace(free=10**12); "
            "from omiga_pl.data.__main__ import main; sys.exit(main(sys.argv[1:]))"
        )
        done = subprocess.run(
            [sys.executable, "-c", fooled, *convert[3:], "--no-progress"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,  # not this checkout: "-c" imports from the working directory first
        )
        rows.append(("convert, disk fills during the write", judge(done, "omiga_pl.data", leftovers())))
        # A run whose disk is full when its next checkpoint is due.
        run = mount / "runs" / "base"
        shutil.copytree(base.run, run)
        last = run / "checkpoints" / "last.ckpt"
        filler = mount / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        # Room for config.yaml and the event file, not for a checkpoint (~170 KiB).
        os.truncate(filler, max(0, filler.stat().st_size - 64 * 1024))
        argv = [str(a) for a in resume_args(mount, last, "trainer.max_steps=8", "log.checkpoint_every=2")]
        done = subprocess.run(
            [sys.executable, "-m", "omiga_pl.fit", *argv], capture_output=True, text=True, env=env, cwd=tmp
        )
        try:
            step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
            kept = f"; last.ckpt loads, update {step}"
        except Exception as error:
            kept = f"; last.ckpt LOST ({type(error).__name__})"
        rows.append(("checkpoint onto a full disk", judge(done, "omiga_pl.fit", kept + leftovers())))
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
