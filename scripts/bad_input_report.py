"""Run the bad-input corpus (tests/bad_input_corpus.py) and print the counts by class.

    python scripts/bad_input_report.py            # the table
    python scripts/bad_input_report.py --show     # plus every case with a problem and its stderr
    python scripts/bad_input_report.py --only card --show

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
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from bad_input_corpus import CLASSES, PROBLEMS, all_cases, build_base, run_case  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="list every case with a problem")
    parser.add_argument("--lines", action="store_true", help="print every case's error line")
    parser.add_argument("--only", help="only the cases whose id starts with this")
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
    header = ("class", "cases", "clean", *PROBLEMS)
    rows = [[cls, *map(str, counts[cls].values())] for cls in CLASSES if counts[cls]["cases"]]
    total = ["all", *(str(sum(counts[c][k] for c in CLASSES)) for k in header[1:])]
    widths = [max(len(r[i]) for r in [list(header), *rows, total]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in [*rows, total]:
        print(line(row))
    print(f"\n{len(cases)} cases in {time.perf_counter() - start:.0f} s")
    if args.show:
        for case, outcome in failures:
            print(f"\n{case.id}: {', '.join(outcome.problems)} (exit {outcome.code})")
            if outcome.error:
                print(f"    raised: {outcome.error}")
            for text in outcome.stderr[-3:]:
                print(f"    stderr: {text[:400]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
