"""The analyses that need a trained model itself, not only its stored scores: what ``dstudy models`` computes for a
model file, as :class:`~training.evaluation.scoring.EvaluationRecord` s the store keeps beside the study's scores.

Every function takes a :class:`~training.engine.train.TrainedModel` (or several), a dataset object and the study's
``[protocol]`` table, and returns records; none writes to the store. What each stores (``representation``,
``metric``: keys):

* :func:`rotation_records` - Theorem 1 (a): ``rotated``, each headline evaluation: the same keys as ``mean``. The six
  headline metrics (those of :data:`training.vocabulary.METRIC_KEYS` the protocol evaluates) on ``x -> R mu(x)``
  with R = :func:`training.evaluation.rotation.study_rotation`, seeded with the SAME seeds as the stored ``mean``
  scores (``EVALUATION_SEEDS[("mean", name)]``): the two differ only by the rotation, so analysis can pair them.
* :func:`likelihood_record` - Theorem 1 (b): ``model``, ``likelihood``: ``log_likelihood`` and
  ``log_likelihood_rotated`` (IWAE estimates of log p(x), nats per observation, averaged over the observations),
  ``max_abs_difference`` (the largest per-observation |difference|, nats), ``num_observations``, ``num_samples``
  (:mod:`training.evaluation.likelihood`).
* :func:`replicate_records` - ``mean~r<r>``, each headline evaluation: the ``mean`` scores again with replicate r's
  seeds (:mod:`training.evaluation.replicates`).
* :func:`udr_records` - ``mean``, ``udr``: ``udr``, ``num_informative_latents``, ``num_partners`` for the models of
  one configuration, each against the others (:mod:`training.evaluation.metrics.udr`).
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from training.evaluation.likelihood import (LIKELIHOOD_SEED, NUM_OBSERVATIONS, NUM_SAMPLES, DiagonalVAE,
                                            iwae_log_likelihoods)
from training.evaluation.metrics.udr import NUM_POINTS, UDR_SEED, gaussian_kl_per_latent, udr_scores
from training.evaluation.replicates import replicate_name, replicate_seeds, run_seeded
from training.evaluation.rotation import RotatedModel, RotatedVAE, study_rotation
from training.evaluation.scoring import EVALUATION_SEEDS, EvaluationRecord, _error, resolve_protocol
from training.vocabulary import EVALUATIONS, METRIC_KEYS

#: The six headline evaluations (vocabulary order).
HEADLINE_EVALUATIONS: tuple[str, ...] = tuple(e for e in EVALUATIONS if e in {m for m, _ in METRIC_KEYS.values()})
ROTATED = "rotated"
MODEL = "model"
LIKELIHOOD = "likelihood"
UDR = "udr"


def headline_evaluations(protocol) -> tuple[str, ...]:
    """The headline evaluations a study's protocol runs (the ones that have stored ``mean`` scores to pair with)."""
    p = resolve_protocol(protocol)
    return tuple(e for e in HEADLINE_EVALUATIONS if e in p.evaluations)


def rotation_records(model, dataset, protocol, rotation: np.ndarray | None = None,
                     evaluations: Sequence[str] | None = None) -> list[EvaluationRecord]:
    """Theorem 1 (a): the headline metrics of the rotated ``mean`` representation, with the ``mean`` seeds."""
    names = headline_evaluations(protocol) if evaluations is None else tuple(evaluations)
    rotation = study_rotation(model.num_latent) if rotation is None else rotation
    representation_fn = RotatedModel(model, rotation).representation_fn("mean")
    seeds = {name: EVALUATION_SEEDS[("mean", name)] for name in names}
    return run_seeded(representation_fn, dataset, names, seeds, protocol, ROTATED)


def replicate_records(model, dataset, protocol, r: int,
                      evaluations: Sequence[str] | None = None) -> list[EvaluationRecord]:
    """Replicate ``r`` (>= 1) of the headline metrics of the ``mean`` representation."""
    names = headline_evaluations(protocol) if evaluations is None else tuple(evaluations)
    return run_seeded(model.representation_fn("mean"), dataset, names, replicate_seeds(r), protocol,
                      replicate_name(r))


def likelihood_record(model, dataset, rotation: np.ndarray | None = None, num_observations: int = NUM_OBSERVATIONS,
                      num_samples: int = NUM_SAMPLES, seed: int = LIKELIHOOD_SEED) -> EvaluationRecord:
    """Theorem 1 (b): IWAE log p(x) of the trained model and of its rotated twin on the same observations (drawn
    with ``np.random.RandomState(seed)``) with the same importance noise."""
    start = time.perf_counter()
    try:
        rotation = study_rotation(model.num_latent) if rotation is None else rotation
        observations = dataset.sample_observations(int(num_observations), np.random.RandomState(seed))
        vae = model.vae
        if next(vae.parameters()).device.type == "cpu":
            fast_cpu_decoder(vae)
        out = iwae_log_likelihoods(vae, observations, {"trained": DiagonalVAE(vae), "rotated": RotatedVAE(vae, rotation)},
                                   num_samples=num_samples, seed=seed)
        scores = {"log_likelihood": float(out["trained"].mean()),
                  "log_likelihood_rotated": float(out["rotated"].mean()),
                  "max_abs_difference": float(np.abs(out["trained"] - out["rotated"]).max()),
                  "num_observations": float(len(out["trained"])), "num_samples": float(num_samples)}
        return EvaluationRecord(MODEL, LIKELIHOOD, scores, time.perf_counter() - start, None)
    except Exception as exc:  # noqa: BLE001 - recorded as this analysis' error
        return EvaluationRecord(MODEL, LIKELIHOOD, {}, time.perf_counter() - start, _error(exc))


def fast_cpu_decoder(vae) -> None:
    """Give ``vae``'s decoder the layout the CPU trainer uses (channels_last, the output layer by phases; a speed
    choice: about twice as fast here, equal up to float32 rounding). The likelihood decodes 100 samples per
    observation; the metrics use only the encoder, which this leaves as it is."""
    from training.kernels.cpu import phase_output

    vae.decoder.to(memory_format=torch.channels_last)
    vae.decoder.memory_format = torch.channels_last
    vae.decoder.output = phase_output


def encode_gaussian(model, observations: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's (mean, logvar), each (N, d) float64, of NHWC observations (N, 64, 64, C)."""
    from training.evaluation.representation import check_observations

    obs = check_observations(observations, model.num_channels)
    encoder = model.vae.encoder
    device = next(encoder.parameters()).device
    means, logvars = [], []
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            for start in range(0, obs.shape[0], batch_size):
                chunk = torch.from_numpy(obs[start:start + batch_size]).to(device).permute(0, 3, 1, 2)
                mean, logvar = encoder(chunk)
                means.append(mean.double().cpu().numpy())
                logvars.append(logvar.double().cpu().numpy())
    finally:
        encoder.train(was_training)
    return np.concatenate(means), np.concatenate(logvars)


def udr_inputs(dataset, num_points: int = NUM_POINTS, seed: int = UDR_SEED) -> np.ndarray:
    """The observations every model of ``dataset`` is encoded on for UDR."""
    return dataset.sample_observations(int(num_points), np.random.RandomState(seed))


def udr_records(models: Sequence, dataset, observations: np.ndarray | None = None) -> list[EvaluationRecord]:
    """UDR of the models of ONE configuration (each against the others), one record per model, in order. The
    seconds of each record are its share of the whole computation."""
    start = time.perf_counter()
    try:
        obs = udr_inputs(dataset) if observations is None else observations
        encoded = [encode_gaussian(m, obs) for m in models]
        codes = np.stack([mean for mean, _ in encoded])
        kl = np.stack([gaussian_kl_per_latent(mean, logvar) for mean, logvar in encoded])
        result = udr_scores(codes, kl)
        seconds = (time.perf_counter() - start) / max(len(models), 1)
        return [EvaluationRecord("mean", UDR, {"udr": float(result["udr"][i]),
                                               "num_informative_latents": float(result["num_informative"][i]),
                                               "num_partners": float(result["num_partners"][i])}, seconds, None)
                for i in range(len(models))]
    except Exception as exc:  # noqa: BLE001
        seconds = (time.perf_counter() - start) / max(len(models), 1)
        return [EvaluationRecord("mean", UDR, {}, seconds, _error(exc)) for _ in models]
