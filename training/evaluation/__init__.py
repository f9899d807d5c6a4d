"""Evaluation: score a trained model with the study's nine evaluations on both representations.

* :func:`evaluate_model` / :func:`evaluate_model_records` (:mod:`training.evaluation.scoring`): every planned
  (representation, evaluation) of one model, seeded as the reference pipeline seeds them; result keys as the
  reference names them, values floats (accuracies and scores in [0, 1] unless a key says otherwise).
* :mod:`training.evaluation.metrics`: one module per metric, each a public sampling wrapper around a pure array core
  (codes (D, N) and factors (K, N) in, scores out); :func:`~training.evaluation.metrics.run_metric` runs one.
* :mod:`training.evaluation.representation`: the ``mean`` and ``sampled`` representation functions of an encoder;
  :mod:`training.evaluation.code_table`: every factor configuration of a deterministic dataset encoded once.
* the analyses of a saved model (``dstudy models``; :mod:`training.evaluation.model_analyses`): Theorem 1's rotation
  (:mod:`~training.evaluation.rotation`) and likelihood (:mod:`~training.evaluation.likelihood`), UDR
  (:mod:`training.evaluation.metrics.udr`), evaluation replicates (:mod:`~training.evaluation.replicates`).
"""
from training.evaluation.scoring import (
    EVALUATION_SEEDS, EvaluationError, EvaluationRecord, Protocol, evaluate_model, evaluate_model_records,
    resolve_protocol, use_code_table,
)
from training.evaluation.replicates import replicate_name, replicate_seeds, run_seeded

__all__ = ["EVALUATION_SEEDS", "EvaluationError", "EvaluationRecord", "Protocol", "evaluate_model",
           "evaluate_model_records", "replicate_name", "replicate_seeds", "resolve_protocol", "run_seeded",
           "use_code_table"]
