"""The study's shared network (:mod:`training.models.architecture`) and its six objectives as pure tensor functions
(:mod:`training.models.objectives`). Training itself lives in :mod:`training.train`."""
