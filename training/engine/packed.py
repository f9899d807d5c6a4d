"""Packed multi-model training: K runs of one method on one dataset trained as ONE stacked computation.

:func:`train_packed` trains K runs (each a ``(hparams, seed)`` pair; hyperparameter values may differ within a pack)
in lock-step. :class:`StackedRuns` holds the K models' parameters stacked along a leading run axis
(``torch.func.stack_module_state``), their hyperparameters and their Adam states; :class:`PackedModels` adds the
forward and backward passes and the updates. How one step runs the K networks (``impl``):

* ``"loop"`` (the CPU default): each run's forward and backward pass in turn through the single-model kernels (its
  activations freed before the next run's forward pass), its gradients written into its rows of the stacked
  gradients; one stacked Adam update for the pack. On a CPU the pack is, by default, dealt into one sub-pack per
  intra-op thread (``workers``), each sub-pack trained by its own thread on one intra-op thread;
* ``"gemm"`` (the CUDA default): explicit packed layers (:mod:`training.kernels.packed_layers`) on channels-last
  activations, each convolution one batched matrix product over the pack plus a shifted sum or a window gather; the
  convolution weights are kept as the matrices those products consume;
* ``"triton"`` (CUDA; the ``triton`` extra): the same channels-last layers as fused implicit-GEMM Triton kernels
  (:mod:`training.kernels.triton_layers`), each layer running gemm's kernels where the measured table says so.
  Without CUDA it runs in Triton's interpreter (``TRITON_INTERPRET=1``), for tests only.

Other forward passes plug in as a subclass of :class:`PackedModels` with its own ``IMPLS``, passed to
:func:`train_packed` as ``models``; the comparison baselines of ``benchmarks/packed_baselines.py`` do.

Every run is exactly the run :func:`training.engine.train.train_model` would train alone (same seed conventions;
each run is set up by the single-model engine's own :class:`training.engine.train.Trainer`):

* weight init from ``derive_seeds(seed)["init"]`` (the VAE, then the FactorVAE discriminator);
* its own data stream ``RandomState(seed)`` drawn in the same ``data_order`` (host path), and its own latent-noise
  and permutation-noise generators;
* its own Adam state (element-wise, so a stacked Adam is K independent Adams), its own FactorVAE discriminator and
  discriminator Adam, and its own AnnealedVAE schedule (hyperparameters that differ across the pack are passed to
  the objective as per-run tensors);
* the same final train_results pass (``num_eval_samples`` fresh samples from ``derive_seeds(seed)["eval_data"]``, the
  noise generators continuing where training left them).

So on the CPU in fp32 each packed run's weights and train_results equal the run trained alone, up to floating-point
rounding (the packed kernels sum in another order); ``tests/test_packed_equivalence.py`` checks this for all six
methods and every impl. A run's numbers do not depend on the other runs of its pack.

Differences from a run trained alone, by design:

* ``train_seconds`` is the pack's training wall time divided by K (the amortised cost of the run); the results also
  carry ``pack_size``.
* On CUDA, by default the training batches are drawn on the device (:mod:`training.engine.device_data`: pre-rendered
  uint8 images in GPU memory, index gathers, variant transforms with a per-run ``torch.Generator``). That data stream
  is seeded from the run's seed too, but it is another stream than the numpy one (``device_data=False`` keeps the
  numpy stream). The final train_results pass always uses the numpy stream.
* ``precision="bf16"`` runs the networks under bf16 autocast (CUDA, or CPU autocast, which is meant for measuring
  the effect of bf16 without a GPU, e.g. ``benchmarks/precision.py``); ``"tf32"`` allows TF32 matrix products (CUDA
  only). Both change results beyond rounding; the default ``"fp32"`` does not.

A non-finite loss stops that run only: its slot in the returned list is a
:class:`training.engine.train.TrainingDivergedError` and the pack goes on without it (its rows are removed from the
stacked parameters and optimiser states). Invalid hyperparameters of one run likewise give that slot a
``ValueError``.
"""
from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F

from training.engine.options import PACKED_IMPLS, TrainingOptions
from training.kernels import packed_layers as layers
from training.kernels.cpu import use_fast_cpu_layers
from training.models import objectives
from training.models.architecture import (LEAKY_SLOPE, NUM_LATENT, Discriminator, GaussianVAE, permute_dims,
                                          sample_latent)
from training.engine.train import (CPU_FUSED_ADAM, DATA_ORDERS, DISCRIMINATOR_ADAM, LOSS_KEYS, VAE_ADAM, Prefetcher,
                                   Trainer, TrainedModel, TrainingDivergedError, dataset_channels, derive_seeds,
                                   resolve_dataset, resolve_device)
from training.vocabulary import METHODS

IMPLS = PACKED_IMPLS   # "loop", "gemm", "triton"
MATRIX_IMPLS = ("gemm", "triton")   # convolution weights stored as the matrices their kernels consume
ENCODER_CONVS = ("conv1", "conv2", "conv3", "conv4")        # stride 2, ReLU; padding 1, 1, 0, 0
DECODER_CONVS = ("deconv1", "deconv2", "deconv3", "deconv4")  # transposed, stride 2, padding 1; ReLU but the last


# ----------------------------------------------------------------------------------------------------------------
# the stacked runs


class StackedRuns:
    """K runs' parameters as stacked leaf tensors ``(K, ...)``, their hyperparameters and their Adam optimisers.

    ``trainers`` are :class:`training.engine.train.Trainer` objects (one per run, already initialised as a single run
    would be); their networks' parameters are copied into the stacked tensors. ``matrix_layers`` (name ->
    :class:`MatrixLayer`) names the convolution weights kept as the matrices of
    :func:`training.kernels.packed_layers.gemm_matrix`; the stacked parameters and Adam's states live in that layout
    (Adam is elementwise: the same updates in any layout). :meth:`keep` drops runs, :meth:`write_back` copies a run's
    rows back into its trainer's networks.
    """

    def __init__(self, trainers: Sequence[Trainer], device: torch.device, learning_rate: float,
                 discriminator_learning_rate: float, fused_adam: bool | None = None,
                 matrix_layers: Mapping[str, MatrixLayer] | None = None):
        self.method = trainers[0].method
        self.device = device
        self.gemm_layers = dict(matrix_layers or {})
        vae_params, _ = stack_module_state([t.vae for t in trainers])
        for name, layer in self.gemm_layers.items():
            vae_params[name] = layers.gemm_matrix(layer.kind, vae_params[name], layer.form).contiguous()
        self.vae_params = {k: v.detach().clone().to(device).requires_grad_(True) for k, v in vae_params.items()}
        self.disc_params: dict[str, torch.Tensor] = {}
        if trainers[0].discriminator is not None:
            disc_params, _ = stack_module_state([t.discriminator for t in trainers])
            self.disc_params = {k: v.detach().clone().to(device).requires_grad_(True) for k, v in disc_params.items()}
        # hyperparameters: equal across the pack -> plain floats (exactly what a single run uses); else per-run tensors
        resolved = [t.hparams for t in trainers]
        self.constant_hparams: dict[str, float] = {}
        self.varying_hparams: dict[str, torch.Tensor] = {}
        for key in resolved[0]:
            values = [float(h[key]) for h in resolved]
            if all(v == values[0] for v in values):
                self.constant_hparams[key] = values[0]
            else:
                self.varying_hparams[key] = torch.tensor(values, dtype=torch.float32, device=device)
        if fused_adam is None:
            fused_adam = device.type == "cuda" or CPU_FUSED_ADAM
        self._adam_kwargs = {"fused": True} if fused_adam else {"foreach": True}
        self.learning_rate = float(learning_rate)
        self.discriminator_learning_rate = float(discriminator_learning_rate)
        self.optimizer = torch.optim.Adam(list(self.vae_params.values()), lr=self.learning_rate,
                                          betas=VAE_ADAM["betas"], eps=VAE_ADAM["eps"], **self._adam_kwargs)
        self.discriminator_optimizer = None
        if self.disc_params:
            self.discriminator_optimizer = torch.optim.Adam(
                list(self.disc_params.values()), lr=self.discriminator_learning_rate,
                betas=DISCRIMINATOR_ADAM["betas"], eps=DISCRIMINATOR_ADAM["eps"], **self._adam_kwargs)

    @property
    def size(self) -> int:
        return next(iter(self.vae_params.values())).shape[0]

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only the runs at ``rows`` (e.g. after a run diverged), with their parameters and optimiser states."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.device)
        self.vae_params, self.optimizer = self._select(self.vae_params, self.optimizer, index,
                                                       self.learning_rate, VAE_ADAM)
        if self.discriminator_optimizer is not None:
            self.disc_params, self.discriminator_optimizer = self._select(
                self.disc_params, self.discriminator_optimizer, index, self.discriminator_learning_rate,
                DISCRIMINATOR_ADAM)
        self.varying_hparams = {k: v[index] for k, v in self.varying_hparams.items()}

    def _select(self, params: dict, optimizer, index, lr, adam):
        new = {k: v.detach()[index].clone().requires_grad_(True) for k, v in params.items()}
        new_opt = torch.optim.Adam(list(new.values()), lr=lr, betas=adam["betas"], eps=adam["eps"],
                                   **self._adam_kwargs)
        for name, old in params.items():
            state = optimizer.state.get(old)
            if not state:
                continue
            new_opt.state[new[name]] = {
                key: (value.clone() if key == "step" else value[index].clone()) if isinstance(value, torch.Tensor)
                else value for key, value in state.items()}
        return new, new_opt

    def write_back(self, row: int, trainer: Trainer) -> None:
        """Copy run ``row``'s parameters into ``trainer``'s networks."""
        with torch.no_grad():
            for name, p in trainer.vae.named_parameters():
                value = self.vae_params[name][row:row + 1]
                if name in self.gemm_layers:
                    layer = self.gemm_layers[name]
                    value = layers.gemm_weight(layer.kind, value, (1,) + layer.shape, layer.form)
                p.copy_(value[0])
            if trainer.discriminator is not None:
                for name, p in trainer.discriminator.named_parameters():
                    p.copy_(self.disc_params[name][row])


# ----------------------------------------------------------------------------------------------------------------
# the stacked computation


class PackedModels(StackedRuns):
    """K models of one method (:class:`StackedRuns`) and how a step runs them: the forward passes of ``impl``, the
    objectives, the backward passes and the updates.

    The forward pass of the K networks is :meth:`networks`; with explicit packed layers, :meth:`stacked_networks`
    around :meth:`conv_encoder` and :meth:`conv_decoder`. A subclass may replace these for the impls of its own
    :attr:`IMPLS` (and :meth:`default_impl`).
    """

    #: the forward passes (``impl``) this class runs
    IMPLS: tuple[str, ...] = IMPLS

    def __init__(self, trainers: Sequence[Trainer], device: torch.device, learning_rate: float,
                 discriminator_learning_rate: float, fused_adam: bool | None = None, precision: str = "fp32",
                 impl: str | None = None, compile: bool = False):
        if not trainers:
            raise ValueError("a pack needs at least one run")
        self.impl = self._resolve_impl(impl, device)
        # impls "gemm" and "triton" keep the convolution weights as the matrices their kernels consume (write_back
        # converts a run's rows back)
        matrix_layers = _gemm_layers(trainers[0].vae, self.impl) if self.impl in MATRIX_IMPLS else {}
        super().__init__(trainers, device, learning_rate, discriminator_learning_rate, fused_adam, matrix_layers)
        self.precision = precision
        self.num_channels = trainers[0].vae.num_channels
        # parameter-free "skeletons" the functional calls run through
        self._vae = GaussianVAE(self.num_channels, NUM_LATENT).to("meta")
        self._disc = Discriminator(NUM_LATENT).to("meta") if self.disc_params else None
        loop_on_cpu = self.impl == "loop" and device.type == "cpu"
        if loop_on_cpu:
            # oneDNN's preferred layout, as the single-model trainer uses it (a speed choice only)
            self._vae.decoder.memory_format = torch.channels_last
        # the phase-wise output layer (a custom autograd function) has no vmap rule: only the loop on the CPU runs
        # it (a subclass may run these modules under vmap)
        use_fast_cpu_layers(self._vae, output_by_phases=loop_on_cpu)
        # torch.compile of the forward pass and objectives (its backward is compiled with it): Inductor fuses the
        # copies, shifted sums, biases and activations around the matrix products
        self._compiled_losses = torch.compile(self._losses, dynamic=False) if compile else None
        # impl "loop": one run's forward and backward pass after the other (see _step_per_run)
        self.per_run_backward = not compile
        self._step_tensor = torch.zeros((), device=device)
        self._vmapped_objectives = vmap(self._objectives_one, in_dims=(0,) * 7 + (None, 0), randomness="error")

    @classmethod
    def default_impl(cls, device: torch.device) -> str:
        """The impl when none is given: "gemm" on CUDA, else "loop"."""
        return "gemm" if device.type == "cuda" else "loop"

    def _resolve_impl(self, impl: str | None, device: torch.device) -> str:
        impl = self.default_impl(device) if impl is None else impl
        if impl not in self.IMPLS:
            raise ValueError(f"impl must be one of {', '.join(self.IMPLS)}, got {impl!r}")
        if impl == "triton":
            _check_triton(device)
        return impl

    # -- the networks of the K runs ---------------------------------------------------------------------------------
    def run_networks(self, vae_params, disc_params, x, eps, perm):
        """One run's forward pass on its batch ``x`` (N, C, 64, 64) through the shared architecture's modules, as
        ``Trainer._losses_eager`` computes it: (mean, logvar, z, logits, discriminator logits on z, discriminator
        logits on the permuted z)."""
        enc = {k[len("encoder."):]: v for k, v in vae_params.items() if k.startswith("encoder.")}
        dec = {k[len("decoder."):]: v for k, v in vae_params.items() if k.startswith("decoder.")}
        with self._autocast():
            mean, logvar = functional_call(self._vae.encoder, enc, (x,))
        mean, logvar = mean.float(), logvar.float()
        z = sample_latent(mean, logvar, eps)
        with self._autocast():
            logits = functional_call(self._vae.decoder, dec, (z,))
        logits = logits.float()
        if self._disc is None:
            return mean, logvar, z, logits, logits, logits   # placeholders: vmap needs tensors
        disc_logits = functional_call(self._disc, disc_params, (z,)).float()
        # z is detached for the permuted copy: the discriminator loss must not reach the VAE
        logits_perm = functional_call(self._disc, disc_params, (permute_dims(z.detach(), perm),)).float()
        return mean, logvar, z, logits, disc_logits, logits_perm

    def networks(self, x, eps, perm):
        """All runs' forward passes, stacked (K, ...): impl "loop" runs :meth:`run_networks` on each run's
        parameter slices (each run's convolutions through the backend's fastest single-model kernels, e.g. oneDNN
        on CPU); the others run :meth:`stacked_networks`."""
        if self.impl != "loop":
            return self.stacked_networks(x, eps, perm)
        size = self.size
        vae_rows = {k: v.unbind(0) for k, v in self.vae_params.items()}
        disc_rows = {k: v.unbind(0) for k, v in self.disc_params.items()}
        fmt = self._vae.decoder.memory_format
        outs = [self.run_networks({k: v[r] for k, v in vae_rows.items()}, {k: v[r] for k, v in disc_rows.items()},
                                  x[r].contiguous(memory_format=fmt), eps[r], perm[r]) for r in range(size)]
        return tuple(torch.stack(parts) for parts in zip(*outs))

    def stacked_networks(self, x, eps, perm):
        """All runs' forward passes with explicit packed layers: the convolutions of :meth:`conv_encoder` /
        :meth:`conv_decoder`, the dense layers as ``baddbmm``. The same functions as the single-model networks
        (same weight layouts and flatten order)."""
        p = self.vae_params
        k, n = x.shape[:2]
        with self._autocast():
            h = torch.relu(layers.packed_linear(self.conv_encoder(x), p["encoder.dense.weight"],
                                                p["encoder.dense.bias"]))
            mean = layers.packed_linear(h, p["encoder.mean.weight"], p["encoder.mean.bias"])
            logvar = layers.packed_linear(h, p["encoder.logvar.weight"], p["encoder.logvar.bias"])
        mean, logvar = mean.float(), logvar.float()
        z = sample_latent(mean, logvar, eps)
        with self._autocast():
            h = torch.relu(layers.packed_linear(z, p["decoder.dense1.weight"], p["decoder.dense1.bias"]))
            h = torch.relu(layers.packed_linear(h, p["decoder.dense2.weight"], p["decoder.dense2.bias"]))
            logits = self.conv_decoder(h.reshape(k, n, 64, 4, 4))
        logits = logits.float()
        if self._disc is None:
            return mean, logvar, z, logits, logits, logits
        disc_logits = self._discriminator_bmm(z)
        logits_perm = self._discriminator_bmm(vmap(permute_dims)(z.detach(), perm))
        return mean, logvar, z, logits, disc_logits, logits_perm

    def conv_params(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The stacked (weight, bias) of layer ``name``, e.g. ``"encoder.conv1"``."""
        return self.vae_params[f"{name}.weight"], self.vae_params[f"{name}.bias"]

    def conv_encoder(self, x):
        """The encoder's four ReLU convolutions: images x (K, N, C, 64, 64) -> features (K, N, 1024) flattened in
        the single model's (channel, row, column) order. Here: :meth:`_matrix_layer` on channels-last
        (K, N, H, W, C) activations."""
        k, n = x.shape[:2]
        h = x.permute(0, 1, 3, 4, 2)
        if self.precision == "bf16":   # under autocast the products would cast it anyway: cast before copying
            h = h.to(torch.bfloat16)
        for name in ENCODER_CONVS:
            h = self._matrix_layer(f"encoder.{name}", h, relu=True)
        return h.permute(0, 1, 4, 2, 3).reshape(k, n, -1)

    def conv_decoder(self, h):
        """The decoder's transposed convolutions: features h (K, N, 64, 4, 4) -> logits (K, N, C, 64, 64)."""
        h = h.permute(0, 1, 3, 4, 2)
        for name in DECODER_CONVS:
            h = self._matrix_layer(f"decoder.{name}", h, relu=name != "deconv4")
        return h.permute(0, 1, 4, 2, 3)

    def _matrix_layer(self, name: str, h, relu: bool):
        """One convolution of impl "gemm" or "triton" on channels-last h (K, N, H, W, C): the layer's own impl
        (:func:`_gemm_layers`) -> (K, N, HO, WO, O), ReLU'd if ``relu``."""
        matrix, bias = self.conv_params(name)
        layer = self.gemm_layers[f"{name}.weight"]
        if layer.impl == "triton":   # bias and ReLU fused into the kernels
            from training.kernels import triton_layers

            return triton_layers.packed_conv(h, matrix, bias, layer.kind, relu=relu, precision=self.precision)
        if layer.kind == "conv4x4_s2":
            out = layers.conv4x4_s2(h, matrix, bias, layer.form)
        elif layer.kind == "conv2x2_s2":
            out = layers.conv2x2_s2(h, matrix, bias)
        else:
            out = layers.conv_transpose4x4_s2(h, matrix, bias, layer.form)
        return torch.relu(out) if relu else out

    def _discriminator_bmm(self, z):
        d = self.disc_params
        h = z
        hidden = sorted({k.split(".")[1] for k in d if k.startswith("hidden.")}, key=int)
        for i in hidden:
            h = F.leaky_relu(layers.packed_linear(h, d[f"hidden.{i}.weight"], d[f"hidden.{i}.bias"]), LEAKY_SLOPE)
        return layers.packed_linear(h, d["logits.weight"], d["logits.bias"])

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- losses and updates ---------------------------------------------------------------------------------------
    def _objectives_one(self, x, mean, logvar, z, logits, disc_logits, logits_perm, step, varying):
        """One run's losses from its forward pass (``objectives.vae_losses`` + the discriminator loss)."""
        hparams = dict(self.constant_hparams)
        hparams.update(varying)
        losses = objectives.vae_losses(self.method, targets=x, logits=logits, mean=mean, logvar=logvar, z=z,
                                       step=step, hparams=hparams,
                                       discriminator_logits=disc_logits if self._disc is not None else None)
        if self._disc is not None:
            losses["discriminator_loss"] = objectives.discriminator_loss(disc_logits, logits_perm)
        return losses

    def losses(self, x: torch.Tensor, eps: torch.Tensor, perm: torch.Tensor | None, step) -> dict[str, torch.Tensor]:
        """Per-run losses, each (K,), of batches ``x`` (K, N, C, 64, 64) with noise ``eps``/``perm`` (K, N, L)."""
        if perm is None:
            perm = eps  # unused without a discriminator; vmap needs a tensor in its place
        if self._compiled_losses is not None and torch.is_grad_enabled():   # training steps (not the evaluation)
            # the step as a device tensor, so that a new step is no new graph
            self._step_tensor.fill_(float(step))
            return self._compiled_losses(x, eps, perm, self._step_tensor, self.varying_hparams)
        return self._losses(x, eps, perm, step, self.varying_hparams)

    def _losses(self, x, eps, perm, step, varying):
        outs = self.networks(x, eps, perm)
        return self._vmapped_objectives(x, *outs, step, varying)

    def step(self, x: torch.Tensor, eps: torch.Tensor, perm: torch.Tensor | None, step: int) -> dict[str, torch.Tensor]:
        """One update of every run (VAE and, for factor_vae, discriminator); returns the detached (K,) losses."""
        if self.impl == "loop" and self.per_run_backward:
            return self._step_per_run(x, eps, perm, step)
        losses = self.losses(x, eps, perm, float(step))
        vae_list = list(self.vae_params.values())
        self.optimizer.zero_grad(set_to_none=True)
        if self.discriminator_optimizer is None:
            losses["loss"].sum().backward()
            self.optimizer.step()
        else:
            disc_list = list(self.disc_params.values())
            self.discriminator_optimizer.zero_grad(set_to_none=True)
            # runs are independent, so the gradient of the sum is each run's own gradient in its rows
            torch.autograd.backward(losses["loss"].sum(), inputs=vae_list, retain_graph=True)
            torch.autograd.backward(losses["discriminator_loss"].sum(), inputs=disc_list)
            self.optimizer.step()
            self.discriminator_optimizer.step()
        return {k: v.detach() for k, v in losses.items()}

    def _step_per_run(self, x, eps, perm, step) -> dict[str, torch.Tensor]:
        """:meth:`step` of the loop: each run's forward and backward pass in turn (its activations are freed before
        the next run's forward pass: a smaller working set than one graph of all runs), its gradients written into
        its rows of the stacked gradients; then the stacked Adam updates."""
        groups = [(self.vae_params, "loss")] + ([(self.disc_params, "discriminator_loss")] if self.disc_params else [])
        for params, _ in groups:
            for p in params.values():
                if p.grad is None:
                    p.grad = torch.empty_like(p)   # every row is overwritten below
        fmt = self._vae.decoder.memory_format
        parts = []
        for r in range(self.size):
            rows = [{k: v[r] for k, v in params.items()} for params, _ in groups]
            outs = self.run_networks(rows[0], rows[1] if self.disc_params else {},
                                     x[r].contiguous(memory_format=fmt), eps[r], (eps if perm is None else perm)[r])
            losses = self._objectives_one(x[r], *outs, float(step), {k: v[r] for k, v in self.varying_hparams.items()})
            for g, ((params, key), row) in enumerate(zip(groups, rows)):
                grads = torch.autograd.grad(losses[key], list(row.values()), retain_graph=g + 1 < len(groups))
                for name, grad in zip(row, grads):
                    params[name].grad[r].copy_(grad)
            parts.append({k: v.detach() for k, v in losses.items()})
        self.optimizer.step()
        if self.discriminator_optimizer is not None:
            self.discriminator_optimizer.step()
        return {k: torch.stack([part[k] for part in parts]) for k in parts[0]}


def _check_triton(device: torch.device) -> None:
    """impl "triton" needs the triton package, and CUDA (or Triton's interpreter, ``TRITON_INTERPRET=1``)."""
    import os

    try:
        import triton  # noqa: F401
    except ImportError:
        raise ValueError("impl 'triton' needs the triton package (it comes with PyTorch's CUDA builds)") from None
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(f"impl 'triton' runs on CUDA, not on {device.type} (or, slowly, in Triton's interpreter: "
                         f"TRITON_INTERPRET=1)")


class MatrixLayer(NamedTuple):
    """A convolution whose stacked weights impls "gemm" and "triton" keep as a matrix."""

    kind: str      # packed_layers.GEMM_KINDS
    form: str      # the matrix layout (packed_layers.gemm_matrix)
    shape: tuple   # the single run's weight shape
    impl: str      # the layer's kernels: "gemm" (batched matrix products) or "triton" (fused kernels)


# each convolution of the shared architecture: (name, kind, input height)
_CONVOLUTIONS = [("encoder.conv1", "conv4x4_s2", 64), ("encoder.conv2", "conv4x4_s2", 32),
                 ("encoder.conv3", "conv2x2_s2", 16), ("encoder.conv4", "conv2x2_s2", 8),
                 ("decoder.deconv1", "conv_transpose4x4_s2", 4), ("decoder.deconv2", "conv_transpose4x4_s2", 8),
                 ("decoder.deconv3", "conv_transpose4x4_s2", 16), ("decoder.deconv4", "conv_transpose4x4_s2", 32)]


def _gemm_layers(vae: GaussianVAE, impl: str = "gemm") -> dict[str, MatrixLayer]:
    """The convolution weights of ``vae`` that impls "gemm" and "triton" keep as matrices: name -> MatrixLayer.

    Under impl "triton" a layer runs the fused kernels unless the measured table says the gemm layer is faster
    there (``triton_layers.uses_kernels``); the two give the same values up to rounding."""
    out = {}
    for prefix, kind, height in _CONVOLUTIONS:
        module = vae.get_submodule(prefix)
        c_in, c_out = (module.in_channels, module.out_channels)
        layer_impl = "gemm"
        if impl == "triton":
            from training.kernels import triton_layers

            layer_impl = "triton" if triton_layers.uses_kernels(kind, c_in, c_out, height) else "gemm"
        form = layers.TRITON_FORMS[kind] if layer_impl == "triton" else layers.gemm_form(kind, c_in, c_out)
        out[f"{prefix}.weight"] = MatrixLayer(kind, form, tuple(module.weight.shape), layer_impl)
    return out


# ----------------------------------------------------------------------------------------------------------------
# data


class HostBatches:
    """Each run's numpy data stream ``RandomState(seed)``, drawn as ``train_model`` draws it for ``data_order``
    (``"batched"``: one ``sample_observations(N)`` call per step; ``"reference"``: one call per example).

    ``streams`` maps a run's index to its seed. :meth:`make` returns ``(runs, batch)``: the runs alive when it was
    called and a float32 tensor (len(runs), N, 64, 64, C) holding the next batch of each of their streams. Runs
    removed from :attr:`alive` are no longer advanced.
    """

    def __init__(self, dataset, batch_size: int, seeds: dict[int, int], pin_memory: bool = False,
                 data_order: str = "batched"):
        self.sampler = DATA_ORDERS[data_order]
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.streams = {i: np.random.RandomState(int(s)) for i, s in seeds.items()}
        self.alive = list(self.streams)
        self.pin_memory = pin_memory

    def make(self) -> tuple[list[int], torch.Tensor]:
        alive = list(self.alive)
        batch = torch.from_numpy(np.stack([self.sampler(self.dataset, self.batch_size, self.streams[i])
                                           for i in alive]))
        if self.pin_memory:
            batch = batch.pin_memory()
        return alive, batch


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_runs(method: str, runs) -> list[tuple[dict, int] | ValueError]:
    """Each run as ``(hparams as floats, seed)``, or the ValueError that makes it invalid."""
    if isinstance(runs, (str, bytes, dict)) or not isinstance(runs, Sequence) or len(runs) == 0:
        raise ValueError("runs must be a non-empty list of (hparams, seed) pairs")
    checked: list[tuple[dict, int] | ValueError] = []
    for i, run in enumerate(runs):
        try:
            if not isinstance(run, (tuple, list)) or len(run) != 2:
                raise ValueError(f"run {i} must be a (hparams, seed) pair, got {run!r}")
            hparams, seed = run
            objectives.resolve_hparams(method, hparams)
            seed = _check_int(f"seed of run {i}", seed, 0)
            checked.append(({k: float(v) for k, v in hparams.items()}, seed))
        except ValueError as exc:
            checked.append(exc)
    return checked


# ----------------------------------------------------------------------------------------------------------------
# train_packed


def train_packed(dataset, method: str, runs: Sequence[tuple[dict, int]], steps: int, batch_size: int = 64,
                 device=None, options: TrainingOptions | Mapping[str, Any] | None = None, *,
                 progress: bool | None = None, on_step: Callable[[int, dict], None] | None = None,
                 models: type[PackedModels] | None = None, **option_overrides) -> list[TrainedModel | Exception]:
    """Train the runs ``runs`` = [(hparams, seed), ...] of ``method`` on ``dataset`` as one stacked computation.

    Parameters are those of :func:`training.engine.train.train_model` (``dataset`` a name or a dataset object, ``steps``
    updates of ``batch_size`` fresh samples, ``device`` None = CUDA when available, ``options`` a
    :class:`training.engine.options.TrainingOptions` or a mapping, overridden by keyword arguments named after its
    fields). The options only this engine has:

    precision: ``"fp32"`` (default), ``"tf32"`` (TF32 matrix products, CUDA only) or ``"bf16"`` (bf16 autocast of
        the networks, CUDA or CPU; losses in fp32).
    device_data: draw training batches on the device (:mod:`training.engine.device_data`); default: on CUDA when the
        dataset supports it. Otherwise each run has the numpy stream of ``train_model``. The returned models'
        ``data_order`` is ``options.data_order``, or ``"device"`` for device-drawn batches.
    impl: how the K networks run (see the module docstring): ``"loop"`` (each run's forward and backward pass in
        turn through the single-model kernels, stacked optimiser updates for the pack; default on CPU), ``"gemm"``
        (explicit packed layers, every convolution one batched matrix product; default on CUDA) or ``"triton"``
        (fused kernels, CUDA; the triton extra). Same results up to rounding.
    compile: ``torch.compile`` the pack's forward pass and objectives (and so their backward pass), meant for CUDA
        with ``impl="gemm"`` or ``"triton"``; the first step then takes a minute or more to compile.
    workers: CPU only: the pack is dealt round-robin into this many sub-packs, trained at the same time in as many
        threads, each sub-pack one stacked computation on ONE intra-op thread. Default: torch's intra-op thread
        count, at most K. Per-run results are unchanged up to rounding.
    on_step: called as ``on_step(t, losses)`` with the (K_alive,) loss tensors after each update (with CPU workers:
        once per sub-pack and step, from the sub-pack's thread, one call at a time).
    models: the class of the stacked computation, :class:`PackedModels` (default) or a subclass that runs other
        forward passes; ``impl`` then names one of its ``IMPLS`` (None: its :meth:`~PackedModels.default_impl`).

    Returns one entry per run, in order: its :class:`training.engine.train.TrainedModel`, or the exception that
    stopped it (:class:`training.engine.train.TrainingDivergedError` for a non-finite loss, ``ValueError`` for invalid
    hyperparameters). Raises ValueError for bad arguments that concern the whole pack (method, steps, batch size, device, precision).
    """
    opts = TrainingOptions.of(options, **option_overrides)
    models = PackedModels if models is None else models
    pack = _validate(dataset, method, runs, steps, batch_size, device, opts, models)
    if pack.workers > 1:
        return _train_sub_packs(pack, progress, on_step, models)
    nan_check_every, progress = _loop_settings(pack, progress)
    results: list[TrainedModel | Exception | None] = [c if isinstance(c, Exception) else None for c in pack.checked]
    if not pack.members:
        return results  # type: ignore[return-value]
    trainers = _make_trainers(pack)
    with _matmul_precision(pack.device, opts.precision):
        packed = models([trainers[i] for i in pack.members], pack.device, opts.learning_rate,
                        opts.discriminator_learning_rate, fused_adam=opts.fused_adam, precision=opts.precision,
                        impl=pack.impl, compile=opts.compile)
        alive = list(pack.members)   # run index of each row of the stacked parameters
        train_seconds, used_order = _train_loop(packed, alive, trainers, pack, nan_check_every, progress, on_step,
                                                results)
        evals = _final_losses(packed, alive, trainers, pack)
    _finish(pack, packed, alive, trainers, evals, train_seconds, used_order, results)
    return results  # type: ignore[return-value]


@dataclass
class _Pack:
    """A call of :func:`train_packed` whose arguments have been checked."""

    dataset: Any
    dataset_name: str | None
    channels: int
    method: str
    runs: Sequence[tuple[dict, int]]   # as given
    checked: list                      # each run's (hparams, seed), or the ValueError that makes it invalid
    members: list[int]                 # the indices of the valid runs
    steps: int
    batch_size: int
    device: torch.device
    opts: TrainingOptions
    impl: str                          # opts.impl, or the models' default on this device
    workers: int

    def hparams(self, i: int) -> dict:
        return self.checked[i][0]

    def seed(self, i: int) -> int:
        return self.checked[i][1]

    def describe(self, i: int) -> str:
        return f"{self.method}, {', '.join(f'{k}={v:g}' for k, v in self.hparams(i).items())}, seed {self.seed(i)}"


def _validate(dataset, method: str, runs, steps, batch_size, device, opts: TrainingOptions,
              models: type[PackedModels]) -> _Pack:
    """The checks that concern the whole pack (method, steps, batch size, runs, dataset, device, workers)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    steps = _check_int("steps", steps, 1)
    batch_size = _check_int("batch_size", batch_size, 2)
    checked = _check_runs(method, runs)
    dataset_obj, dataset_name = resolve_dataset(dataset)
    channels = dataset_channels(dataset_obj)
    device = resolve_device(device)
    members = [i for i, c in enumerate(checked) if not isinstance(c, Exception)]
    impl = opts.impl if opts.impl is not None else models.default_impl(device)
    workers = opts.workers
    if workers is None:   # (Triton's interpreter, impl "triton" without CUDA, is not thread-safe)
        workers = torch.get_num_threads() if device.type == "cpu" and impl != "triton" else 1
    workers = min(_check_int("workers", workers, 1), max(1, len(members)))
    if workers > 1 and (device.type != "cpu" or impl == "triton"):
        raise ValueError(f"workers > 1 splits a pack over CPU cores; on {device} with impl {impl!r} use workers=1")
    return _Pack(dataset_obj, dataset_name, channels, method, runs, checked, members, steps, batch_size, device,
                 opts, impl, workers)


def _loop_settings(pack: _Pack, progress: bool | None) -> tuple[int, bool]:
    """(nan_check_every, progress) of one stacked computation, checked against the device."""
    if pack.opts.precision == "tf32" and pack.device.type != "cuda":
        raise ValueError(f"precision 'tf32' needs a CUDA device (got {pack.device})")
    nan_check_every = pack.opts.nan_check_every
    if nan_check_every is None:
        nan_check_every = 1 if pack.device.type == "cpu" else 50
    nan_check_every = _check_int("nan_check_every", nan_check_every, 1)
    return nan_check_every, sys.stderr.isatty() if progress is None else progress


def _make_trainers(pack: _Pack) -> dict[int, Trainer]:
    """Each valid run set up by the single-model engine, as it would be trained alone: run index -> Trainer."""
    return {i: Trainer(pack.method, pack.hparams(i), pack.seed(i), pack.channels, pack.device,
                       learning_rate=pack.opts.learning_rate,
                       discriminator_learning_rate=pack.opts.discriminator_learning_rate, channels_last=False,
                       fused_adam=False)
            for i in pack.members}


@contextlib.contextmanager
def _matmul_precision(device: torch.device, precision: str):
    """On CUDA: TF32 matrix products allowed unless ``precision`` is fp32, the previous setting restored after."""
    if device.type != "cuda":
        yield
        return
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = precision != "fp32"
    torch.backends.cudnn.allow_tf32 = precision != "fp32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _final_losses(packed: PackedModels, alive: list[int], trainers: dict, pack: _Pack) -> dict[int, dict]:
    """The train_results losses of the runs that finished training (none when ``num_eval_samples`` is 0)."""
    if pack.opts.num_eval_samples > 0 and alive:
        return _evaluate_packed(packed, list(alive), trainers, pack)
    return {i: {} for i in alive}


def _finish(pack: _Pack, packed: PackedModels, finished: list[int], trainers: dict, evals: dict,
            train_seconds: float, used_order: str, results: list) -> None:
    """Each finished run's :class:`TrainedModel` (its weights written back from the pack) into ``results``; a run
    whose final losses are not finite becomes a :class:`TrainingDivergedError`."""
    pack_size = len(pack.members)
    for row, i in enumerate(finished):
        trainer = trainers[i]
        values = evals[i]
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            results[i] = TrainingDivergedError(
                f"training diverged: non-finite {', '.join(bad)} in the final evaluation ({pack.describe(i)})")
            continue
        packed.write_back(row, trainer)
        train_results = dict(values)
        train_results["train_seconds"] = float(train_seconds / pack_size)
        train_results["num_eval_samples"] = float(pack.opts.num_eval_samples)
        train_results["global_step"] = float(pack.steps)
        train_results["pack_size"] = float(pack_size)
        results[i] = TrainedModel(method=pack.method, hparams=dict(pack.hparams(i)), seed=pack.seed(i),
                                  steps=pack.steps, batch_size=pack.batch_size, vae=trainer.vae,
                                  discriminator=trainer.discriminator, train_results=train_results,
                                  dataset_name=pack.dataset_name, dataset=pack.dataset, data_order=used_order)


def _train_sub_packs(pack: _Pack, progress, on_step, models) -> list[TrainedModel | Exception]:
    """:func:`train_packed` with CPU ``workers`` > 1: one thread per sub-pack, each on one intra-op thread.

    ``train_seconds`` of every run becomes the whole pack's training wall time divided by K, and ``pack_size`` K,
    as for an unsplit pack."""
    members = pack.members
    results: list = [c if isinstance(c, Exception) else None for c in pack.checked]
    groups = [members[j::pack.workers] for j in range(pack.workers)]
    options = replace(pack.opts, workers=1)
    lock = threading.Lock()

    def locked_on_step(t, losses):
        with lock:
            on_step(t, losses)

    def train_group(group):
        torch.set_num_threads(1)  # thread-local: this sub-pack's kernels run on its own thread only
        return train_packed(pack.dataset, pack.method, [pack.runs[i] for i in group], pack.steps, pack.batch_size,
                            pack.device, options, progress=progress,
                            on_step=None if on_step is None else locked_on_step, models=models)

    with ThreadPoolExecutor(max_workers=pack.workers, thread_name_prefix="dstudy-sub-pack") as pool:
        outcomes = list(pool.map(train_group, groups))
    walls = [max((m.train_results["train_seconds"] * m.train_results["pack_size"]
                  for m in outcome if isinstance(m, TrainedModel)), default=0.0) for outcome in outcomes]
    for group, outcome in zip(groups, outcomes):
        for i, model in zip(group, outcome):
            if isinstance(model, TrainedModel):
                model.train_results["train_seconds"] = float(max(walls) / len(members))
                model.train_results["pack_size"] = float(len(members))
            results[i] = model
    return results


class NoiseBlocks:
    """Each run's latent noise (and, for factor_vae, permutation noise), the numbers ``Trainer.noise`` draws step by
    step from the run's own CPU generators, drawn ``block`` steps at a time: two generator calls per run per block
    instead of per step (at K = 512 runs, ~9 ms of host time per step on the H200's host), and one copy to the device
    per block.

    torch's CPU ``rand`` draws element by element, and its ``randn`` fills in chunks of 16 values, so one draw of
    (b, n, L) equals b draws of (n, L) when n * L is a multiple of 16 (batch sizes divisible by 8); otherwise the
    blocks are one step long. A block never reaches past ``steps``, so after training each generator stands where
    step-by-step draws leave it (the final train_results pass continues from there). ``next(rows)`` -> (eps, perm),
    each (len(rows), n, L) on ``device`` (perm None without a discriminator); ``rows`` may lose runs as they
    diverge.
    """

    def __init__(self, trainers: dict, rows: Sequence[int], n: int, device, steps: int, block: int = 50):
        self.trainers, self.n, self.device = trainers, int(n), device
        self.remaining = int(steps)
        self.block = block if (self.n * NUM_LATENT) % 16 == 0 else 1
        self.discriminator = trainers[rows[0]].discriminator is not None
        self._rows: list[int] = []
        self._index_rows: list[int] = []
        self._index: list[int] = []
        self._eps = self._perm = None
        self._t = self._size = 0

    def _draw(self, rows: Sequence[int]) -> None:
        if self.remaining <= 0:
            raise RuntimeError("all the steps' noise has been drawn")
        b = min(self.block, self.remaining)
        self.remaining -= b
        shape = (b, self.n, NUM_LATENT)
        blocks = [torch.stack([torch.randn(shape, generator=self.trainers[i].latent_noise) for i in rows])]
        if self.discriminator:
            blocks.append(torch.stack([torch.rand(shape, generator=self.trainers[i].permutation_noise)
                                       for i in rows]))
        if self.device.type == "cuda":
            blocks = [t.pin_memory() for t in blocks]
        blocks = [t.to(self.device, non_blocking=True) for t in blocks]
        self._eps, self._perm = blocks[0], (blocks[1] if self.discriminator else None)
        self._rows, self._t, self._size = list(rows), 0, b
        self._index_rows = []

    def next(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._t == self._size:
            self._draw(rows)
        rows = list(rows)
        if rows != self._rows and rows != self._index_rows:   # a run left mid-block: its rows are skipped
            position = {run: j for j, run in enumerate(self._rows)}
            self._index_rows, self._index = rows, [position[i] for i in rows]
        index = None if rows == self._rows else self._index
        out = []
        for block in (self._eps, self._perm):
            if block is None:
                out.append(None)
                continue
            step = block[:, self._t] if index is None else block[index, self._t]
            out.append(step.contiguous())
        self._t += 1
        return out[0], out[1]


def _noise(trainers: dict, rows: Sequence[int], n: int, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step's latent and permutation noise (K, n, L) of each run in ``rows``, drawn exactly as ``Trainer.noise``
    draws it (a block of one step of :class:`NoiseBlocks`)."""
    return NoiseBlocks(trainers, rows, n, device, steps=1).next(rows)


def _train_loop(packed: PackedModels, alive: list[int], trainers: dict, pack: _Pack, nan_check_every: int,
                progress: bool, on_step, results: list) -> tuple[float, str]:
    """Run ``pack.steps`` updates; removes diverged runs from ``alive`` (and ``packed``), recording their errors.

    Returns the training wall seconds and the data order used (``data_order``, or ``"device"``)."""
    device = pack.device
    batches, used_order = _batch_source(pack, alive)
    # the next batches are drawn ahead by a background thread (prefetch > 0): on the device path its generator calls
    # and launches then overlap the main thread's issue of the step; each run's stream is the same either way
    fetch = Prefetcher(batches.make, pack.opts.prefetch, name="dstudy-packed-batches")
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=pack.steps, desc=f"{pack.method} pack of {len(alive)}", unit="step", leave=False)
    noise = NoiseBlocks(trainers, alive, pack.batch_size, device, pack.steps)
    pending: list[dict] = []
    start = time.perf_counter()
    try:
        for t in range(pack.steps):
            if not alive:
                break
            rows_of_batch, batch = fetch.next()
            if rows_of_batch != alive:   # a run was dropped after this batch was drawn: take its rows out
                batch = batch[[rows_of_batch.index(i) for i in alive]]
            x = batch.to(device, non_blocking=True).permute(0, 1, 4, 2, 3)
            eps, perm = noise.next(alive)
            losses = packed.step(x, eps, perm, t)
            pending.append(losses)
            done = t + 1
            if done % nan_check_every == 0 or done == pack.steps:
                if _drop_diverged(packed, alive, pending, t, pack, results):
                    batches.alive = list(alive)
                pending.clear()
            if on_step is not None:
                on_step(t, losses)
            if bar is not None:
                bar.update(1)
                if done % 25 == 0 or done == pack.steps:
                    bar.set_postfix(runs=len(alive), refresh=False)
    finally:
        fetch.close()
        if bar is not None:
            bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, used_order


def _batch_source(pack: _Pack, alive: list[int]):
    """The runs' training batches: :class:`training.engine.device_data.DeviceBatches` drawn on the device, or
    :class:`HostBatches` (the numpy streams); and the data order that names them (``"device"`` or ``data_order``)."""
    device, opts = pack.device, pack.opts
    seeds = {i: pack.seed(i) for i in alive}
    device_data = opts.device_data
    if device_data is None:
        device_data = device.type == "cuda"
    if device_data:
        from training.engine.device_data import DeviceBatches, device_sampler

        sampler = device_sampler(pack.dataset, device)
        if sampler is not None:
            return DeviceBatches(sampler, pack.batch_size, seeds), "device"
        if device.type != "cuda":
            raise ValueError(f"dataset {getattr(pack.dataset, 'name', pack.dataset)!r} has no device-resident data "
                             f"path")
        # a dataset without a device path: the numpy streams
    return (HostBatches(pack.dataset, pack.batch_size, seeds, pin_memory=device.type == "cuda",
                        data_order=opts.data_order), opts.data_order)


def _drop_diverged(packed: PackedModels, alive: list[int], pending: list[dict], t: int, pack: _Pack,
                   results: list) -> bool:
    """Check the losses of the steps in ``pending``: a run with a non-finite loss in any of them leaves ``alive``
    and ``packed``, its slot of ``results`` a :class:`TrainingDivergedError`. Returns whether any run left."""
    # (checked steps, loss keys, runs): a run is finite when all its losses of all these steps are
    stacked = torch.stack([torch.stack([p[k] for k in sorted(p)]) for p in pending])
    finite = torch.isfinite(stacked).all(dim=1).all(dim=0).cpu().tolist()
    if all(finite):
        return False
    for row, ok in enumerate(finite):
        if not ok:
            i = alive[row]
            results[i] = TrainingDivergedError(
                f"training diverged: non-finite loss by step {t} ({pack.describe(i)}); lower the learning rate or "
                f"check the data")
    keep = [row for row, ok in enumerate(finite) if ok]
    alive[:] = [alive[row] for row in keep]
    if alive:
        packed.keep(keep)
    return True


def _evaluate_packed(packed: PackedModels, rows_runs: list[int], trainers: dict, pack: _Pack
                     ) -> dict[int, dict[str, float]]:
    """train_results losses of every run, as ``training.engine.train.evaluate_losses`` computes them for one run.

    Each run draws ``num_eval_samples`` fresh observations from ``RandomState(derive_seeds(seed)["eval_data"])`` in
    batches of ``batch_size``, noise from its generators; the result is the sample-weighted mean of each loss.
    """
    num_samples, batch_size, device = pack.opts.num_eval_samples, pack.batch_size, pack.device
    streams = {i: np.random.RandomState(derive_seeds(pack.seed(i))["eval_data"] % (2 ** 32)) for i in rows_runs}
    sums = torch.zeros((len(LOSS_KEYS), len(rows_runs)), dtype=torch.float64)
    done = 0
    with torch.no_grad():
        while done < num_samples:
            n = min(batch_size, num_samples - done)
            batch = torch.from_numpy(np.stack([np.asarray(pack.dataset.sample_observations(n, streams[i]),
                                                          np.float32) for i in rows_runs]))
            x = batch.to(device).permute(0, 1, 4, 2, 3)
            eps, perm = _noise(trainers, rows_runs, n, device)
            losses = packed.losses(x, eps, perm, float(pack.steps))
            values = torch.stack([losses[k] for k in LOSS_KEYS]).detach().to("cpu", torch.float64)
            sums += values * n
            done += n
    means = sums / num_samples
    return {i: {k: float(means[j, row]) for j, k in enumerate(LOSS_KEYS)} for row, i in enumerate(rows_runs)}
