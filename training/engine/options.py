"""The options of a training run, validated once, shared by both engines, the study files and the sweep's workers.

Two kinds (:class:`TrainingOptions`):

* options that change a run's numbers: the learning rates, ``num_eval_samples`` (the final ``train_results`` pass),
  ``precision`` and ``data_order``. A study may set the ones in :data:`STUDY_KEYS` in its ``[training]`` table; they
  then enter every run's configuration, hence its id.
* options that only change speed (``prefetch``, ``channels_last``, ``fused_adam``, ``compile``,
  ``nan_check_every``, ``checkpoint_every``, and for the packed engine ``impl``, ``device_data``, ``workers``): results
  equal up to floating-point rounding.

Imports no torch: a study file is validated without it.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

#: Adam as the reference configures it (disentanglement_lib's model_configs): the VAE, and FactorVAE's discriminator.
VAE_LEARNING_RATE = 1e-4
DISCRIMINATOR_LEARNING_RATE = 1e-4
DEFAULT_NUM_EVAL_SAMPLES = 10_000
DEFAULT_CHECKPOINT_EVERY = 1000
PRECISIONS = ("fp32", "tf32", "bf16")
DATA_ORDERS = ("batched", "reference")
#: How the packed engine runs a pack's K networks (``training.engine.packed``): "loop" (the CPU default), "gemm" (the
#: CUDA default) or "triton" (fused kernels; CUDA).
PACKED_IMPLS = ("loop", "gemm", "triton")
#: The options a study's ``[training]`` table may set (each changes the numbers, so each is part of the run id).
STUDY_KEYS = ("num_eval_samples", "precision")


@dataclass(frozen=True)
class TrainingOptions:
    """How a run is trained besides its identity (dataset, method, hyperparameters, seed, steps, batch size).

    learning_rate, discriminator_learning_rate: Adam's step sizes (>= 0).
    num_eval_samples: fresh samples of the final ``train_results`` pass (0 skips it).
    precision: ``"fp32"``; ``"tf32"`` (TF32 matrix products, CUDA) or ``"bf16"`` (bf16 autocast of the networks,
        losses in fp32) train through :func:`training.engine.train_packed`, packs of one included.
    data_order: ``"batched"`` (one ``sample_observations(batch_size, rs)`` call per step) or ``"reference"`` (one call
        per example, disentanglement_lib's exact stream).
    prefetch: batches a background thread prepares ahead (0: drawn in the training loop); the same batches.
    channels_last, fused_adam (None: where fused Adam exists), compile: speed options.
    nan_check_every: steps between finiteness checks of the loss (None: 1 on CPU, 50 on CUDA).
    checkpoint_every: steps between checkpoints (when a checkpoint folder is given).
    impl, device_data, workers: the packed engine's layer implementation (:data:`PACKED_IMPLS`; None: its device
        default), whether it draws batches on the device (None: on CUDA where possible), CPU sub-packs (None: one
        per intra-op thread).
    """
    learning_rate: float = VAE_LEARNING_RATE
    discriminator_learning_rate: float = DISCRIMINATOR_LEARNING_RATE
    num_eval_samples: int = DEFAULT_NUM_EVAL_SAMPLES
    precision: str = "fp32"
    data_order: str = "batched"
    prefetch: int = 2
    channels_last: bool = True
    fused_adam: bool | None = None
    compile: bool = False
    nan_check_every: int | None = None
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    impl: str | None = None
    device_data: bool | None = None
    workers: int | None = None

    def __post_init__(self):
        for name in ("learning_rate", "discriminator_learning_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name, minimum in (("num_eval_samples", 0), ("prefetch", 0), ("checkpoint_every", 1)):
            _check_int(name, getattr(self, name), minimum)
        for name in ("nan_check_every", "workers"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        for name, allowed in (("precision", PRECISIONS), ("data_order", DATA_ORDERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.impl is not None and self.impl not in PACKED_IMPLS:
            raise ValueError(f"impl must be one of {', '.join(PACKED_IMPLS)}, got {self.impl!r}")

    @classmethod
    def of(cls, options: "TrainingOptions | Mapping[str, Any] | None" = None, **overrides) -> "TrainingOptions":
        """``options`` (an instance, a mapping of field names, or None for the defaults) with ``overrides`` applied;
        an unknown name raises ValueError naming the accepted ones."""
        base = options if isinstance(options, TrainingOptions) else cls()
        values = dict(options) if isinstance(options, Mapping) else {}
        values.update(overrides)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")
        return replace(base, **values)

    @classmethod
    def from_study(cls, table: Mapping[str, Any] | None) -> "TrainingOptions":
        """The options of a study's ``[training]`` table (only :data:`STUDY_KEYS`; anything else raises)."""
        table = dict(table or {})
        unknown = sorted(set(table) - set(STUDY_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; accepted: {', '.join(STUDY_KEYS)}")
        return cls.of(**table)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
