"""Packed multi-model training: K runs of one method on one dataset trained as ONE stacked computation.

:func:`train_packed` trains K runs (each a ``(hparams, seed)`` pair; hyperparameter values may differ within a pack)
in lock-step. The K models' parameters are stacked along a leading run axis (``torch.func.stack_module_state``), so
that a small VAE at batch 64 becomes a computation big enough to keep a GPU busy. How one step runs the K networks
(``impl``):

* ``"gemm"`` (the CUDA default): explicit packed layers (:mod:`training.kernels.packed_layers`) on channels-last
  activations, each convolution ONE batched matrix product per layer (the pack as its batch axis) plus a shifted sum
  or a window gather, no im2col blow-up; the convolution weights are kept as the matrices the products consume.
  Measured on one H200 (``benchmarks/gpu_pack.py``, beta_vae, batch 64, bf16): ~5,200 model-steps/s at K = 512,
  against ~2,300 for ``"vmap"`` and ~3,300 for ``"grouped"``;
* ``"triton"`` (CUDA; not yet measured there): the same channels-last layers as fused implicit-GEMM Triton kernels
  (:mod:`training.kernels.triton_layers`): each layer's forward pass, input gradient and weight gradient is one
  kernel that gathers its operand tiles from the activations (no im2col tensor, no shifted sums or interleaves),
  with the bias, the ReLU and the gradient's ReLU mask fused. Without CUDA it runs in Triton's interpreter
  (``TRITON_INTERPRET=1``), for tests only;
* ``"vmap"``: ``torch.func.vmap`` over a ``functional_call`` of the shared architecture (convolutions become grouped
  convolutions, dense layers batched matrix products); ``"grouped"``: grouped convolutions on channels-last
  activations without vmap; ``"bmm"``: im2col / col2im around batched matrix products;
* ``"loop"`` (the CPU default): each run's forward and backward pass in turn through the single-model kernels (its
  activations freed before the next run's forward pass), its gradients written into its rows of the stacked
  gradients; the Adam updates (one foreach update of the stacked parameters) are shared. On a CPU with several
  cores the pack is, by default, dealt into one sub-pack per core (``workers``), each trained by its own thread on
  one intra-op thread: this network's layers are too small to keep two oneDNN threads
  busy without losing much of the second one to synchronisation.

Every run is exactly the run :func:`training.engine.train.train_model` would train alone (same seed conventions; each run is
set up by the single-model engine's own :class:`training.engine.train.Trainer`):

* weight init from ``derive_seeds(seed)["init"]`` (the VAE, then the FactorVAE discriminator);
* its own data stream ``RandomState(seed)`` drawn in the same ``data_order`` (host path), and its own latent-noise
  and permutation-noise generators;
* its own Adam state (element-wise, so a stacked Adam is K independent Adams), its own FactorVAE discriminator and
  discriminator Adam, and its own AnnealedVAE schedule (hyperparameters that differ across the pack are passed to
  the objective as per-run tensors);
* the same final train_results pass (``num_eval_samples`` fresh samples from ``derive_seeds(seed)["eval_data"]``, the
  noise generators continuing where training left them).

So on the CPU each packed run's weights and train_results equal the run trained alone, up to floating-point
rounding (the grouped/batched kernels sum in another order). ``tests/test_packed_equivalence.py`` checks this for all
six methods.

Differences from a run trained alone, by design:

* ``train_seconds`` is the pack's training wall time divided by K (the amortised cost of the run); the results also
  carry ``pack_size``.
* On CUDA, by default the training batches are drawn on the device (:mod:`training.engine.device_data`: pre-rendered uint8
  images in GPU memory, index gathers, variant transforms with a per-run ``torch.Generator``). That data stream is
  seeded from the run's seed too, but it is another stream than the numpy one (``device_data=False`` keeps the numpy
  stream). The final train_results pass always uses the numpy stream.
* ``precision="bf16"`` runs the networks under bf16 autocast (CUDA, or CPU autocast: there it is meant for
  measuring the effect of bf16 without a GPU, e.g. ``benchmarks/precision.py``; it is slower than fp32 on CPUs without
  bf16 instructions); ``"tf32"`` allows TF32 matrix products (CUDA only). Both change results beyond rounding; the
  default ``"fp32"`` does not.

A non-finite loss stops that run only: its slot in the returned list is a
:class:`training.engine.train.TrainingDivergedError` and the pack goes on without it (its rows are removed from the stacked
parameters and optimiser states). Invalid hyperparameters of one run likewise give that slot a ``ValueError``.
"""
from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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

IMPLS = PACKED_IMPLS
STACKED_IMPLS = ("bmm", "gemm", "grouped", "triton")   # explicit packed layers (training.kernels.packed_layers)
MATRIX_IMPLS = ("gemm", "triton")   # convolution weights stored as the matrices their kernels consume


# ----------------------------------------------------------------------------------------------------------------
# the stacked computation


class PackedModels:
    """K models of one method as stacked parameters ``(K, ...)`` with their optimisers.

    ``runs`` are :class:`training.engine.train.Trainer` objects (one per run, already initialised as a single run would
    be); their networks' parameters are copied into stacked leaf tensors. :meth:`write_back` copies the trained rows
    back into each trainer's networks.
    """

    def __init__(self, trainers: Sequence[Trainer], device: torch.device, learning_rate: float,
                 discriminator_learning_rate: float, fused_adam: bool | None = None, precision: str = "fp32",
                 impl: str | None = None, compile: bool = False):
        if not trainers:
            raise ValueError("a pack needs at least one run")
        self.method = trainers[0].method
        self.device = device
        self.precision = precision
        self.num_channels = trainers[0].vae.num_channels
        if impl is None:
            impl = "gemm" if device.type == "cuda" else "loop"
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
        self.impl = impl
        if impl == "triton":
            _check_triton(device)
        vae_params, _ = stack_module_state([t.vae for t in trainers])
        # impls "gemm" and "triton" keep the convolution weights as the matrices their kernels consume (the stacked
        # parameters and Adam's states live in that layout; write_back converts a run's rows back)
        self.gemm_layers = _gemm_layers(trainers[0].vae, impl) if impl in MATRIX_IMPLS else {}
        for name, layer in self.gemm_layers.items():
            vae_params[name] = layers.gemm_matrix(layer.kind, vae_params[name], layer.form).contiguous()
        self.vae_params = {k: v.detach().clone().to(device).requires_grad_(True) for k, v in vae_params.items()}
        self.disc_params: dict[str, torch.Tensor] = {}
        if trainers[0].discriminator is not None:
            disc_params, _ = stack_module_state([t.discriminator for t in trainers])
            self.disc_params = {k: v.detach().clone().to(device).requires_grad_(True) for k, v in disc_params.items()}
        # parameter-free "skeletons" the functional calls run through
        self._vae = GaussianVAE(self.num_channels, NUM_LATENT).to("meta")
        self._disc = Discriminator(NUM_LATENT).to("meta") if self.disc_params else None
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
        if impl == "loop" and device.type == "cpu":
            # oneDNN's preferred layout, as the single-model trainer uses it (a speed choice only)
            self._vae.decoder.memory_format = torch.channels_last
        # the phase-wise output layer (a custom autograd function) has no vmap rule: only the loop runs the
        # decoder outside vmap
        use_fast_cpu_layers(self._vae, output_by_phases=impl == "loop" and device.type == "cpu")
        self._vmapped_networks = vmap(self._networks_one, randomness="error")
        # torch.compile of the forward pass and objectives (its backward is compiled with it): Inductor fuses the
        # copies, shifted sums, biases and activations around the matrix products
        self._compiled_losses = torch.compile(self._losses, dynamic=False) if compile else None
        # impl "loop": one run's forward and backward pass after the other (see _step_per_run)
        self.per_run_backward = not compile
        self._step_tensor = torch.zeros((), device=device)
        self._vmapped_objectives = vmap(self._objectives_one, in_dims=(0,) * 7 + (None, 0), randomness="error")

    @property
    def size(self) -> int:
        return next(iter(self.vae_params.values())).shape[0]

    # -- the networks of the K runs ---------------------------------------------------------------------------------
    def _networks_one(self, vae_params, disc_params, x, eps, perm):
        """One run's forward pass on its batch ``x`` (N, C, 64, 64), as ``Trainer._losses_eager`` computes it:
        (mean, logvar, z, logits, discriminator logits on z, discriminator logits on the permuted z)."""
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

    def _networks(self, x, eps, perm):
        """All runs' forward passes, stacked (K, ...): one vmapped call (``impl="vmap"``: grouped convolutions and
        batched matrix products) or a loop over the runs' parameter slices (``impl="loop"``: each run's
        convolutions through the backend's fastest single-model kernels, e.g. oneDNN on CPU)."""
        if self.impl == "vmap":
            return self._vmapped_networks(self.vae_params, self.disc_params, x, eps, perm)
        if self.impl in STACKED_IMPLS:
            return self._networks_stacked(x, eps, perm)
        size = self.size
        vae_rows = {k: v.unbind(0) for k, v in self.vae_params.items()}
        disc_rows = {k: v.unbind(0) for k, v in self.disc_params.items()}
        fmt = self._vae.decoder.memory_format
        outs = [self._networks_one({k: v[r] for k, v in vae_rows.items()}, {k: v[r] for k, v in disc_rows.items()},
                                   x[r].contiguous(memory_format=fmt), eps[r], perm[r]) for r in range(size)]
        return tuple(torch.stack(parts) for parts in zip(*outs))

    def _networks_stacked(self, x, eps, perm):
        """All runs' forward passes with explicit packed layers (``impl`` "bmm", "gemm" or "grouped";
        :mod:`training.kernels.packed_layers`): the convolutions of :meth:`_conv_encoder` / :meth:`_conv_decoder`,
        the dense layers as ``baddbmm``. The same functions as the single-model networks (same weight layouts and
        flatten order)."""
        p = self.vae_params
        k, n = x.shape[:2]
        with self._autocast():
            h = torch.relu(layers.packed_linear(self._conv_encoder(x), p["encoder.dense.weight"],
                                                p["encoder.dense.bias"]))
            mean = layers.packed_linear(h, p["encoder.mean.weight"], p["encoder.mean.bias"])
            logvar = layers.packed_linear(h, p["encoder.logvar.weight"], p["encoder.logvar.bias"])
        mean, logvar = mean.float(), logvar.float()
        z = sample_latent(mean, logvar, eps)
        with self._autocast():
            h = torch.relu(layers.packed_linear(z, p["decoder.dense1.weight"], p["decoder.dense1.bias"]))
            h = torch.relu(layers.packed_linear(h, p["decoder.dense2.weight"], p["decoder.dense2.bias"]))
            logits = self._conv_decoder(h.reshape(k, n, 64, 4, 4))
        logits = logits.float()
        if self._disc is None:
            return mean, logvar, z, logits, logits, logits
        disc_logits = self._discriminator_bmm(z)
        logits_perm = self._discriminator_bmm(vmap(permute_dims)(z.detach(), perm))
        return mean, logvar, z, logits, disc_logits, logits_perm

    def _conv_encoder(self, x):
        """The encoder's four ReLU convolutions: images x (K, N, C, 64, 64) -> features (K, N, 1024) flattened in
        the single model's (channel, row, column) order."""
        p = self.vae_params
        w = {name: (p[f"encoder.{name}.weight"], p[f"encoder.{name}.bias"])
             for name in ("conv1", "conv2", "conv3", "conv4")}
        k, n = x.shape[:2]
        if self.impl in MATRIX_IMPLS:   # channels-last (K, N, H, W, C), weights as matrices
            h = x.permute(0, 1, 3, 4, 2)
            if self.precision == "bf16":   # under autocast the products would cast it anyway: cast before copying
                h = h.to(torch.bfloat16)
            for name in ("conv1", "conv2", "conv3", "conv4"):
                h = self._matrix_layer(f"encoder.{name}", h, *w[name], relu=True)
            return h.permute(0, 1, 4, 2, 3).reshape(k, n, -1)
        if self.impl == "grouped":   # (N, K*C, H, W), channels-last in memory
            h = x.transpose(0, 1).reshape(n, -1, 64, 64).contiguous(memory_format=torch.channels_last)
            for name, pad in (("conv1", 1), ("conv2", 1), ("conv3", 0), ("conv4", 0)):
                h = torch.relu(layers.grouped_conv2d(h, *w[name], 2, pad))
            return h.reshape(n, k, -1).transpose(0, 1)
        h = x   # bmm: (K, N, C, H, W)
        for name, pad in (("conv1", 1), ("conv2", 1), ("conv3", 0), ("conv4", 0)):
            h = torch.relu(layers.packed_conv2d(h, *w[name], 2, pad))
        return h.reshape(k, n, -1)

    def _conv_decoder(self, h):
        """The decoder's transposed convolutions: features h (K, N, 64, 4, 4) -> logits (K, N, C, 64, 64)."""
        p = self.vae_params
        names = ("deconv1", "deconv2", "deconv3", "deconv4")
        w = {name: (p[f"decoder.{name}.weight"], p[f"decoder.{name}.bias"]) for name in names}
        k, n = h.shape[:2]
        if self.impl in MATRIX_IMPLS:
            h = h.permute(0, 1, 3, 4, 2)
            for name in names:
                h = self._matrix_layer(f"decoder.{name}", h, *w[name], relu=name != "deconv4")
            return h.permute(0, 1, 4, 2, 3)
        if self.impl == "grouped":
            h = h.transpose(0, 1).reshape(n, k * 64, 4, 4).contiguous(memory_format=torch.channels_last)
            for name in names:
                h = layers.grouped_conv_transpose2d(h, *w[name], 2, 1)
                h = h if name == "deconv4" else torch.relu(h)
            return h.reshape(n, k, -1, 64, 64).transpose(0, 1)
        for name in names:
            h = layers.packed_conv_transpose2d(h, *w[name], 2, 1)
            h = h if name == "deconv4" else torch.relu(h)
        return h

    def _matrix_layer(self, name: str, h, matrix, bias, relu: bool):
        """One convolution of impl "gemm" or "triton" on channels-last h (K, N, H, W, C): the layer's own impl
        (:func:`_gemm_layers`) -> (K, N, HO, WO, O), ReLU'd if ``relu``."""
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

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

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
        outs = self._networks(x, eps, perm)
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
            outs = self._networks_one(rows[0], rows[1] if self.disc_params else {},
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

    # -- removing runs -----------------------------------------------------------------------------------------------
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

    # -- back to single models -----------------------------------------------------------------------------------------
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
                 **option_overrides) -> list[TrainedModel | Exception]:
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
    impl: how the K networks run (see the module docstring): ``"gemm"`` (explicit packed layers, every convolution
        one batched matrix product; default on CUDA), ``"loop"`` (each run's forward and backward pass in turn through
        the single-model kernels, stacked optimiser updates for the pack; default on CPU), ``"triton"`` (fused
        kernels, CUDA; the triton extra), or the comparison baselines ``"vmap"``, ``"grouped"``, ``"bmm"``. Same
        results up to rounding.
    compile: ``torch.compile`` the pack's forward pass and objectives (and so their backward pass), meant for CUDA
        with ``impl="gemm"`` or ``"triton"``; the first step then takes a minute or more to compile.
    workers: CPU only: the pack is dealt round-robin into this many sub-packs, trained at the same time in as many
        threads, each sub-pack one stacked computation on ONE intra-op thread. Default: torch's intra-op thread
        count, at most K. Per-run results are unchanged up to rounding.
    on_step: called as ``on_step(t, losses)`` with the (K_alive,) loss tensors after each update (with CPU workers:
        once per sub-pack and step, from the sub-pack's thread, one call at a time).

    Returns one entry per run, in order: its :class:`training.engine.train.TrainedModel`, or the exception that stopped it
    (:class:`training.engine.train.TrainingDivergedError` for a non-finite loss, ``ValueError`` for invalid hyperparameters).
    Raises ValueError for bad arguments that concern the whole pack (method, steps, batch size, device, precision).
    """
    opts = TrainingOptions.of(options, **option_overrides)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    steps = _check_int("steps", steps, 1)
    batch_size = _check_int("batch_size", batch_size, 2)
    learning_rate, discriminator_learning_rate = opts.learning_rate, opts.discriminator_learning_rate
    num_eval_samples, nan_check_every, precision = opts.num_eval_samples, opts.nan_check_every, opts.precision
    device_data, data_order, prefetch, compile = opts.device_data, opts.data_order, opts.prefetch, opts.compile
    fused_adam, impl, workers = opts.fused_adam, opts.impl, opts.workers
    checked = _check_runs(method, runs)
    dataset_obj, dataset_name = resolve_dataset(dataset)
    channels = dataset_channels(dataset_obj)
    device = resolve_device(device)
    members = [i for i, c in enumerate(checked) if not isinstance(c, Exception)]
    if workers is None:   # (Triton's interpreter, impl "triton" without CUDA, is not thread-safe)
        workers = torch.get_num_threads() if device.type == "cpu" and impl != "triton" else 1
    workers = min(_check_int("workers", workers, 1), max(1, len(members)))
    if workers > 1:
        if device.type != "cpu" or impl == "triton":
            raise ValueError(f"workers > 1 splits a pack over CPU cores; on {device} with impl {impl!r} use "
                             f"workers=1")
        options = dict(learning_rate=learning_rate, discriminator_learning_rate=discriminator_learning_rate,
                       num_eval_samples=num_eval_samples, nan_check_every=nan_check_every, precision=precision,
                       device_data=device_data, data_order=data_order, prefetch=prefetch, fused_adam=fused_adam,
                       impl=impl, progress=progress, compile=compile)
        return _train_sub_packs(dataset_obj, method, list(runs), checked, members, workers, steps, batch_size,
                                device, options, on_step)
    if precision == "tf32" and device.type != "cuda":
        raise ValueError(f"precision 'tf32' needs a CUDA device (got {device})")
    if nan_check_every is None:
        nan_check_every = 1 if device.type == "cpu" else 50
    nan_check_every = _check_int("nan_check_every", nan_check_every, 1)
    if progress is None:
        progress = sys.stderr.isatty()

    results: list[TrainedModel | Exception | None] = [c if isinstance(c, Exception) else None for c in checked]
    if not members:
        return results  # type: ignore[return-value]
    run_hparams = {i: checked[i][0] for i in members}
    run_seeds = {i: checked[i][1] for i in members}
    trainers = {i: Trainer(method, run_hparams[i], run_seeds[i], channels, device, learning_rate=learning_rate,
                           discriminator_learning_rate=discriminator_learning_rate, channels_last=False,
                           fused_adam=False)
                for i in members}

    tf32_before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision != "fp32"
        torch.backends.cudnn.allow_tf32 = precision != "fp32"
    try:
        packed = PackedModels([trainers[i] for i in members], device, learning_rate, discriminator_learning_rate,
                              fused_adam=fused_adam, precision=precision, impl=impl, compile=compile)
        alive = list(members)   # run index of each row of the stacked parameters
        train_seconds, used_order = _train_loop(packed, alive, trainers, dataset_obj, method, run_hparams,
                                                run_seeds, steps, batch_size, device, nan_check_every, device_data,
                                                data_order, prefetch, progress, on_step, results)
        finished = list(alive)
        if num_eval_samples > 0 and finished:
            evals = _evaluate_packed(packed, finished, trainers, dataset_obj, run_seeds, steps, batch_size,
                                     num_eval_samples, device)
        else:
            evals = {i: {} for i in finished}
    finally:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32_before

    pack_size = len(members)
    for row, i in enumerate(finished):
        trainer = trainers[i]
        values = evals[i]
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            results[i] = TrainingDivergedError(
                f"training diverged: non-finite {', '.join(bad)} in the final evaluation "
                f"({_describe(method, run_hparams[i], run_seeds[i])})")
            continue
        packed.write_back(row, trainer)
        train_results = dict(values)
        train_results["train_seconds"] = float(train_seconds / pack_size)
        train_results["num_eval_samples"] = float(num_eval_samples)
        train_results["global_step"] = float(steps)
        train_results["pack_size"] = float(pack_size)
        results[i] = TrainedModel(method=method, hparams=dict(run_hparams[i]), seed=run_seeds[i], steps=steps,
                                  batch_size=batch_size, vae=trainer.vae, discriminator=trainer.discriminator,
                                  train_results=train_results, dataset_name=dataset_name, dataset=dataset_obj,
                                  data_order=used_order)
    return results  # type: ignore[return-value]


def _train_sub_packs(dataset, method: str, runs: list, checked: list, members: list[int], workers: int, steps: int,
                     batch_size: int, device, options: dict, on_step) -> list[TrainedModel | Exception]:
    """:func:`train_packed` with CPU ``workers`` > 1: one thread per sub-pack, each on one intra-op thread.

    ``train_seconds`` of every run becomes the whole pack's training wall time divided by K, and ``pack_size`` K,
    as for an unsplit pack."""
    results: list = [c if isinstance(c, Exception) else None for c in checked]
    groups = [members[j::workers] for j in range(workers)]
    lock = threading.Lock()

    def locked_on_step(t, losses):
        with lock:
            on_step(t, losses)

    def train_group(group):
        torch.set_num_threads(1)  # thread-local: this sub-pack's kernels run on its own thread only
        return train_packed(dataset, method, [runs[i] for i in group], steps, batch_size, device, workers=1,
                            on_step=None if on_step is None else locked_on_step, **options)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dstudy-sub-pack") as pool:
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


def _describe(method: str, hparams: dict, seed: int) -> str:
    return f"{method}, {', '.join(f'{k}={v:g}' for k, v in hparams.items())}, seed {seed}"


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


def _train_loop(packed: PackedModels, alive: list[int], trainers: dict, dataset, method: str, run_hparams: dict,
                run_seeds: dict, steps: int, batch_size: int, device, nan_check_every: int, device_data, data_order,
                prefetch, progress, on_step, results: list) -> tuple[float, str]:
    """Run ``steps`` updates; removes diverged runs from ``alive`` (and ``packed``), recording their errors.

    Returns the training wall seconds and the data order used (``data_order``, or ``"device"``)."""
    sampler = None
    if device_data is None:
        device_data = device.type == "cuda"
    if device_data:
        from training.engine.device_data import DeviceBatches, device_sampler

        sampler = device_sampler(dataset, device)
        if sampler is None and device.type == "cuda":
            device_data = False  # dataset without a device path: the numpy streams
        elif sampler is None:
            raise ValueError(f"dataset {getattr(dataset, 'name', dataset)!r} has no device-resident data path")
    # the next batches are drawn ahead by a background thread (prefetch > 0): on the device path its generator calls
    # and launches then overlap the main thread's issue of the step; each run's stream is the same either way
    if device_data:
        batches = DeviceBatches(sampler, batch_size, {i: run_seeds[i] for i in alive})
    else:
        batches = HostBatches(dataset, batch_size, {i: run_seeds[i] for i in alive},
                              pin_memory=device.type == "cuda", data_order=data_order)
    fetch = Prefetcher(batches.make, prefetch, name="dstudy-packed-batches")
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc=f"{method} pack of {len(alive)}", unit="step", leave=False)
    noise = NoiseBlocks(trainers, alive, batch_size, device, steps)
    pending: list[dict] = []
    start = time.perf_counter()
    try:
        for t in range(steps):
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
            if done % nan_check_every == 0 or done == steps:
                # (checked steps, loss keys, runs): a run is finite when all its losses of all these steps are
                stacked = torch.stack([torch.stack([p[k] for k in sorted(p)]) for p in pending])
                finite = torch.isfinite(stacked).all(dim=1).all(dim=0).cpu().tolist()
                pending.clear()
                if not all(finite):
                    keep = [row for row, ok in enumerate(finite) if ok]
                    for row, ok in enumerate(finite):
                        if not ok:
                            i = alive[row]
                            results[i] = TrainingDivergedError(
                                f"training diverged: non-finite loss by step {t} "
                                f"({_describe(method, run_hparams[i], run_seeds[i])}); lower the learning rate or "
                                f"check the data")
                    alive[:] = [alive[row] for row in keep]
                    if alive:
                        packed.keep(keep)
                    batches.alive = list(alive)
            if on_step is not None:
                on_step(t, losses)
            if bar is not None:
                bar.update(1)
                if done % 25 == 0 or done == steps:
                    bar.set_postfix(runs=len(alive), refresh=False)
    finally:
        fetch.close()
        if bar is not None:
            bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, ("device" if device_data else data_order)


def _evaluate_packed(packed: PackedModels, rows_runs: list[int], trainers: dict, dataset, run_seeds: dict,
                     steps: int, batch_size: int, num_samples: int, device) -> dict[int, dict[str, float]]:
    """train_results losses of every run, as ``training.engine.train.evaluate_losses`` computes them for one run.

    Each run draws ``num_samples`` fresh observations from ``RandomState(derive_seeds(seed)["eval_data"])`` in
    batches of ``batch_size``, noise from its generators; the result is the sample-weighted mean of each loss.
    """
    streams = {i: np.random.RandomState(derive_seeds(run_seeds[i])["eval_data"] % (2 ** 32)) for i in rows_runs}
    sums = torch.zeros((len(LOSS_KEYS), len(rows_runs)), dtype=torch.float64)
    done = 0
    with torch.no_grad():
        while done < num_samples:
            n = min(batch_size, num_samples - done)
            batch = torch.from_numpy(np.stack([np.asarray(dataset.sample_observations(n, streams[i]), np.float32)
                                               for i in rows_runs]))
            x = batch.to(device).permute(0, 1, 4, 2, 3)
            eps, perm = _noise(trainers, rows_runs, n, device)
            losses = packed.losses(x, eps, perm, float(steps))
            values = torch.stack([losses[k] for k in LOSS_KEYS]).detach().to("cpu", torch.float64)
            sums += values * n
            done += n
    means = sums / num_samples
    return {i: {k: float(means[j, row]) for j, k in enumerate(LOSS_KEYS)} for row, i in enumerate(rows_runs)}
