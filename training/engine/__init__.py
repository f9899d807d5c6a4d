"""Training engines: turn (dataset, method, hyperparameters, seed, steps) into a trained model.

* :func:`train_model` (:mod:`training.engine.train`): one model, the reference engine. Returns a
  :class:`TrainedModel` (encoder, decoder, optional FactorVAE discriminator, ``train_results``), which encodes
  observations ``(n, 64, 64, C)`` float32 in [0, 1] into codes ``(n, 10)`` through ``representation_fn``.
* :func:`train_packed` (:mod:`training.engine.packed`): several runs of one method as one stacked computation
  (the same model per run as :func:`train_model` up to float rounding); the only engine with mixed precision.
* :mod:`training.engine.device_data` draws batches on the training device; :mod:`training.engine.allocator` keeps
  freed CPU tensor memory in the process.
"""
from training.engine.options import PRECISIONS, TrainingOptions
from training.engine.packed import train_packed
from training.engine.train import TrainedModel, TrainingDivergedError, resolve_device, train_model

__all__ = ["PRECISIONS", "TrainedModel", "TrainingDivergedError", "TrainingOptions", "resolve_device", "train_model",
           "train_packed"]
