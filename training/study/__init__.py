"""Studies and sweeps: what to compute, and computing it into a results store.

* :mod:`training.study.definition`: a study (TOML file or preset: ``smoke``, ``mini``, ``paper``, ``gpu`` in
  ``presets/``) expanded into runs with stable ids (:func:`load_study`, :class:`Study`).
* :func:`sweep` (:mod:`training.study.driver`): the driver, the only writer of the store; computes a study's
  missing runs on a Dask LocalCluster or an existing cluster, resumable after any interruption.
* :mod:`training.study.worker`: what a worker runs for a pack of runs (train, evaluate, return plain results with
  their provenance).
* :mod:`training.study.estimate`: calibrate on this machine and project a study's wall time.
"""
from training.study.definition import PRESETS, Study, load_study, parse_study, run_id
from training.study.driver import SweepSummary, sweep

__all__ = ["PRESETS", "Study", "SweepSummary", "load_study", "parse_study", "run_id", "sweep"]
