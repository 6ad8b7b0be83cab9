"""The paper's LSTM: normalisation, minibatch sampling, training with checkpoints, prediction.

Free of Dagster; everything is device-agnostic (CUDA when present, else CPU).
"""

from synergy_dagster.models.bank import BankMember, bank_compatible, train_bank
from synergy_dagster.models.checkpoint import load_checkpoint, save_checkpoint
from synergy_dagster.models.device import as_device, pick_device
from synergy_dagster.models.files import load_state, save_state
from synergy_dagster.models.lstm import SynergyLSTM, masked_rmse
from synergy_dagster.models.normalization import (
    Arrays,
    Normalizer,
    default_method,
    log_candidates,
    prepare_arrays,
)
from synergy_dagster.models.predict import model_from_state, predict
from synergy_dagster.models.sampling import (
    effective_batch,
    full_inputs,
    gather_windows,
    iterations_per_epoch,
    sample_indices,
)
from synergy_dagster.models.training import TrainResult, TrainSpec, train_model

__all__ = [
    "Arrays",
    "BankMember",
    "Normalizer",
    "SynergyLSTM",
    "TrainResult",
    "TrainSpec",
    "as_device",
    "bank_compatible",
    "default_method",
    "effective_batch",
    "full_inputs",
    "gather_windows",
    "iterations_per_epoch",
    "load_checkpoint",
    "load_state",
    "log_candidates",
    "masked_rmse",
    "model_from_state",
    "pick_device",
    "predict",
    "prepare_arrays",
    "sample_indices",
    "save_checkpoint",
    "save_state",
    "train_bank",
    "train_model",
]
