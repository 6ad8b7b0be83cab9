#!/usr/bin/env bash
# Install synergy_dagster and its dev tools into the active Python environment.
# Without an NVIDIA GPU, torch's CPU build is installed first (no multi-GB CUDA download);
# with one, pip takes the usual (CUDA) build. Set SYNERGY_TORCH=cpu|cuda to force a choice.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
want=${SYNERGY_TORCH:-auto}
if [ "$want" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then want=cuda; else want=cpu; fi
fi
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  if [ "$want" = cpu ]; then
    # A local wheel or mirror may hold the +cpu build; otherwise PyTorch's CPU index does.
    "$PY" -m pip install "torch==2.13.0+cpu" 2>/dev/null \
      || "$PY" -m pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  else
    "$PY" -m pip install "torch>=2.3,<2.15"
  fi
fi
"$PY" -m pip install -e ".[dev]"
"$PY" -c "import torch, synergy_dagster; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"
# In a virtual environment, activating it also lets the dagster CLI find this project when typed in
# the project root (`dagster asset materialize --select evaluation*`, no -m): the dagster CLI reads
# its options from DAGSTER_CLI_<COMMAND>_<OPTION> variables. DAGSTER_HOME keeps runs and partitions.
if [ -n "${VIRTUAL_ENV:-}" ] || "$PY" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
  activate="$("$PY" -c 'import sys; print(sys.prefix)')/bin/activate"
  root="$(pwd)"
  if [ -f "$activate" ] && ! grep -q "synergy_dagster: dagster CLI" "$activate"; then
    cat >> "$activate" <<EOS

# synergy_dagster: dagster CLI options for this project (added by scripts/install.sh)
export DAGSTER_CLI_ASSET_MATERIALIZE_MODULE_NAME=synergy_dagster.defs.definitions
export DAGSTER_CLI_ASSET_LIST_MODULE_NAME=synergy_dagster.defs.definitions
export DAGSTER_CLI_JOB_EXECUTE_MODULE_NAME=synergy_dagster.defs.definitions
export DAGSTER_CLI_JOB_LIST_MODULE_NAME=synergy_dagster.defs.definitions
export DAGSTER_HOME="\${DAGSTER_HOME:-$root/dagster_home}"
mkdir -p "\$DAGSTER_HOME" && [ -f "\$DAGSTER_HOME/dagster.yaml" ] || cp "$root/deploy/dagster.yaml" "\$DAGSTER_HOME/dagster.yaml"
EOS
  fi
fi
