#!/usr/bin/env bash
# Validate the Binder environment without Binder (mybinder.org and the PyTorch CPU index are not
# reachable from CI):
#   1. build a fresh venv from binder/requirements.txt with the --extra-index-url line dropped and
#      "+cpu" removed (torch==2.13.0 resolves to the same CPU wheel locally), then `pip check`;
#   2. run binder/postBuild in it, with a fresh user cache (as on a new Binder image);
#   3. execute every notebook in notebooks/ in that venv (jupyter nbconvert --execute, fresh kernel each);
#   4. in a throwaway venv, `pip install jupyter-repo2docker` and print the Dockerfile that
#      `repo2docker --no-build --debug .` would build; check it uses binder/requirements.txt,
#      Python 3.11 and binder/postBuild.
#
# Usage: tools/validate_binder.sh [WORKDIR]     (default WORKDIR: a new folder under /tmp)
#   SKIP_REPO2DOCKER=1   skip step 4        SKIP_NOTEBOOKS=1   skip step 3
#   REUSE_VENV=1         keep WORKDIR/venv from an earlier run (only nanonb is reinstalled)
#   PYTHON=python3.11    interpreter for the venvs (Binder uses 3.11, see binder/runtime.txt)
#   NOTEBOOKS="a.ipynb b.ipynb"  only these (paths relative to the notebook folder)
#   NOTEBOOK_DIR=path   notebook folder (default: notebooks/)
# Writes WORKDIR/report.txt (timings, versions), WORKDIR/Dockerfile, WORKDIR/executed/*.ipynb.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${1:-$(mktemp -d /tmp/nanonb-binder-XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
PY=${PYTHON:-python3.11}
REPORT=$WORK/report.txt
: > "$REPORT"
log() { echo "[validate_binder] $*" | tee -a "$REPORT"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t_all=$(now)

command -v "$PY" >/dev/null || { echo "interpreter $PY not found (set PYTHON=...)" >&2; exit 2; }
log "workdir $WORK; interpreter $($PY --version 2>&1); binder/runtime.txt says $(cat binder/runtime.txt)"

# ---------------------------------------------------------------- 1. venv from binder/requirements.txt
REQ=$WORK/requirements-local.txt
grep -v -E '^\s*--(extra-)?index-url' binder/requirements.txt | sed -E 's/\+cpu\b//' > "$REQ"
log "requirements used (index line dropped, +cpu removed):"
grep -v -E '^\s*(#|$)' "$REQ" | sed 's/^/    /' | tee -a "$REPORT"
t=$(now)
VPY=$WORK/venv/bin/python
if [ -n "${REUSE_VENV:-}" ] && [ -x "$VPY" ]; then
  # iterate on notebooks only: reinstall just the package (non-editable, as on Binder)
  "$VPY" -m pip install -q --no-deps --force-reinstall .
  log "venv reused (REUSE_VENV=1), nanonb reinstalled in $(since "$t") s"
else
  rm -rf "$WORK/venv"
  "$PY" -m venv "$WORK/venv"
  "$VPY" -m pip install -q --upgrade pip
  # relative paths in the requirements file (".") are resolved from the current directory: the repo root,
  # as in repo2docker
  "$VPY" -m pip install -q -r "$REQ"
  log "venv built in $(since "$t") s, $(du -sh "$WORK/venv" | cut -f1)"
fi
"$VPY" -m pip check | tee -a "$REPORT"
# -P and a neutral folder: check the *installed* package (as notebooks/ sees it), not the source tree
(cd "$WORK" && "$VPY" -P - <<'PY') | tee -a "$REPORT"
from importlib.metadata import version
names = ["torch", "numpy", "nanonb", "jupyterlab", "notebook", "ipywidgets", "nglview", "ipympl", "higher", "ase",
         "pymatgen", "rdkit", "tblite"]
print("    " + ", ".join(f"{n} {version(n)}" for n in names))
import nanonb.pretrained as p, torch
assert "+cpu" in torch.__version__ or not torch.cuda.is_available(), torch.__version__
names = p.available()
print("    shipped pretrained learners (installed package):", names)
assert names["learners"], f"the installed package has no pretrained weights in {p.WEIGHTS_DIR}"
PY
"$WORK/venv/bin/jupyter" labextension list 2>&1 | grep -E "nglview|jupyter-matplotlib|widgets" | sed 's/^/    /' \
  | tee -a "$REPORT"

# ---------------------------------------------------------------- 2. postBuild with a fresh user cache
export XDG_CACHE_HOME=$WORK/cache XDG_CONFIG_HOME=$WORK/config XDG_DATA_HOME=$WORK/data
export JUPYTER_CONFIG_DIR=$WORK/jupyter-config JUPYTER_DATA_DIR=$WORK/jupyter-data IPYTHONDIR=$WORK/ipython
export MPLCONFIGDIR=$WORK/mpl JUPYTER_PLATFORM_DIRS=1
unset MPLBACKEND VIRTUAL_ENV
export PATH=$WORK/venv/bin:$PATH
if [ -x binder/postBuild ]; then
  t=$(now)
  (cd "$REPO" && binder/postBuild) 2>&1 | tail -5 | tee -a "$REPORT"
  log "postBuild ran in $(since "$t") s"
fi

# ---------------------------------------------------------------- 3. every notebook in that venv
fail=0
if [ -z "${SKIP_NOTEBOOKS:-}" ]; then
  mkdir -p "$WORK/executed"
  rm -rf "$WORK/nbrun"; cp -r "${NOTEBOOK_DIR:-notebooks}" "$WORK/nbrun"   # run in a copy: notebooks may write files next to themselves
  if [ -n "${NOTEBOOKS:-}" ]; then read -r -a nbs <<< "$NOTEBOOKS"; else
    mapfile -t nbs < <(cd "$WORK/nbrun" && ls -1 ./*.ipynb 2>/dev/null | sed 's|^\./||'); fi
  [ "${#nbs[@]}" -gt 0 ] || log "WARNING: no notebooks in ${NOTEBOOK_DIR:-notebooks}/"
  for nb in "${nbs[@]}"; do
    t=$(now)
    if (cd "$WORK/nbrun" && jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=900 \
          --ExecutePreprocessor.kernel_name=python3 --output-dir "$WORK/executed" "$nb") > "$WORK/nbconvert-${nb%.ipynb}.log" 2>&1
    then log "notebook $nb: ok in $(since "$t") s"
    else log "notebook $nb: FAILED after $(since "$t") s (see $WORK/nbconvert-${nb%.ipynb}.log)"
         tail -20 "$WORK/nbconvert-${nb%.ipynb}.log" | sed 's/^/    /' | tee -a "$REPORT"; fail=1; fi
  done
fi

# ---------------------------------------------------------------- 4. what repo2docker would build
if [ -z "${SKIP_REPO2DOCKER:-}" ]; then
  t=$(now)
  "$PY" -m venv "$WORK/r2d"
  "$WORK/r2d/bin/python" -m pip install -q jupyter-repo2docker
  # --no-build prints the Dockerfile and needs no Docker daemon
  # uid/name as on mybinder.org (the default would be the uid running this script)
  (cd "$REPO" && "$WORK/r2d/bin/repo2docker" --no-build --debug --user-id 1000 --user-name jovyan .) \
    > "$WORK/repo2docker.log" 2>&1 || {
    log "repo2docker --no-build failed:"; tail -20 "$WORK/repo2docker.log" | tee -a "$REPORT"; fail=1; }
  # the Dockerfile is the part of the debug output from the first FROM line on
  sed -n '/^FROM /,$p' "$WORK/repo2docker.log" > "$WORK/Dockerfile"
  log "repo2docker $("$WORK/r2d/bin/repo2docker" --version 2>&1) Dockerfile: $WORK/Dockerfile ($(since "$t") s)"
  # binder/runtime.txt -> "Building conda environment for python=3.11" and the py-3.11 lock file
  for pattern in 'pip install --no-cache-dir -r "binder/requirements.txt"' 'RUN ./binder/postBuild' \
                 'environment-2epy-2d3-2e11-2dlinux'; do
    if grep -Fq "$pattern" "$WORK/Dockerfile"; then log "  Dockerfile has: $pattern"
    else log "  Dockerfile LACKS: $pattern"; fail=1; fi
  done
  if grep -q 'conda environment for python=3.11' "$WORK/repo2docker.log"; then
    log "  $(grep -o 'Building conda environment for python=[0-9.]*' "$WORK/repo2docker.log")"
  else log "  repo2docker did not pick python 3.11 from binder/runtime.txt"; fail=1; fi
  if grep -Eq 'src/(requirements.txt|environment.yml|setup.py)' "$WORK/Dockerfile"; then
    log "  Dockerfile also uses a top-level environment file (binder/ should be the only one)"; fail=1; fi
fi

log "total $(since "$t_all") s; $( [ $fail = 0 ] && echo PASSED || echo FAILED )"
exit $fail
