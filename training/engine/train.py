"""Training engine: ``train_model`` trains one of the six methods on a dataset and returns a :class:`TrainedModel`.

What the engine does (the paper's Section 4 and Appendix B, as disentanglement_lib trains):

* Architecture of :mod:`training.models.architecture` (Glorot-uniform init, zero biases), objectives of
  :mod:`training.models.objectives`, Adam(lr 1e-4, betas (0.9, 0.999), eps 1e-8) for the VAE and, for factor_vae,
  a separate Adam(lr 1e-4, betas (0.5, 0.9), eps 1e-8) for the discriminator; both are updated in every step from
  the same forward pass, each with the gradient of its own loss only (the VAE loss never moves the discriminator, the
  discriminator loss never moves the VAE). PyTorch's Adam puts eps outside the bias correction, TF1's inside; with
  eps = 1e-8 the two differ only while sqrt(v) is ~1e-8.
* Data: fresh samples from ``RandomState(seed)``: by default one ``sample_observations(batch_size, rs)`` call per
  step; ``data_order="reference"`` draws one example per call as disentanglement_lib's input pipeline did (the
  exact reference stream, slower). A background thread prepares the next batches while the current step runs.
* Seeds: ``seed`` fixes the data stream (as above), the weight init and the latent sampling / permutation noise
  (independent streams derived from ``seed`` with ``numpy.random.SeedSequence``). Same inputs, seed and device ->
  identical weights and train_results on CPU.
* The global step ``t`` handed to the objective is the number of updates done before the current one (0 first).
* Checkpoints (``checkpoint_dir``): every ``checkpoint_every`` steps and at the end, atomically, with weights,
  optimiser states, the data-stream state and the noise generators, so a resumed run reproduces the uninterrupted
  one exactly. ``train_model`` resumes by itself from a matching checkpoint in ``checkpoint_dir``.
* A non-finite loss raises :class:`TrainingDivergedError` (checked every ``nan_check_every`` steps and always before a
  checkpoint is written, so no checkpoint ever holds a diverged model).
* train_results: reconstruction_loss, kl_loss, regularizer, loss, elbo (= -(reconstruction + kl)) averaged over
  ``num_eval_samples`` (default 10,000) fresh samples after training (a data stream of its own, seeded from ``seed``;
  the reference used 1000 batches of 64), plus ``train_seconds`` (pure training time, summed over resumed parts),
  ``num_eval_samples`` and ``global_step``.
"""
from __future__ import annotations

import math
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from training.engine.allocator import retain_freed_memory
from training.engine.options import DISCRIMINATOR_LEARNING_RATE, VAE_LEARNING_RATE, TrainingOptions
from training.kernels.cpu import use_fast_cpu_layers
from training.models import objectives
from training.models.architecture import (NUM_LATENT, Discriminator, GaussianVAE, init_weights, permute_dims,
                                          sample_latent)
from training.evaluation.representation import make_representation_fn
from training.vocabulary import METHODS

MODEL_FORMAT = "dstudy-model"
CHECKPOINT_FORMAT = "dstudy-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_FILE = "checkpoint.pt"
LOSS_KEYS = ("reconstruction_loss", "kl_loss", "regularizer", "loss", "elbo")

VAE_ADAM = {"lr": VAE_LEARNING_RATE, "betas": (0.9, 0.999), "eps": 1e-8}
DISCRIMINATOR_ADAM = {"lr": DISCRIMINATOR_LEARNING_RATE, "betas": (0.5, 0.9), "eps": 1e-8}
#: torch has a fused Adam kernel for CPU tensors (2.4 and later)
CPU_FUSED_ADAM = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 4)
INIT_DESCRIPTION = "glorot_uniform weights, zero biases (TF1 tf.layers default)"


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step, the method and the hyperparameters."""


# ----------------------------------------------------------------------------------------------------------------
# seeds


def derive_seeds(seed: int) -> dict[str, int]:
    """Independent 63-bit seeds for weight init, latent noise, permutation noise and the evaluation data stream."""
    children = np.random.SeedSequence(int(seed)).spawn(4)
    names = ("init", "latent_noise", "permutation_noise", "eval_data")
    return {name: int(child.generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))
            for name, child in zip(names, children)}


def _random_state_to_dict(rs: np.random.RandomState) -> dict:
    name, keys, pos, has_gauss, cached = rs.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _random_state_from_dict(state: dict) -> np.random.RandomState:
    rs = np.random.RandomState()
    rs.set_state((state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
                  state["cached"]))
    return rs


# ----------------------------------------------------------------------------------------------------------------
# data


def resolve_dataset(dataset) -> tuple[Any, str | None]:
    """A dataset object and its vocabulary name (None when an object was passed without a ``name`` attribute)."""
    if isinstance(dataset, str):
        from training.data import get_dataset  # imported here: the data package may pull in large optional deps
        return get_dataset(dataset), dataset
    for attr in ("observation_shape", "sample_observations"):
        if not hasattr(dataset, attr):
            raise ValueError(f"dataset must be a dataset name or an object with the dataset interface; "
                             f"{type(dataset).__name__} has no {attr!r}")
    return dataset, getattr(dataset, "name", None)


def dataset_channels(dataset) -> int:
    """Channel count C of a dataset's (64, 64, C) observations; ValueError for any other observation shape."""
    shape = tuple(dataset.observation_shape)
    if len(shape) != 3 or shape[:2] != (64, 64):
        raise ValueError(f"the architecture needs 64x64xC observations, the dataset has shape {shape}")
    return int(shape[2])


def sample_batch_batched(dataset, batch_size: int, random_state: np.random.RandomState) -> np.ndarray:
    """One training batch (batch_size, 64, 64, C) float32 from a single ``sample_observations(batch_size)`` call."""
    return np.ascontiguousarray(dataset.sample_observations(batch_size, random_state), dtype=np.float32)


def sample_batch(dataset, batch_size: int, random_state: np.random.RandomState) -> np.ndarray:
    """One training batch (batch_size, 64, 64, C) float32, drawn one example at a time as the reference did."""
    first = np.asarray(dataset.sample_observations(1, random_state), dtype=np.float32)
    out = np.empty((batch_size,) + first.shape[1:], dtype=np.float32)
    out[0] = first[0]
    for i in range(1, batch_size):
        out[i] = dataset.sample_observations(1, random_state)[0]
    return out


# how a batch is drawn from RandomState(seed): "batched" = one sample_observations(batch_size) call per step (the same
# distribution, ~10x less Python overhead); "reference" = one sample_observations(1) call per example, the exact draw
# order of disentanglement_lib's input pipeline
DATA_ORDERS = {"batched": sample_batch_batched, "reference": sample_batch}


class Prefetcher:
    """Calls ``make()`` in a background thread, ``depth`` results ahead (``depth`` 0: in the caller's thread).

    An exception raised by ``make`` is handed to the consumer and re-raised by :meth:`next`.
    """

    def __init__(self, make: Callable[[], Any], depth: int = 2, name: str = "dstudy-batches"):
        self._make = make
        self._threaded = depth > 0
        if self._threaded:
            self._queue: queue.Queue = queue.Queue(maxsize=depth)
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
            self._thread.start()

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._make()
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._queue.put(exc)

    def next(self):
        if not self._threaded:
            return self._make()
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        if self._threaded:
            self._stop.set()
            self._thread.join()  # the producer checks the stop flag at least every 0.1 s between items


class BatchStream:
    """Batches of fresh training data prepared by a background thread, ``prefetch`` batches ahead.

    Each item carries the state of the RandomState *after* its batch was drawn, so a checkpoint taken after
    consuming a batch can restart the stream exactly where the consumer stands (not where the producer is).
    """

    def __init__(self, dataset, batch_size: int, random_state: np.random.RandomState, prefetch: int = 2,
                 pin_memory: bool = False, sampler: Callable = sample_batch):
        self._dataset, self._batch_size, self._rs = dataset, int(batch_size), random_state
        self._sampler, self._pin = sampler, pin_memory
        self._prefetcher = Prefetcher(self._make, prefetch)

    def _make(self):
        batch = torch.from_numpy(self._sampler(self._dataset, self._batch_size, self._rs))
        if self._pin:
            batch = batch.pin_memory()
        return batch, _random_state_to_dict(self._rs)

    def next(self) -> tuple[torch.Tensor, dict]:
        """The next batch (batch, 64, 64, C) float32 tensor and the data-stream state after it."""
        return self._prefetcher.next()

    def close(self) -> None:
        self._prefetcher.close()


# ----------------------------------------------------------------------------------------------------------------
# the trained model


@dataclass
class TrainedModel:
    """A trained model of the study: networks, what defined the run, and its train_results.

    ``vae`` holds the encoder and decoder, ``discriminator`` the FactorVAE discriminator (None for other methods).
    ``hparams`` is the dict the caller gave (vocabulary names); ``train_results`` maps the training-result keys (:data:`LOSS_KEYS` and the bookkeeping keys) to
    floats. ``representation_fn(kind)`` gives the ``mean`` / ``sampled`` representation functions.
    """

    method: str
    hparams: dict
    seed: int
    steps: int
    batch_size: int
    vae: GaussianVAE
    discriminator: Discriminator | None = None
    train_results: dict = field(default_factory=dict)
    dataset_name: str | None = None
    data_order: str = "batched"
    dataset: Any = field(default=None, repr=False, compare=False)

    @property
    def num_channels(self) -> int:
        return self.vae.num_channels

    @property
    def num_latent(self) -> int:
        return self.vae.num_latent

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def representation_fn(self, kind: str, seed: int = 0, batch_size: int = 256):
        """Callable observations (n, 64, 64, C) float32 -> codes (n, 10) numpy; see :mod:`training.evaluation.representation`."""
        return make_representation_fn(self.vae.encoder, kind, seed=seed, batch_size=batch_size)

    def code_table(self, dataset, batch_size: int = 256, progress=None):
        """A :class:`training.evaluation.code_table.CodeTable` of this encoder on a deterministic ``dataset``: every factor
        configuration encoded once; its ``representation_fn(kind, seed)`` on the table's ``dataset`` gives the same
        codes as :meth:`representation_fn` with this ``batch_size`` on the images (CPU)."""
        from training.evaluation.code_table import CodeTable, encoder_images_fn
        workers = 1 if self.device.type != "cpu" else None  # CPU: one encoding thread per core
        return CodeTable.build(dataset, encoder_images_fn(self.vae.encoder), batch_size=batch_size, progress=progress,
                               workers=workers)

    def to(self, device) -> "TrainedModel":
        self.vae.to(device)
        if self.discriminator is not None:
            self.discriminator.to(device)
        return self

    def state(self) -> dict:
        """Everything :meth:`save` writes, as a dict of plain values and CPU tensors."""
        return {
            "format": MODEL_FORMAT, "version": FORMAT_VERSION, "method": self.method,
            "hparams": {k: float(v) for k, v in self.hparams.items()}, "seed": int(self.seed),
            "steps": int(self.steps), "batch_size": int(self.batch_size), "num_channels": self.num_channels,
            "num_latent": self.num_latent, "dataset_name": self.dataset_name, "init": INIT_DESCRIPTION,
            "data_order": self.data_order,
            "train_results": {k: float(v) for k, v in self.train_results.items()},
            "vae": {k: v.detach().cpu() for k, v in self.vae.state_dict().items()},
            "discriminator": (None if self.discriminator is None else
                              {k: v.detach().cpu() for k, v in self.discriminator.state_dict().items()}),
        }

    def save(self, path) -> Path:
        """Write the model to ``path`` (a torch file of tensors and plain values, written atomically)."""
        path = Path(path)
        _atomic_torch_save(self.state(), path)
        return path

    @classmethod
    def load(cls, path, device=None) -> "TrainedModel":
        """Read a model :meth:`save` wrote; ValueError when the file is not a dstudy model."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no model file at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{path} is not a readable dstudy model file ({exc.__class__.__name__})") from None
        if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path} is not a dstudy model file")
        vae = use_fast_cpu_layers(GaussianVAE(state["num_channels"], state["num_latent"]), output_by_phases=False)
        vae.load_state_dict(state["vae"])
        discriminator = None
        if state["discriminator"] is not None:
            discriminator = Discriminator(state["num_latent"])
            discriminator.load_state_dict(state["discriminator"])
        model = cls(method=state["method"], hparams=dict(state["hparams"]), seed=state["seed"],
                    steps=state["steps"], batch_size=state["batch_size"], vae=vae, discriminator=discriminator,
                    train_results=dict(state["train_results"]), dataset_name=state["dataset_name"],
                    data_order=state.get("data_order", "batched"))
        return model.to(resolve_device(device))

    def save_artifacts(self, directory, dataset=None, random_state: int = 0, num_inputs: int = 3,
                       num_values: int = 9, num_reconstructions: int = 16) -> dict[str, Path]:
        """Write ``traversal.png`` and ``reconstructions.png`` to ``directory``; returns their paths by name.

        Inputs are drawn from ``dataset`` (default: the one the model was trained on, or its vocabulary name) with
        ``np.random.RandomState(random_state)``. See :mod:`training.evaluation.visualize` for the layouts.
        """
        from training.evaluation import visualize

        if dataset is None:
            dataset = self.dataset if self.dataset is not None else self.dataset_name
        if dataset is None:
            raise ValueError("save_artifacts needs a dataset: this model does not know which one it was trained on")
        dataset, _ = resolve_dataset(dataset)
        if dataset_channels(dataset) != self.num_channels:
            raise ValueError(f"dataset has {dataset_channels(dataset)} channel(s), the model {self.num_channels}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        rs = np.random.RandomState(random_state)
        inputs = np.asarray(dataset.sample_observations(max(num_inputs, num_reconstructions), rs), np.float32)
        paths = {
            "traversal": visualize.save_latent_traversal(self.vae, inputs[:num_inputs], directory / "traversal.png",
                                                         num_values=num_values),
            "reconstructions": visualize.save_reconstruction_grid(self.vae, inputs[:num_reconstructions],
                                                                  directory / "reconstructions.png"),
        }
        return paths


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def resolve_device(device) -> torch.device:
    """``device`` as a torch.device: None means CUDA when present, else the CPU; ValueError for anything else."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available")
    return device


# ----------------------------------------------------------------------------------------------------------------
# one optimisation step


class Trainer:
    """The networks, optimisers and noise generators of one run, and the update step.

    ``step(batch, t)`` takes a batch (N, 64, 64, C) float32 NHWC tensor and the global step t, performs one update of
    the VAE (and, for factor_vae, of the discriminator) and returns the batch's losses as 0-d tensors (detached).
    """

    def __init__(self, method: str, hparams: dict, seed: int, num_channels: int, device: torch.device,
                 learning_rate: float = VAE_ADAM["lr"], discriminator_learning_rate: float = DISCRIMINATOR_ADAM["lr"],
                 channels_last: bool = True, fused_adam: bool | None = None, compile: bool = False):
        self.method = method
        self.hparams = objectives.resolve_hparams(method, hparams)
        self.device = device
        if device.type == "cpu":
            retain_freed_memory()  # ~13,700 page faults per step otherwise; see training.engine.allocator
        self.channels_last = bool(channels_last)
        seeds = derive_seeds(seed)
        init_gen = torch.Generator().manual_seed(seeds["init"])
        self.vae = init_weights(GaussianVAE(num_channels, NUM_LATENT), init_gen).to(device)
        self.discriminator = None
        if method == "factor_vae":
            self.discriminator = init_weights(Discriminator(NUM_LATENT), init_gen).to(device)
        if self.channels_last:
            self.vae.to(memory_format=torch.channels_last)
            self.vae.decoder.memory_format = torch.channels_last
        # the CPU fast paths (equal layers; the output layer by phases on CPU only)
        use_fast_cpu_layers(self.vae, output_by_phases=device.type == "cpu")
        self.latent_noise = torch.Generator().manual_seed(seeds["latent_noise"])
        self.permutation_noise = torch.Generator().manual_seed(seeds["permutation_noise"])
        adam_kwargs = {}
        if fused_adam is None:
            # one fused kernel per update instead of ~10 foreach passes and ~100 small copies: measured 86 vs 105 ms
            # per beta_vae step on 2 CPU cores (benchmarks/train_step.py --explore); CPU support since torch 2.4
            fused_adam = device.type == "cuda" or CPU_FUSED_ADAM
        if fused_adam:
            adam_kwargs["fused"] = True
        else:
            adam_kwargs["foreach"] = True
        self.vae_params = list(self.vae.parameters())
        self.optimizer = torch.optim.Adam(self.vae_params, lr=learning_rate, betas=VAE_ADAM["betas"],
                                          eps=VAE_ADAM["eps"], **adam_kwargs)
        self.discriminator_optimizer = None
        if self.discriminator is not None:
            self.disc_params = list(self.discriminator.parameters())
            self.discriminator_optimizer = torch.optim.Adam(
                self.disc_params, lr=discriminator_learning_rate, betas=DISCRIMINATOR_ADAM["betas"],
                eps=DISCRIMINATOR_ADAM["eps"], **adam_kwargs)
        self._losses = self._losses_eager
        self.compiled = bool(compile)
        if compile:
            self._losses = torch.compile(self._losses_eager, dynamic=False)

    def to_input(self, batch: torch.Tensor) -> torch.Tensor:
        """NHWC batch -> NCHW view (channels_last storage when enabled) on the device."""
        x = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        return x if self.channels_last else x.contiguous()

    def noise(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        eps = torch.randn((n, NUM_LATENT), generator=self.latent_noise).to(self.device, non_blocking=True)
        perm = None
        if self.discriminator is not None:
            perm = torch.rand((n, NUM_LATENT), generator=self.permutation_noise).to(self.device, non_blocking=True)
        return eps, perm

    def _losses_eager(self, x, eps, perm, t):
        mean, logvar = self.vae.encoder(x)
        z = sample_latent(mean, logvar, eps)
        logits = self.vae.decoder(z)
        disc_logits = self.discriminator(z) if self.discriminator is not None else None
        losses = objectives.vae_losses(self.method, targets=x, logits=logits, mean=mean, logvar=logvar, z=z,
                                       step=t, hparams=self.hparams, discriminator_logits=disc_logits)
        if self.discriminator is not None:
            # the discriminator sees the same q(z) sample (its logits are shared with the TC term) and a
            # dimension-wise permuted copy; z is detached there: this loss must not reach the VAE
            logits_perm = self.discriminator(permute_dims(z.detach(), perm))
            losses["discriminator_loss"] = objectives.discriminator_loss(disc_logits, logits_perm)
        return losses

    def losses(self, batch: torch.Tensor, t) -> dict[str, torch.Tensor]:
        """Losses of one batch (with graph), noise drawn from the run's generators."""
        x = self.to_input(batch)
        eps, perm = self.noise(x.shape[0])
        # a compiled graph takes the step as a tensor (a Python float would be baked in and recompile every step)
        step = torch.tensor(float(t), device=self.device) if self.compiled else float(t)
        return self._losses(x, eps, perm, step)

    def step(self, batch: torch.Tensor, t: int) -> dict[str, torch.Tensor]:
        losses = self.losses(batch, t)
        if self.discriminator is None:
            self.optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            self.optimizer.step()
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.discriminator_optimizer.zero_grad(set_to_none=True)
            # each optimiser gets the gradient of its own loss only (the reference's separate var_lists)
            torch.autograd.backward(losses["loss"], inputs=self.vae_params, retain_graph=True)
            torch.autograd.backward(losses["discriminator_loss"], inputs=self.disc_params)
            self.optimizer.step()
            self.discriminator_optimizer.step()
        return {k: v.detach() for k, v in losses.items()}

    def state_dict(self) -> dict:
        return {
            "vae": self.vae.state_dict(), "optimizer": self.optimizer.state_dict(),
            "discriminator": None if self.discriminator is None else self.discriminator.state_dict(),
            "discriminator_optimizer": (None if self.discriminator_optimizer is None
                                        else self.discriminator_optimizer.state_dict()),
            "latent_noise": self.latent_noise.get_state(), "permutation_noise": self.permutation_noise.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.vae.load_state_dict(state["vae"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])
        self.latent_noise.set_state(state["latent_noise"])
        self.permutation_noise.set_state(state["permutation_noise"])


# ----------------------------------------------------------------------------------------------------------------
# train_model


def _check_finite(values: dict[str, torch.Tensor], t_last: int, describe: str) -> None:
    stacked = torch.stack([v.float() for v in values.values()])
    if not bool(torch.isfinite(stacked).all()):
        bad = {k: float(v) for k, v in values.items() if not math.isfinite(float(v))}
        raise TrainingDivergedError(
            f"training diverged: non-finite {', '.join(f'{k}={v}' for k, v in bad.items())} by step {t_last} "
            f"({describe}); lower the learning rate or check the data")


def evaluate_losses(trainer: Trainer, dataset, num_samples: int, random_state: np.random.RandomState, t: int,
                    batch_size: int = 64) -> dict[str, float]:
    """Sample-weighted mean of each loss over ``num_samples`` fresh observations, in inference mode, at step ``t``."""
    sums = {k: 0.0 for k in LOSS_KEYS}
    done = 0
    with torch.inference_mode():
        while done < num_samples:
            n = min(batch_size, num_samples - done)
            batch = torch.from_numpy(np.asarray(dataset.sample_observations(n, random_state), np.float32))
            losses = trainer.losses(batch, t)
            for k in LOSS_KEYS:
                sums[k] += float(losses[k]) * n
            done += n
    return {k: s / num_samples for k, s in sums.items()}


def _run_config(method, hparams, seed, batch_size, num_channels, dataset_name, learning_rate,
                discriminator_learning_rate, data_order) -> dict:
    return {"method": method, "hparams": {k: float(v) for k, v in sorted(hparams.items())}, "seed": int(seed),
            "batch_size": int(batch_size), "num_channels": int(num_channels), "dataset": dataset_name,
            "learning_rate": float(learning_rate), "discriminator_learning_rate": float(discriminator_learning_rate),
            "data_order": data_order}


def train_model(dataset, method: str, hparams: dict, seed: int, steps: int, batch_size: int = 64, device=None,
                checkpoint_dir=None, options: TrainingOptions | Mapping[str, Any] | None = None, *,
                progress: bool | None = None, num_threads: int | None = None, num_channels: int | None = None,
                on_step: Callable[[int, dict], None] | None = None, **option_overrides) -> TrainedModel:
    """Train ``method`` with ``hparams`` on ``dataset`` for ``steps`` updates of ``batch_size`` fresh samples.

    Parameters
    ----------
    dataset: vocabulary name (loaded with ``training.data.get_dataset``) or an object with the dataset interface.
    method, hparams: a method of ``training.vocabulary.METHODS`` and its hyperparameter by vocabulary name, e.g.
        ``{"beta": 4.0}``; annealed_vae also accepts ``gamma`` (1000) and ``iteration_threshold`` (100000).
    seed: drives weight init, the data stream and the sampling noise.
    steps: number of updates (> 0). batch_size: examples per update (the study: 64).
    device: ``"cpu"``, ``"cuda"``, a torch.device, or None (CUDA when available).
    checkpoint_dir: folder for ``checkpoint.pt``, written every ``options.checkpoint_every`` steps and at the end; a
        matching checkpoint found there is resumed from (one from another run raises ValueError).
    options: a :class:`training.engine.options.TrainingOptions` (or a mapping of its fields); keyword arguments
        named after its fields override it (e.g. ``num_eval_samples=0``). This engine trains in fp32 only.
    progress: tqdm bar with loss and steps/s (default: when stderr is a terminal).
    num_threads: torch intra-op threads while this call runs (restored afterwards; None leaves the setting alone).
    num_channels: the architecture's input channels; must equal the dataset's (default: the dataset's).
    on_step: called as ``on_step(t, losses)`` after each update (losses as detached 0-d tensors).

    Raises ValueError on bad input and :class:`TrainingDivergedError` when the loss becomes NaN or infinite.
    """
    opts = TrainingOptions.of(options, **option_overrides)
    if opts.precision != "fp32":
        raise ValueError(f"train_model trains in fp32; precision {opts.precision!r} trains through train_packed")
    for name in ("impl", "device_data", "workers"):
        if getattr(opts, name) is not None:
            raise ValueError(f"{name} is an option of train_packed, not of train_model")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    objectives.resolve_hparams(method, hparams)
    for name, value, minimum in (("steps", steps, 1), ("batch_size", batch_size, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 1):
        raise ValueError(f"num_threads must be an integer >= 1, got {num_threads!r}")
    dataset_obj, dataset_name = resolve_dataset(dataset)
    channels = dataset_channels(dataset_obj)
    if num_channels is not None and int(num_channels) != channels:
        raise ValueError(f"architecture built for {num_channels} channel(s) but the dataset's observations have "
                         f"{channels}")
    device = resolve_device(device)
    if opts.nan_check_every is None:
        opts = replace(opts, nan_check_every=1 if device.type == "cpu" else 50)
    if progress is None:
        progress = sys.stderr.isatty()
    run = RunSpec(method, {k: float(v) for k, v in hparams.items()}, int(seed), int(steps), int(batch_size),
                  channels, dataset_name)
    threads_before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return _train(run, dataset_obj, device, checkpoint_dir, opts, bool(progress), on_step)
    finally:
        torch.set_num_threads(threads_before)


@dataclass(frozen=True)
class RunSpec:
    """What identifies one run inside the engine: method, hyperparameters, seed, steps, batch size, the
    architecture's channels and the dataset's vocabulary name (None for an unnamed dataset object)."""
    method: str
    hparams: dict
    seed: int
    steps: int
    batch_size: int
    channels: int
    dataset_name: str | None

    def describe(self) -> str:
        return f"{self.method}, {', '.join(f'{k}={v:g}' for k, v in self.hparams.items())}, seed {self.seed}"


def _train(run: RunSpec, dataset_obj, device: torch.device, checkpoint_dir, opts: TrainingOptions, progress: bool,
           on_step) -> TrainedModel:
    method, hparams, seed, steps, batch_size = run.method, run.hparams, run.seed, run.steps, run.batch_size
    describe = run.describe()
    trainer = Trainer(method, hparams, seed, run.channels, device, learning_rate=opts.learning_rate,
                      discriminator_learning_rate=opts.discriminator_learning_rate,
                      channels_last=opts.channels_last, fused_adam=opts.fused_adam, compile=opts.compile)
    config = _run_config(method, hparams, seed, batch_size, run.channels, run.dataset_name, opts.learning_rate,
                         opts.discriminator_learning_rate, opts.data_order)
    data_state = _random_state_to_dict(np.random.RandomState(int(seed)))
    start_step, elapsed = 0, 0.0
    checkpoint_path = None
    if checkpoint_dir is not None:
        checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_FILE
        if checkpoint_path.exists():
            start_step, elapsed, data_state = _load_checkpoint(checkpoint_path, config, trainer, steps)

    stream = BatchStream(dataset_obj, batch_size, _random_state_from_dict(data_state), prefetch=opts.prefetch,
                         pin_memory=device.type == "cuda", sampler=DATA_ORDERS[opts.data_order])
    bar = None
    if progress and start_step < steps:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, initial=start_step, desc=f"{method} seed {seed}", unit="step", leave=False)
    pending: list[dict] = []
    losses = None
    t0 = time.perf_counter()
    try:
        for t in range(start_step, steps):
            batch, data_state = stream.next()
            losses = trainer.step(batch, t)
            pending.append(losses)
            done = t + 1
            checkpoint_due = checkpoint_path is not None and done % opts.checkpoint_every == 0
            if done % opts.nan_check_every == 0 or done == steps or checkpoint_due:
                _check_finite({k: torch.stack([p[k] for p in pending]).sum() for k in pending[0]}, t, describe)
                pending.clear()
            if on_step is not None:
                on_step(t, losses)
            if checkpoint_path is not None and (done % opts.checkpoint_every == 0 or done == steps):
                _save_checkpoint(checkpoint_path, config, trainer, done, elapsed + time.perf_counter() - t0,
                                 data_state)
            if bar is not None:
                bar.update(1)
                if done % 25 == 0 or done == steps:
                    bar.set_postfix(loss=f"{float(losses['loss']):.2f}", refresh=False)
    finally:
        stream.close()
        if bar is not None:
            bar.close()
    train_seconds = elapsed + time.perf_counter() - t0

    results: dict[str, float] = {}
    num_eval_samples = opts.num_eval_samples
    if num_eval_samples > 0:
        eval_rs = np.random.RandomState(derive_seeds(seed)["eval_data"] % (2 ** 32))
        results.update(evaluate_losses(trainer, dataset_obj, num_eval_samples, eval_rs, steps, batch_size))
        bad = [k for k, v in results.items() if not math.isfinite(v)]
        if bad:
            raise TrainingDivergedError(f"training diverged: non-finite {', '.join(bad)} in the final evaluation "
                                        f"({describe})")
    results["train_seconds"] = float(train_seconds)
    results["num_eval_samples"] = float(num_eval_samples)
    results["global_step"] = float(steps)
    vae = trainer.vae.to(memory_format=torch.contiguous_format)
    vae.decoder.memory_format = torch.contiguous_format
    return TrainedModel(method=method, hparams=hparams, seed=int(seed), steps=int(steps), batch_size=int(batch_size),
                        vae=vae, discriminator=trainer.discriminator, train_results=results,
                        dataset_name=run.dataset_name, dataset=dataset_obj, data_order=opts.data_order)


def _save_checkpoint(path: Path, config: dict, trainer: Trainer, step: int, elapsed: float, data_state: dict) -> None:
    state = {"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, "config": config, "step": int(step),
             "elapsed": float(elapsed), "data_state": data_state, "trainer": trainer.state_dict()}
    _atomic_torch_save(state, path)


def _load_checkpoint(path: Path, config: dict, trainer: Trainer, steps: int) -> tuple[int, float, dict]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable checkpoint ({exc.__class__.__name__}); delete it to start over") \
            from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a dstudy checkpoint; delete it or choose another checkpoint_dir")
    if state["config"] != config:
        diff = sorted(k for k in set(config) | set(state["config"]) if config.get(k) != state["config"].get(k))
        raise ValueError(f"the checkpoint in {path.parent} belongs to another run (differs in {', '.join(diff)}); "
                         f"use a fresh checkpoint_dir")
    if state["step"] > steps:
        raise ValueError(f"the checkpoint in {path.parent} is at step {state['step']}, beyond steps={steps}")
    trainer.load_state_dict(state["trainer"])
    return int(state["step"]), float(state["elapsed"]), state["data_state"]
