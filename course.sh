#!/usr/bin/env bash
# The course's one entry point.
#   bash course.sh                  set everything up (idempotent), then open JupyterLab on the course
#   bash course.sh setup            set everything up only
#   bash course.sh test [ARGS]      set up if needed, then run the test suite (ARGS go to pytest)
#   bash course.sh run [ARGS]       as plain `bash course.sh`; ARGS go to `jupyter lab` (--port 9999 ...)
# Environment:
#   PYTHON                  interpreter that creates the venv (default python3.11, else python3)
#   VENV                    the virtual environment (default .venv)
#   GENAI_COURSE_TORCH      which torch build: auto (default: PyTorch's CPU wheels on Linux without
#                           an NVIDIA GPU, PyPI's wheel otherwise), cpu, or cuda (PyPI's wheel, which
#                           is the CUDA build on Linux)
#   GENAI_COURSE_TORCH_INDEX  the CPU wheel index (default https://download.pytorch.org/whl/cpu)
#   GENAI_COURSE_QUICK=1    shortens notebook training (the test command sets it)
# Sourcing this file (`source course.sh`) defines the functions below without running anything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_PIN="torch==2.13.0"
TORCH_CPU_INDEX=${GENAI_COURSE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
PROBE_SECONDS=5  # how long the CPU index may take to answer before we use PyPI instead

# The index to install torch from, or nothing for pip's default (PyPI). PyPI's Linux wheel bundles
# CUDA (gigabytes); a laptop without an NVIDIA GPU only needs PyTorch's CPU wheel. macOS wheels on
# PyPI are already CPU/MPS builds.
torch_index() {
  case "${GENAI_COURSE_TORCH:-auto}" in
    cpu) echo "$TORCH_CPU_INDEX" ;;
    cuda) ;;
    auto)
      if [ "$(uname -s)" = Linux ] && ! nvidia-smi -L >/dev/null 2>&1; then
        echo "$TORCH_CPU_INDEX"
      fi ;;
    *) echo "error: GENAI_COURSE_TORCH must be auto, cpu or cuda (got '$GENAI_COURSE_TORCH')" >&2
       return 2 ;;
  esac
}

# Does the index answer within PROBE_SECONDS? (One HEAD request, no retries: machines that reach
# only PyPI or a mirror must not wait for pip's retries.)
index_reachable() {  # PYTHON URL
  "$1" -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="HEAD"), timeout=float(sys.argv[2]))' \
    "$2/torch/" "$PROBE_SECONDS" >/dev/null 2>&1
}

install_torch() {  # PYTHON
  local py=$1 index
  index=$(torch_index) || return
  if [ -n "$index" ]; then
    if index_reachable "$py" "$index"; then
      echo "== installing $TORCH_PIN (CPU build, from $index)"
      if "$py" -m pip install --quiet "$TORCH_PIN" --index-url "$index"; then
        return 0
      fi
      echo "warning: installing torch from $index failed; trying PyPI's $TORCH_PIN instead" >&2
    else
      echo "note: $index is not reachable from here (waited at most ${PROBE_SECONDS} s); installing $TORCH_PIN from your default index"
    fi
  else
    echo "== installing $TORCH_PIN from your default index"
  fi
  "$py" -m pip install --quiet "$TORCH_PIN"
}

setup() {
  local stamp="$VENV/.genai-course-installed" extras=all
  # The student edition (genai-course student-edition) has no instructor tools to install.
  if [ -f .student-edition ]; then extras=course,test; fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local py="$VENV/bin/python"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$py" -m pip install --quiet --upgrade pip
    install_torch "$py"  # first, so that the package's torch pin finds it installed
    echo "== installing the course package (.[$extras])"
    "$py" -m pip install --quiet -e ".[$extras]"
    "$py" -m ipykernel install --sys-prefix --name python3 >/dev/null
    touch "$stamp"
  fi
  # The grader isolates student code with bubblewrap when it can (Debian/Ubuntu package).
  if ! command -v bwrap >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "== installing bubblewrap (sandbox for grading)"
      (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; }) \
        || echo "warning: could not install bubblewrap; grading will use a plain subprocess"
    else
      echo "note: bubblewrap (bwrap) not found; grading falls back to a plain subprocess"
    fi
  fi
  echo "== preparing data"
  "$VENV/bin/genai-course" data
}

# JupyterLab on the course, with the venv active: its terminals find `genai-course` and `python`.
lab() {  # [jupyter lab arguments]
  VIRTUAL_ENV=$(cd "$VENV" && pwd)
  PATH="$VIRTUAL_ENV/bin:$PATH"
  export VIRTUAL_ENV PATH
  # The student edition switches off nbgrader's instructor tools (menu, sidebars, formgrader).
  if [ -d .jupyter ]; then
    export JUPYTER_CONFIG_PATH="$PWD/.jupyter${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
  fi
  # Terminals run the user's shell as a non-login shell: a login shell (Jupyter's choice when it is
  # not started from a terminal) reads /etc/profile, which resets PATH and loses the venv. bash
  # reads ~/.bashrc, which may put another Python first (conda, pyenv): put the venv back after it.
  local shell=${SHELL:-$(command -v bash || command -v sh)} terminal
  if [ "$(basename "$shell")" = bash ]; then
    local rc="$VIRTUAL_ENV/.genai-course-bashrc"
    cat > "$rc" <<'EOF'
# JupyterLab terminals of the course (written by course.sh): your ~/.bashrc, then the venv first.
if [ -f ~/.bashrc ]; then . ~/.bashrc; fi
PATH="$VIRTUAL_ENV/bin:$PATH"
EOF
    terminal="[\"$shell\", \"--rcfile\", \"$rc\"]"
  else
    terminal="[\"$shell\"]"
  fi
  local args=(--notebook-dir=. "--ServerApp.terminado_settings={\"shell_command\": $terminal}")
  # Docker containers, WSL and cloud VMs often run as root; Jupyter refuses root without this flag.
  if [ "$(id -u)" = 0 ]; then args+=(--allow-root); fi
  exec "$VIRTUAL_ENV/bin/jupyter" lab "${args[@]}" "$@"
}

main() {
  case "${1:-run}" in
    setup) setup ;;
    run)
      shift || true
      setup
      lab "$@" ;;
    test)
      shift || true
      setup
      export GENAI_COURSE_QUICK=1 MPLBACKEND=Agg
      # Notebooks: every one under lectures/ and solutions/ (nbval-lax: cells must run without error).
      # Released homework is not executed: its stubs raise NotImplementedError until written.
      local nb_dirs=() d
      for d in lectures solutions; do if [ -d "$d" ]; then nb_dirs+=("$d"); fi; done
      "$VENV/bin/python" -m pytest tests "${nb_dirs[@]}" --nbval-lax --nbval-cell-timeout=900 \
        -p no:cacheprovider --durations=15 "$@" ;;
    *) echo "usage: bash course.sh [run [jupyter args]|setup|test [pytest args]]" >&2; exit 2 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
