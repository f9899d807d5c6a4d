"""evaluate_model: the reference pipeline's seeds, the [protocol] table, error isolation, reproducibility."""
from __future__ import annotations

import numpy as np
import pytest

from training.evaluation import scoring as ev
from training.evaluation.metrics import run_metric as run_evaluation

# training/evaluation/metrics/REFERENCE.md 3 (dlib_reproduce, master RandomState(0))
SPEC_SEEDS = {
    "beta_vae_sklearn": (3071714933, 1650906866), "dci": (3626093760, 1879422756),
    "downstream_task_boosted_trees": (2588848963, 1277901399),
    "downstream_task_logistic_regression": (3684848379, 3830135878),
    "factor_vae_metric": (2340255427, 243580376), "mig": (3638918503, 4138900056),
    "modularity_explicitness": (1819583497, 1171049868), "sap_score": (2678185683, 1646868794),
    "unsupervised": (2774094101, 2051556033),
}


class TinyImages:
    """Dataset interface with 64x64x1 images: factor k sets the brightness of a 16x16 patch (k-th patch of the top
    row); observations add no randomness."""
    factors_num_values = [3, 4, 5]
    num_factors = 3
    observation_shape = (64, 64, 1)
    factor_names = ["a", "b", "c"]

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(s, size=num) for s in self.factors_num_values], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        obs = np.zeros((len(factors), 64, 64, 1), dtype=np.float32)
        for k, size in enumerate(self.factors_num_values):
            obs[:, :16, 16 * k:16 * (k + 1), 0] = (factors[:, k] / (size - 1.0))[:, None, None]
        return obs

    def sample(self, num, random_state):
        f = self.sample_factors(num, random_state)
        return f, self.sample_observations_from_factors(f, random_state)

    def sample_observations(self, num, random_state):
        return self.sample(num, random_state)[1]


class FakeModel:
    """A fixed random linear map of the image to 4 codes; ``sampled`` adds unit-scaled noise from a generator seeded
    when the function is created. ``fail_seed``: the representation function for that seed raises.

    The map is a NumPy sum of products, not a BLAS matrix product: a BLAS kernel may split a product's sums over
    its threads, so its last bits would depend on the thread count, which ``n_jobs`` changes."""

    def __init__(self, fail_seed=None):
        self.weights = np.random.RandomState(0).randn(64 * 64, 4).astype(np.float32) / 64.0
        self.fail_seed = fail_seed
        self.seeds = []

    def representation_fn(self, kind, seed=0):
        self.seeds.append((kind, seed))
        if seed == self.fail_seed:
            raise RuntimeError("encoder exploded")
        noise = np.random.RandomState(seed)

        def fn(obs):
            codes = (obs.reshape(len(obs), -1, 1) * self.weights[None]).sum(axis=1)
            return codes + 0.1 * noise.randn(*codes.shape).astype(np.float32) if kind == "sampled" else codes
        return fn


SMALL = {"scale": 0.006, "downstream_num_train": [10, 20]}


def test_seeds_are_the_reference_pipelines():
    for name, (mean_seed, sampled_seed) in SPEC_SEEDS.items():
        assert ev.EVALUATION_SEEDS[("mean", name)] == mean_seed
        assert ev.EVALUATION_SEEDS[("sampled", name)] == sampled_seed
    assert ev.POSTPROCESS_SEEDS == {"mean": 2357136044, "sampled": 2546248239}


def test_protocol_table_validation():
    assert ev.resolve_protocol(None) == ev.Protocol()
    p = ev.resolve_protocol({"scale": 0.5, "evaluations": ["mig", "dci"], "representations": ["sampled"],
                             "kind": "fast", "downstream_num_train": [10, 100]})
    assert p.evaluations == ("mig", "dci") and p.representations == ("sampled",) and p.fast
    for bad, match in [({"scales": 1}, "unknown protocol key"), ({"kind": "quick"}, "kind"),
                       ({"scale": 0}, "scale"), ({"scale": "x"}, "scale"),
                       ({"evaluations": ["mig", "beta"]}, "unknown evaluation"),
                       ({"representations": "mean"}, "representations"),
                       ({"downstream_num_train": [10, -1]}, "downstream_num_train")]:
        with pytest.raises(ValueError, match=match):
            ev.resolve_protocol(bad)


def test_scale_multiplies_sizes_except_downstream_training_sizes():
    p = {"scale": 0.05}
    assert ev.evaluation_overrides("dci", p) == {"num_train": 500, "num_test": 250}
    assert ev.evaluation_overrides("beta_vae_sklearn", p) == {"num_train": 500, "num_eval": 250}
    assert ev.evaluation_overrides("factor_vae_metric", p) == {"num_train": 500, "num_eval": 250,
                                                               "num_variance_estimate": 500}
    assert ev.evaluation_overrides("downstream_task_boosted_trees", p) == {"num_test": 250}
    assert ev.evaluation_overrides("downstream_task_logistic_regression",
                                   {"downstream_num_train": [10, 100]}) == {"num_train": [10, 100]}
    assert ev.evaluation_overrides("mig", None) == {}
    assert ev.evaluation_overrides("mig", {"scale": 1e-9}) == {"num_train": 1}


def test_evaluate_model_uses_each_evaluations_seed_and_is_reproducible():
    data, model = TinyImages(), FakeModel()
    names = ["mig", "dci", "downstream_task_boosted_trees"]
    results = ev.evaluate_model(model, data, names, SMALL)
    assert set(results) == {(rep, name) for rep in ("mean", "sampled") for name in names}
    assert set(results[("mean", "downstream_task_boosted_trees")]) >= {"10:mean_test_accuracy",
                                                                              "20:test_accuracy_factor_2"}
    assert ("sampled", ev.EVALUATION_SEEDS[("sampled", "dci")]) in model.seeds
    # identical to running the evaluation by hand with its seed (and independent of the other evaluations)
    for rep in ("mean", "sampled"):
        seed = ev.EVALUATION_SEEDS[(rep, "dci")]
        direct = run_evaluation("dci", data, FakeModel().representation_fn(rep, seed=seed),
                                np.random.RandomState(seed), num_train=60, num_test=30)
        assert results[(rep, "dci")] == direct
    # pooled fits (n_jobs > 1) give the same numbers; a failure stays with its evaluation
    failing = FakeModel(fail_seed=ev.EVALUATION_SEEDS[("sampled", "dci")])
    seen = []
    records = ev.evaluate_model_records(failing, data, names, SMALL, n_jobs=2, on_record=seen.append)
    assert [(r.representation, r.evaluation) for r in records] == [(rep, n) for rep in ("mean", "sampled")
                                                                    for n in names]
    assert sorted(map(id, seen)) == sorted(map(id, records))
    for r in records:
        if (r.representation, r.evaluation) == ("sampled", "dci"):
            assert r.error == "RuntimeError: encoder exploded" and r.scores == {}
        else:
            assert r.error is None and r.scores == results[(r.representation, r.evaluation)]


def test_a_failing_evaluation_is_recorded_and_the_others_still_run():
    data = TinyImages()
    model = FakeModel(fail_seed=ev.EVALUATION_SEEDS[("mean", "mig")])
    seen = []
    records = ev.evaluate_model_records(model, data, ["mig", "sap_score"], SMALL, on_record=seen.append)
    assert [(r.representation, r.evaluation) for r in records] == [
        ("mean", "mig"), ("mean", "sap_score"), ("sampled", "mig"), ("sampled", "sap_score")]
    assert records[0].error == "RuntimeError: encoder exploded" and records[0].scores == {}
    assert all(r.error is None and r.scores and r.seconds > 0 for r in records[1:])
    assert seen == records
    # the dict form raises: its caller decides what a failed evaluation means
    with pytest.raises(ev.EvaluationError, match="mig \\(mean\\) failed: RuntimeError: encoder exploded") as info:
        ev.evaluate_model(model, data, ["mig", "sap_score"], SMALL)
    assert [(r.representation, r.evaluation) for r in info.value.records] == [("mean", "mig")]


def test_evaluate_model_takes_a_dataset_name_like_train_model(monkeypatch):
    import training.data

    data = TinyImages()
    monkeypatch.setattr(training.data, "get_dataset", lambda name, data_dir=None: data)
    by_name = ev.evaluate_model(FakeModel(), "dsprites_full", ["mig"], SMALL)
    assert by_name == ev.evaluate_model(FakeModel(), data, ["mig"], SMALL)
    with pytest.raises(ValueError, match="representation_fn"):
        ev.evaluate_model("dsprites_full", data, ["mig"], SMALL)


def test_protocol_selects_evaluations_representations_and_fast_kind():
    data = TinyImages()
    p = dict(SMALL, evaluations=["dci", "mig"], representations=["mean"], kind="fast")
    fast = ev.evaluate_model(FakeModel(), data, protocol=p)
    assert set(fast) == {("mean", "mig"), ("mean", "dci")}
    reference = ev.evaluate_model(FakeModel(), data, protocol=dict(p, kind="reference"))
    assert fast[("mean", "mig")] == reference[("mean", "mig")]  # MIG has no fast variant
    assert set(fast[("mean", "dci")]) == set(reference[("mean", "dci")])
    # an explicit evaluations argument takes precedence over the table's
    assert set(ev.evaluate_model(FakeModel(), data, ["mig"], p)) == {("mean", "mig")}
    with pytest.raises(ValueError, match="n_jobs"):
        ev.evaluate_model(FakeModel(), data, ["mig"], p, n_jobs=0)



def test_per_evaluation_overrides_apply_after_scale_and_are_validated():
    p = {"scale": 0.01, "overrides": {"beta_vae_sklearn": {"batch_size": 8, "num_train": 7}}}
    assert ev.evaluation_overrides("beta_vae_sklearn", p) == {"num_train": 7, "num_eval": 50, "batch_size": 8}
    assert ev.evaluation_overrides("mig", p) == {"num_train": 100}  # other evaluations untouched
    for bad, match in [({"overrides": {"beta": {"batch_size": 8}}}, "unknown evaluation"),
                       ({"overrides": {"mig": {"batch_sizes": 8}}}, "unknown parameter"),
                       ({"overrides": {"mig": 3}}, "table"), ({"overrides": [1]}, "table")]:
        with pytest.raises(ValueError, match=match):
            ev.resolve_protocol(bad)


def test_study_file_overrides_enter_the_run_config_only_when_set():
    from training.study.definition import parse_study

    base = 'name = "t"\ndatasets = ["dsprites_full"]\nseeds = [0]\nsteps = 5\n[methods]\nbeta_vae = [1.0]\n'
    plain = parse_study(base)
    with_override = parse_study(base + "[protocol.overrides.factor_vae_metric]\nbatch_size = 8\n")
    sources = {"dsprites_full": {"kind": "procedural"}}
    assert "overrides" not in plain.runs(sources)[0].config["protocol"]
    run = with_override.runs(sources)[0]
    assert run.config["protocol"]["overrides"] == {"factor_vae_metric": {"batch_size": 8}}
    assert run.run_id != plain.runs(sources)[0].run_id
    assert ev.evaluation_overrides("factor_vae_metric", run.config["protocol"])["batch_size"] == 8


def test_pooled_run_gives_the_serial_numbers_for_the_evaluations_run_beside_the_pool():
    """n_jobs=2 runs the non-pooled evaluations with one BLAS thread while the workers fit (here dci's): same numbers
    as n_jobs=1, where they run with the default BLAS threads."""
    data, protocol = TinyImages(), {"scale": 0.02, "downstream_num_train": [10, 50],
                                    "overrides": {"beta_vae_sklearn": {"num_train": 50, "num_eval": 25},
                                                  "factor_vae_metric": {"num_train": 50, "num_eval": 25}}}
    names = [n for n in ev.EVALUATIONS if n not in ev.DOWNSTREAM_EVALUATIONS]
    serial = ev.evaluate_model_records(FakeModel(), data, names, protocol, n_jobs=1)
    pooled = ev.evaluate_model_records(FakeModel(), data, names, protocol, n_jobs=2)
    assert [(r.representation, r.evaluation) for r in pooled] == [(r.representation, r.evaluation) for r in serial]
    for a, b in zip(serial, pooled):
        assert a.error is None and b.error is None, (a.error, b.error)
        assert a.scores == b.scores, (a.representation, a.evaluation)


def test_expected_encodings_count_the_images_each_evaluation_encodes():
    from training.evaluation.metrics.registry import default_protocol
    counts = {name: ev.expected_encodings(name, default_protocol(name)) for name in ev.EVALUATIONS}
    assert counts["beta_vae_sklearn"] == 2 * 64 * 15000          # 1.92M: a pair of 64-image batches per point
    assert counts["factor_vae_metric"] == 10000 + 64 * 15000     # variance estimate + one batch per vote
    assert counts["downstream_task_boosted_trees"] == 11110 + 4 * 5000
    assert counts["mig"] == counts["unsupervised"] == 10000 and counts["dci"] == counts["sap_score"] == 15000


def test_code_table_is_chosen_for_deterministic_datasets_when_it_encodes_fewer_images():
    class Data:
        deterministic_render, num_configurations = True, 737280
    assert ev.use_code_table(Data())                                    # ~6.1M images at the study's sizes
    assert not ev.use_code_table(Data(), {"scale": 0.1})               # ~0.6M
    assert ev.use_code_table(Data(), {"scale": 0.2})                   # ~1.2M
    assert not ev.use_code_table(Data(), evaluations=["mig", "dci"])   # 50,000 images
    assert not ev.use_code_table(Data(), {"representations": ["mean"], "scale": 0.2})  # ~0.6M for one
    Data.deterministic_render = False
    assert not ev.use_code_table(Data())
