"""training.study.worker.execute_pack with the training and evaluation functions replaced by recording doubles:
packs go to train_packed, single runs to train_model, failures become per-run errors, records become outcomes."""
from __future__ import annotations

import types

import pytest

import training.evaluation.scoring
import training.engine.train
from training.study import worker as runner
from training.engine.options import TrainingOptions
from training.study.definition import parse_study

STUDY = """
name = "r"
datasets = ["dsprites_full"]
seeds = [0, 1, 2]
steps = 7
batch_size = 4
[methods]
beta_vae = [1.0]
[protocol]
scale = 0.5
evaluations = ["mig"]
representations = ["mean"]
[training]
num_eval_samples = 11
"""


class FakeModel:
    def __init__(self, hparams, seed):
        self.hparams, self.seed = hparams, seed
        self.train_results = {"loss": 10.0 + seed, "elbo": -5.0, "note": "text is dropped"}


@pytest.fixture
def pack():
    runs = parse_study(STUDY).runs({"dsprites_full": {"kind": "fake"}})
    return [{"run_id": r.run_id, "config": r.config} for r in runs]


@pytest.fixture
def doubles(monkeypatch):
    calls = {"train_model": [], "train_packed": [], "evaluate": []}
    dataset = types.SimpleNamespace(name="dsprites_full")
    monkeypatch.setattr(runner, "_DATASETS", {"dsprites_full": dataset})

    def train_model(ds, method, hparams, seed, steps, batch_size=64, device=None, checkpoint_dir=None, **options):
        calls["train_model"].append((ds, method, hparams, seed, steps, batch_size, device, checkpoint_dir, options))
        if seed == 1:
            raise training.engine.train.TrainingDivergedError("loss became nan at step 3")
        return FakeModel(hparams, seed)

    def evaluate_model_records(model, ds, evaluations=None, protocol=None, code_table=False):
        calls["evaluate"].append((model.seed, evaluations, protocol))
        calls.setdefault("code_table", []).append(code_table)
        return [training.evaluation.scoring.EvaluationRecord("mean", "mig", {"discrete_mig": 0.1 * model.seed}, 0.5, None),
                training.evaluation.scoring.EvaluationRecord("mean", "dci", {}, 0.25, "ValueError: boom")]

    monkeypatch.setattr(training.engine.train, "train_model", train_model)
    monkeypatch.setattr(training.evaluation.scoring, "evaluate_model_records", evaluate_model_records)
    return calls, dataset


def test_single_runs_train_one_by_one_and_failures_stay_per_run(pack, doubles, monkeypatch):
    calls, dataset = doubles
    outcomes = [runner.execute_pack([item], device="cpu", threads=1)[0] for item in pack]
    assert [o.run_id for o in outcomes] == [p["run_id"] for p in pack]
    assert [c[3] for c in calls["train_model"]] == [0, 1, 2]
    ds, method, hparams, seed, steps, batch, device, ckpt, options = calls["train_model"][0]
    assert (ds, method, hparams, steps, batch, device, ckpt) == (dataset, "beta_vae", {"beta": 1.0}, 7, 4, "cpu", None)
    assert options == {"options": TrainingOptions(num_eval_samples=11)}   # the study's [training] table
    ok, diverged, ok2 = outcomes
    assert diverged.error.startswith("TrainingDivergedError: loss became nan at step 3")
    assert not diverged.scores
    assert ok.ok and ok.train_results == {"loss": 10.0, "elbo": -5.0}
    assert ok2.scores == {("mean", "mig"): {"discrete_mig": pytest.approx(0.2)}, ("mean", "dci"): {}}
    assert ok2.evaluations == {("mean", "mig"): (0.5, None), ("mean", "dci"): (0.25, "ValueError: boom")}
    assert calls["evaluate"][0][1] == ["mig"] and calls["evaluate"][0][2]["scale"] == 0.5
    assert calls["code_table"] == [False, False]  # the double dataset is not deterministic, and the protocol small
    assert ok.train_seconds >= 0 and ok.eval_seconds >= 0
    # every finished run carries where and how it was computed; a failed run has nothing to record
    import torch

    assert ok.provenance["threads"] == "1" and ok.provenance["trainer"] == "train_model"
    assert ok.provenance["precision"] == "fp32" and ok.provenance["device"] == "cpu"
    assert ok.provenance["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert ok.provenance["torch"] == torch.__version__ and ok.provenance["commit"]
    assert not diverged.provenance


def test_the_runner_evaluates_on_a_code_table_where_it_pays_off(pack, doubles, monkeypatch):
    calls, dataset = doubles
    dataset.deterministic_render, dataset.num_configurations = True, 100  # mig at scale 0.5: 5,000 images > 100
    FakeModel.code_table = lambda self, ds: None
    try:
        for item in pack:
            runner.execute_pack([item], device="cpu")
        assert calls["code_table"] == [True, True]
        dataset.num_configurations = 10**6
        for item in pack:
            runner.execute_pack([item], device="cpu")
        assert calls["code_table"][2:] == [False, False]
    finally:
        del FakeModel.code_table


def test_packs_use_train_packed(pack, doubles, monkeypatch):
    calls, dataset = doubles
    packed = types.ModuleType("training.engine.packed")

    def train_packed(ds, method, runs, steps, batch_size=64, device=None, **options):
        calls["train_packed"].append((ds, method, runs, steps, batch_size, device, options))
        return [FakeModel(h, s) if s != 2 else ValueError("bad hyperparameter") for h, s in runs]

    packed.train_packed = train_packed
    monkeypatch.setitem(__import__("sys").modules, "training.engine.packed", packed)
    outcomes = runner.execute_pack(pack)
    assert not calls["train_model"]
    assert calls["train_packed"] == [(dataset, "beta_vae", [({"beta": 1.0}, 0), ({"beta": 1.0}, 1),
                                                            ({"beta": 1.0}, 2)], 7, 4, None,
                                      {"options": TrainingOptions(num_eval_samples=11)})]
    assert [o.ok for o in outcomes] == [True, True, False]
    assert outcomes[2].error.startswith("ValueError: bad hyperparameter")
    # A pack of one never goes through train_packed...
    runner.execute_pack(pack[:1])
    assert len(calls["train_packed"]) == 1 and len(calls["train_model"]) == 1
    # ... unless its study asks for mixed precision, which only the packed trainer has
    bf16 = parse_study(STUDY + 'precision = "bf16"\n').runs({"dsprites_full": {"kind": "fake"}})[:1]
    runner.execute_pack([{"run_id": r.run_id, "config": r.config} for r in bf16])
    assert len(calls["train_packed"]) == 2 and len(calls["train_model"]) == 1
    assert calls["train_packed"][1][2] == [({"beta": 1.0}, 0)]
    assert calls["train_packed"][1][6] == {"options": TrainingOptions(num_eval_samples=11, precision="bf16")}
    # an explicit fp32 is train_model's own precision: a run of one trains there
    fp32 = parse_study(STUDY + 'precision = "fp32"\n').runs({"dsprites_full": {"kind": "fake"}})[:1]
    runner.execute_pack([{"run_id": r.run_id, "config": r.config} for r in fp32])
    assert len(calls["train_packed"]) == 2
    assert calls["train_model"][-1][8] == {"options": TrainingOptions(num_eval_samples=11, precision="fp32")}


def test_a_dataset_that_cannot_load_fails_every_run_of_the_pack(pack, monkeypatch):
    monkeypatch.setattr(runner, "_DATASETS", {})

    def boom(name, data_dir=None):
        raise FileNotFoundError(f"no files for {name}")

    monkeypatch.setattr("training.data.get_dataset", boom)
    outcomes = runner.execute_pack(pack)
    assert [o.error.split(" [")[0] for o in outcomes] == ["FileNotFoundError: no files for dsprites_full"] * 3
