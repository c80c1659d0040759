#!/usr/bin/env bash
# The wheel ships every module: build it, install it into a fresh venv, and from a
# directory outside the checkout import every module and run a short `fit` on a dataset
# that lives outside the checkout too. Run from the CI venv (or any environment that has
# the dependencies): the fresh venv reuses them through PYTHONPATH, so nothing is
# downloaded. Usage: .ci/check_wheel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
deps=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# Build from a copy of the package's files as git sees them (tracked or new, not ignored):
# setuptools' build/ folder in the checkout can hold modules deleted since, and would ship them.
mkdir "$tmp/src"
git ls-files -z --cached --others --exclude-standard -- omiga_pl setup.cfg pyproject.toml README.md |
  python -c '
import pathlib, shutil, sys
dst = pathlib.Path(sys.argv[1])
for name in sys.stdin.read().split("\0"):
    if name and pathlib.Path(name).is_file():  # a deleted, uncommitted file is not there
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(name, dst / name)
' "$tmp/src"
# No build isolation when this environment can build (it saves fetching setuptools).
isolation=()
if python -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 68)' 2>/dev/null; then
  isolation=(--no-build-isolation)
fi
python -m pip wheel -q --no-deps "${isolation[@]}" -w "$tmp/dist" "$tmp/src"
wheel=$(ls "$tmp"/dist/omiga_pl-*.whl)

# Every .py file of the package is in the wheel (a folder without __init__.py would be
# left out by `packages = find:`, and importing what was installed could not tell).
python - "$wheel" "$tmp/src" <<'PY'
import pathlib, sys, zipfile
shipped = {n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith(".py")}
src = pathlib.Path(sys.argv[2])
package = {p.relative_to(src).as_posix() for p in (src / "omiga_pl").rglob("*.py")}
missing = sorted(package - shipped)
if missing:
    sys.exit(f"check_wheel: {sys.argv[1]}: missing {len(missing)} module(s): {', '.join(missing)}")
print(f"check_wheel: the wheel holds all {len(package)} modules of omiga_pl/")
PY

python -m venv --without-pip "$tmp/venv"
python -m pip --python "$tmp/venv/bin/python" install -q --no-deps --no-index "$wheel"

# Outside the checkout: the installed package, not the source tree, must be what runs.
mkdir "$tmp/work"
cp data/smax_3m_poor.h5 "$tmp/work/dataset.h5"
cd "$tmp/work"
export PYTHONPATH="$deps"
"$tmp/venv/bin/python" - "$tmp/venv" <<'PY'
import importlib, importlib.util, pkgutil, sys
import omiga_pl
if not omiga_pl.__file__.startswith(sys.argv[1]):
    sys.exit(f"check_wheel: imported {omiga_pl.__file__}, not the installed wheel under {sys.argv[1]}")
def fail(name):
    raise ImportError(f"check_wheel: cannot import {name}")
names = [m.name for m in pkgutil.walk_packages(omiga_pl.__path__, "omiga_pl.", onerror=fail)]
for name in names:
    # A __main__ module runs its command when imported: only check that it is there.
    if name.endswith(".__main__"):
        assert importlib.util.find_spec(name) is not None, name
    else:
        importlib.import_module(name)
print(f"check_wheel: imported {len(names)} modules from {omiga_pl.__file__}")
PY
"$tmp/venv/bin/python" -m omiga_pl.generate --help >/dev/null
"$tmp/venv/bin/python" -m omiga_pl.data --help >/dev/null
"$tmp/venv/bin/python" -m omiga_pl.fit data.path="$tmp/work/dataset.h5" trainer.max_steps=5 \
  eval.enabled=false log.out_dir="$tmp/work/runs" log.run_name=wheel trainer.enable_progress_bar=false \
  >"$tmp/fit.log" 2>&1 || { cat "$tmp/fit.log"; exit 1; }
test -f "$tmp/work/runs/wheel/checkpoints/last.ckpt"
echo "check_wheel: fit ran 5 updates from the installed wheel; $((SECONDS - start)) s in all"
