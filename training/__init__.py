"""dstudy.training: everything that fills the results store.

Datasets (:mod:`training.data`), models and objectives (:mod:`training.models`), training (:mod:`training.train`),
evaluations (:mod:`training.metrics`, :mod:`training.evaluate`), the study runner and the store writer
(:mod:`training.study`, :mod:`training.store`) and the command line (:mod:`training.cli`).
"""
__version__ = "0.1.0"
