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
