"""Code table: encode every factor configuration of a deterministic dataset once, then look codes up by index.

Why: at the study's protocol sizes the BetaVAE score encodes 1.92M images and the FactorVAE score 0.97M, per
representation, while dsprites_full has only 737,280 distinct images (shapes3d 480,000, smallnorb 48,600 with the
instance factor, cars3d 17,568). When an image is a fixed function of its full factor vector
(``dataset.deterministic_render``: dsprites_full, shapes3d, cars3d, smallnorb - NOT the colour / noise / Scream
dSprites, which draw random numbers per image), encoding each configuration once serves every evaluation and BOTH
representations (``sampled`` is ``mean + exp(logvar / 2) * noise`` of the same encoder outputs).

How it keeps the numbers (``evaluate_model_records(..., code_table=True)``; off by default):

* :class:`IndexedDataset` has the dataset interface, but its "observations" are the C-order indices (int64, shape
  (n,)) of the full factor vectors instead of images. It draws exactly what the dataset draws, in the same order:
  the latent factors, then the observation factors (smallnorb's instance); rendering draws nothing (that is what
  ``deterministic_render`` promises), so skipping it leaves the RandomState stream unchanged.
* :meth:`CodeTable.representation_fn` maps indices to codes with the SAME call structure as the encoder's
  representation function (:func:`training.evaluation.representation.chunked_codes`: one noise tensor per call, chunks of
  ``batch_size`` = 256, the same torch arithmetic), so ``sampled`` consumes and applies the same noise.
* A chunk of fewer than :data:`MIN_TABLE_CHUNK` points (e.g. the 10-point downstream training sets) is not looked up
  but rendered and encoded directly, as the encoder path does.

What is guaranteed: the same draws, the same noise, and codes equal to the encoder path's up to float32 rounding.
The table encodes in batches of ``build_batch_size`` (64) images on one thread per worker, the encoder path in
batches of up to 256 on torch's threads, and oneDNN / MKL choose their kernels (hence the order of each dot
product's additions) by CPU, batch shape and thread count: an encoding can differ in its last bits (measured: up to
4.5e-8 on codes of size ~0.25 on an AVX-512 CPU; bit-identical on an AVX2 one). Scores that are smooth functions of
the codes move by as little; scores that count decisions (histogram bins, classifier predictions, a cross-validated
choice of hyperparameter) can flip on a point that lies on a boundary, as they do between two CPUs.
``tests/test_code_table.py`` holds both: bit-equal numbers for an encoder that is exact arithmetic, and stated
tolerances for a trained one.

Cost: one table = ``num_configurations`` renders + encodes and 2 x 4 bytes x num_latent per configuration (59 MB for
dSprites). dsprites_full on this machine's 2 cores: 99-107 s (~140 us per configuration: slicing the disk cache of
the procedural images, ``dataset.render_configurations``, ~3.5 us; encoding in one thread per core the rest), down
from 142-158 s with rendering (~29 us) and one two-threaded encoder. It pays off when the evaluations would encode
more images than the dataset has configurations (both representations at full protocol size: ~6.1M); the study
runner decides with :func:`training.evaluation.scoring.use_code_table`.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

from training.evaluation.representation import chunked_codes
from training.randomness import check_random_state
from training.vocabulary import REPRESENTATIONS

#: A chunk of fewer points than this is rendered and encoded directly instead of looked up (see module docstring).
MIN_TABLE_CHUNK = 64


def check_deterministic(dataset) -> None:
    """ValueError unless ``dataset`` declares ``deterministic_render`` and can index and render full factor vectors."""
    missing = [a for a in ("sample_all_factors", "index_of", "all_factors_of", "render_all_factors",
                           "num_configurations") if not hasattr(dataset, a)]
    if missing or not getattr(dataset, "deterministic_render", False):
        name = getattr(dataset, "name", type(dataset).__name__)
        why = f"lacks {', '.join(missing)}" if missing else "draws random numbers per image"
        raise ValueError(f"a code table needs a dataset whose images are a deterministic function of the factors; "
                         f"{name} {why}")


class IndexedDataset:
    """The dataset interface over ``dataset`` with observations = C-order indices (int64 (n,)) of the full factor
    vectors; random draws identical to ``dataset``'s (latent factors, then observation factors; no render draws)."""

    def __init__(self, dataset):
        check_deterministic(dataset)
        self.base = dataset

    @property
    def num_factors(self) -> int:
        return self.base.num_factors

    @property
    def factors_num_values(self) -> list[int]:
        return self.base.factors_num_values

    @property
    def factor_names(self) -> list[str]:
        return self.base.factor_names

    @property
    def name(self) -> str:
        return getattr(self.base, "name", "")

    def sample_factors(self, num, random_state) -> np.ndarray:
        return self.base.sample_factors(num, random_state)

    def sample_observations_from_factors(self, factors, random_state) -> np.ndarray:
        check_random_state(random_state, allow_seed=False)
        return np.asarray(self.base.index_of(self.base.sample_all_factors(factors, random_state)), dtype=np.int64)

    def sample(self, num, random_state) -> tuple[np.ndarray, np.ndarray]:
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num, random_state) -> np.ndarray:
        return self.sample(num, random_state)[1]


class CodeTable:
    """(mean, logvar) float32 (num_configurations, L) of every full factor vector of a deterministic dataset.

    Model-like: :meth:`representation_fn` (kind, seed) returns a function of the indices that :attr:`dataset`
    (an :class:`IndexedDataset`) yields as observations. ``encode_images(images) -> (mean, logvar)`` tensors is
    used for the chunks of fewer than :data:`MIN_TABLE_CHUNK` points; ``batch_size`` must equal the batch size of
    the encoder path being replaced (256 for ``TrainedModel.representation_fn``)."""

    def __init__(self, dataset, mean: np.ndarray, logvar: np.ndarray,
                 encode_images: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]], batch_size: int = 256,
                 build_seconds: float = 0.0):
        self.dataset = IndexedDataset(dataset)
        mean, logvar = np.asarray(mean), np.asarray(logvar)
        if mean.shape != logvar.shape or mean.ndim != 2 or mean.shape[0] != dataset.num_configurations:
            raise ValueError(f"table arrays must be (num_configurations={dataset.num_configurations}, L), got "
                             f"{mean.shape} and {logvar.shape}")
        self.mean = np.ascontiguousarray(mean, dtype=np.float32)
        self.logvar = np.ascontiguousarray(logvar, dtype=np.float32)
        self.num_latent = self.mean.shape[1]
        self.batch_size = int(batch_size)
        self.build_seconds = float(build_seconds)
        self._encode_images = encode_images

    @classmethod
    def build(cls, dataset, encode_images: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]],
              batch_size: int = 256, build_batch_size: int = MIN_TABLE_CHUNK, render_chunk: int = 4096,
              progress: Callable[[int], None] | None = None, workers: int | None = None) -> "CodeTable":
        """Render and encode all ``dataset.num_configurations`` images (``render_chunk`` rendered at a time, encoded
        in chunks of ``build_batch_size`` >= :data:`MIN_TABLE_CHUNK`; a short last chunk is padded to that size by
        repeating its images, so that no image is encoded in a small batch).

        ``workers`` (default: torch's intra-op thread count) threads each encode a contiguous share of every rendered
        chunk with ONE intra-op thread (with ``workers=1``, torch's threads encode each chunk). The same arguments
        give the same table bit for bit; other ``workers`` or ``build_batch_size`` give rows equal up to float32
        rounding (see the module docstring)."""
        check_deterministic(dataset)
        build_batch_size = int(build_batch_size)
        if build_batch_size < MIN_TABLE_CHUNK:
            raise ValueError(f"build_batch_size must be >= {MIN_TABLE_CHUNK}, got {build_batch_size}")
        workers = torch.get_num_threads() if workers is None else int(workers)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        start_time = time.perf_counter()
        total = int(dataset.num_configurations)
        render_chunk = max(int(render_chunk), build_batch_size)
        mean = logvar = None

        def encode_range(images: np.ndarray, first: int, start: int, stop: int, threads: int | None) -> None:
            """Encode ``images[start:stop]`` (configurations ``first + start ...``) into the table's rows."""
            nonlocal mean, logvar
            if threads is not None:
                torch.set_num_threads(threads)  # thread-local: this worker's kernels run on its own thread only
            for offset in range(start, stop, build_batch_size):
                part = images[offset:min(stop, offset + build_batch_size)]
                n = len(part)
                if n < build_batch_size:  # pad a short chunk (by repeating its images) to the full batch size
                    part = np.take(part, np.arange(build_batch_size) % n, axis=0)
                m, lv = encode_images(part)
                m, lv = m[:n].float().cpu().numpy(), lv[:n].float().cpu().numpy()
                if mean is None:  # the first chunk is encoded alone, before any worker starts
                    mean = np.empty((total, m.shape[1]), dtype=np.float32)
                    logvar = np.empty_like(mean)
                mean[first + offset:first + offset + n] = m
                logvar[first + offset:first + offset + n] = lv

        first_images = render_configurations(dataset, 0, min(total, build_batch_size))
        encode_range(first_images, 0, 0, len(first_images), None)
        done = len(first_images)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dstudy-code-table") if workers > 1 else None
        try:
            # rendering (or slicing a cache) alternates with encoding; a background render thread next to torch's
            # threads made the dSprites table 4x slower on 2 cores (585 vs 142 s)
            for r_start in range(done, total, render_chunk):
                r_stop = min(total, r_start + render_chunk)
                images = render_configurations(dataset, r_start, r_stop)
                if pool is None:
                    encode_range(images, r_start, 0, len(images), None)
                else:
                    share = -(-len(images) // (workers * build_batch_size)) * build_batch_size
                    futures = [pool.submit(encode_range, images, r_start, a, min(len(images), a + share), 1)
                               for a in range(0, len(images), share)]
                    for future in futures:
                        future.result()
                if progress is not None:
                    progress(r_stop)
        finally:
            if pool is not None:
                pool.shutdown()
        return cls(dataset, mean, logvar, encode_images, batch_size, time.perf_counter() - start_time)

    def representation_fn(self, kind: str, seed: int = 0):
        """Indices (n,) -> codes (n, L) float32, equal to the encoder path's ``representation_fn(kind, seed)`` on the
        images of those indices (same noise stream for ``sampled``)."""
        if kind not in REPRESENTATIONS:
            raise ValueError(f"unknown representation {kind!r}; expected one of {', '.join(REPRESENTATIONS)}")
        generator = torch.Generator().manual_seed(int(seed)) if kind == "sampled" else None
        base = self.dataset.base

        def representation(indices) -> np.ndarray:
            idx = np.asarray(indices)
            if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(f"a code-table representation takes configuration indices (n,), got {idx.dtype} "
                                 f"{idx.shape}; use the IndexedDataset of the table as the dataset")

            def mean_logvar(start: int, stop: int):
                chunk = idx[start:stop]
                if stop - start < MIN_TABLE_CHUNK:  # small batches: encode as the encoder path does
                    return self._encode_images(base.render_all_factors(base.all_factors_of(chunk)))
                return torch.from_numpy(self.mean[chunk]), torch.from_numpy(self.logvar[chunk])

            with torch.inference_mode():
                return chunked_codes(len(idx), self.num_latent, self.batch_size, generator, mean_logvar)

        representation.kind = kind  # type: ignore[attr-defined]
        representation.seed = int(seed)  # type: ignore[attr-defined]
        return representation


def render_configurations(dataset, start: int, stop: int) -> np.ndarray:
    """Images float32 (stop - start, 64, 64, C) of the configurations ``start..stop-1`` of a deterministic dataset:
    its own ``render_configurations`` where it has one (the dataset interface's, possibly from a cached array), else
    rendered from the factors (a dataset that only has what :func:`check_deterministic` asks for)."""
    if hasattr(dataset, "render_configurations"):
        return dataset.render_configurations(start, stop)
    return dataset.render_all_factors(dataset.all_factors_of(np.arange(int(start), int(stop))))


def encoder_images_fn(encoder, device=None) -> Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]:
    """``images (n, 64, 64, C) float32 -> (mean, logvar)`` tensors of ``encoder`` in inference mode, as
    :func:`training.evaluation.representation.make_representation_fn` runs it on one chunk.

    Safe to call from several threads at once (:meth:`CodeTable.build` does): it does not switch the module's
    train / eval mode per call as the representation function does, which the network does not need (it has no
    mode-dependent layers: no dropout, no batch norm) and which concurrent calls would race on."""
    from training.evaluation.representation import check_observations
    if device is None:
        device = next(encoder.parameters()).device
    device = torch.device(device)

    def encode(images):
        obs = check_observations(images, encoder.num_channels)
        with torch.inference_mode():
            return encoder(torch.from_numpy(obs).to(device).permute(0, 3, 1, 2))
    return encode
