"""Study files and presets: validation, expansion, stable run ids, model_num, the paper grid."""
from __future__ import annotations

import pytest

from training.errors import UserError
from training.study.definition import PRESETS, load_study, parse_study, run_id, select_model_num
from training.vocabulary import DATASETS, EVALUATIONS, METHODS, from_model_num

SOURCES = {name: {"kind": "test", "name": name} for name in DATASETS}

TINY = """
name = "tiny"
datasets = ["dsprites_full"]
seeds = [0, 1]
steps = 30
batch_size = 32
[methods]
beta_vae = [1.0, 4.0]
dip_vae_i = [2.0, 10.0]
[protocol]
scale = 0.05
downstream_num_train = [10, 100, 1000]
evaluations = ["mig", "sap_score"]
representations = ["mean", "sampled"]
"""


def test_tiny_study_expands_in_grid_order():
    study = parse_study(TINY)
    runs = study.runs(SOURCES)
    assert study.num_runs == len(runs) == 8
    assert [(r.method, r.hparam_value, r.seed) for r in runs[:3]] == [("beta_vae", 1.0, 0), ("beta_vae", 1.0, 1),
                                                                       ("beta_vae", 4.0, 0)]
    assert runs[0].model_num == 0  # dsprites_full beta_vae beta=1 seed 0
    # dip_vae_i lambda_od = 2 seed 0: dataset 0, config 6*2 + 1 = 13 -> 50 * 13 = 650
    assert (runs[4].method, runs[4].hparam_value, runs[4].model_num) == ("dip_vae_i", 2.0, 650)
    off_grid = parse_study(TINY.replace("beta_vae = [1.0, 4.0]", "beta_vae = [3.0]")).runs(SOURCES)
    assert off_grid[0].model_num is None  # beta = 3 is not a paper value
    cfg = runs[0].config
    assert cfg["hparams"] == {"beta": 1.0} and cfg["steps"] == 30 and cfg["batch_size"] == 32
    assert cfg["protocol"] == {"scale": 0.05, "downstream_num_train": [10, 100, 1000],
                               "evaluations": ["mig", "sap_score"], "representations": ["mean", "sampled"],
                               "kind": "reference"}
    assert cfg["data_source"] == {"kind": "test", "name": "dsprites_full"}
    assert len({r.run_id for r in runs}) == 8


def test_run_ids_are_stable_and_sensitive_to_what_defines_a_run():
    a = parse_study(TINY).runs(SOURCES)
    b = parse_study(TINY.replace('name = "tiny"', 'name = "renamed"')).runs(SOURCES)
    assert [r.run_id for r in a] == [r.run_id for r in b]  # the study's name does not define a run
    # key order in the file does not matter either
    reordered = TINY.replace("beta_vae = [1.0, 4.0]\ndip_vae_i = [2.0, 10.0]", "dip_vae_i = [2, 10]\nbeta_vae = [1, 4]")
    assert [r.run_id for r in parse_study(reordered).runs(SOURCES)] == [r.run_id for r in a]
    changed = [
        TINY.replace("steps = 30", "steps = 31"),
        TINY.replace("batch_size = 32", "batch_size = 16"),
        TINY.replace("scale = 0.05", "scale = 0.1"),
        TINY.replace('evaluations = ["mig", "sap_score"]', 'evaluations = ["mig"]'),
    ]
    for text in changed:
        ids = {r.run_id for r in parse_study(text).runs(SOURCES)}
        assert not ids & {r.run_id for r in a}
    other_source = {k: dict(v, version=2) for k, v in SOURCES.items()}
    assert not {r.run_id for r in parse_study(TINY).runs(other_source)} & {r.run_id for r in a}
    # Adding a seed keeps the old runs' ids: only the new ones need training.
    more = {r.run_id for r in parse_study(TINY.replace("seeds = [0, 1]", "seeds = [0, 1, 2]")).runs(SOURCES)}
    assert {r.run_id for r in a} < more and len(more) == 12
    assert run_id(a[0].config) == a[0].run_id and len(a[0].run_id) == 20
    # A [training] option is part of what defines a run.
    opt = parse_study(TINY.replace("[protocol]", "[training]\nnum_eval_samples = 500\n[protocol]")).runs(SOURCES)
    assert opt[0].config["training"] == {"num_eval_samples": 500} and "training" not in a[0].config
    half = parse_study(TINY.replace("[protocol]", "[training]\nprecision = 'bf16'\n[protocol]")).runs(SOURCES)
    assert half[0].config["training"] == {"precision": "bf16"} and half[0].run_id != a[0].run_id
    assert not {r.run_id for r in opt} & {r.run_id for r in a}


def test_defaults_fill_the_protocol():
    study = parse_study('name="d"\ndatasets=["shapes3d"]\nseeds=3\nsteps=5\n[methods]\nfactor_vae=[10]\n')
    assert study.seeds == (0, 1, 2) and study.batch_size == 64
    assert study.protocol == {"scale": 1.0, "downstream_num_train": [10, 100, 1000, 10000],
                              "evaluations": list(EVALUATIONS), "representations": ["mean", "sampled"],
                              "kind": "reference"}


@pytest.mark.parametrize("edit, message", [
    (("steps = 30", "steps = 30\nlearning_rate = 1"), "unknown key"),
    (('["dsprites_full"]', '["mnist"]'), "unknown dataset 'mnist'"),
    (("dip_vae_i = [2.0, 10.0]", "vae_gan = [1.0]"), "unknown method"),
    (('"sap_score"]', '"irs"]'), "unknown evaluation 'irs'"),
    (("scale = 0.05", "scale = 2.0"), "scale"),
    (("scale = 0.05", "scale = 0.05\nnum_train = 3"), "unknown protocol key"),
    (("seeds = [0, 1]", "seeds = [0, 0]"), "duplicates"),
    (("seeds = [0, 1]", "seeds = 0"), "seeds"),
    (("steps = 30", "steps = -1"), "steps"),
    (("steps = 30", "steps = 1.5"), "steps"),
    (("beta_vae = [1.0, 4.0]", "beta_vae = []"), "beta_vae"),
    (("beta_vae = [1.0, 4.0]", "beta_vae = ['high']"), "beta_vae"),
    (('"mean", "sampled"]', '"median"]'), "unknown representation"),
    (("scale = 0.05", "scale = 0.05\nkind = 'quick'"), "protocol.kind"),
    (('name = "tiny"', ""), "missing required key 'name'"),
    (("[protocol]", "[training]\nnum_eval_samples = -1\n[protocol]"), "num_eval_samples"),
    (("[protocol]", "[training]\nlearning_rate = 1.0\n[protocol]"), r"\[training\]: unknown key\(s\) learning_rate"),
    (("[protocol]", "[training]\nprecision = 'fp16'\n[protocol]"), "precision must be one of fp32, tf32, bf16"),
    (("[protocol]", "[protocol\n"), "not valid TOML"),
])
def test_bad_study_files_give_one_line_errors(edit, message):
    with pytest.raises(UserError, match=message) as info:
        parse_study(TINY.replace(*edit), origin="my.toml")
    assert "\n" not in str(info.value) and str(info.value).startswith("my.toml: ")


def test_load_study_from_file_and_unknown_preset(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    assert load_study(path).name == "tiny"
    with pytest.raises(UserError, match="no study file or preset 'no-such-thing'"):
        load_study("no-such-thing")


def test_paper_preset_is_the_reference_grid():
    study = load_study("paper")
    assert study.steps == 300000 and study.batch_size == 64 and study.protocol["scale"] == 1.0
    assert study.protocol["evaluations"] == list(EVALUATIONS)
    assert study.protocol["downstream_num_train"] == [10, 100, 1000, 10000]
    runs = study.runs(SOURCES)
    assert len(runs) == 12600
    assert sorted(r.model_num for r in runs) == list(range(12600))
    for r in runs[::97]:
        assert from_model_num(r.model_num) == (r.dataset, r.method, r.hparam_value, r.seed)
    (chosen,) = select_model_num(runs, 300)
    assert (chosen.dataset, chosen.method, chosen.hparam_value, chosen.seed) == ("dsprites_full", "factor_vae", 10.0, 0)
    (chosen,) = select_model_num(runs, 10800)
    assert chosen.dataset == "shapes3d" and chosen.method == "beta_vae" and chosen.seed == 0
    with pytest.raises(UserError):
        select_model_num(runs, 12600)


def test_smoke_and_mini_presets_meet_their_brief():
    smoke = load_study("smoke")
    assert set(smoke.methods) == set(METHODS) and all(len(v) >= 2 for v in smoke.methods.values())
    assert len(smoke.datasets) >= 2 and len(smoke.seeds) >= 2
    assert set(smoke.datasets) <= {"dsprites_full", "color_dsprites", "shapes3d"}  # procedural only
    assert smoke.protocol["evaluations"] == list(EVALUATIONS) and smoke.protocol["scale"] < 1
    assert smoke.notes and "undertrained" in smoke.notes
    mini = load_study("mini")
    # mini's brief: the study's kind of findings within ~4 h on 2 cores (the budget is worked out in the file):
    # several methods x several values x several seeds, past the ~5k steps where disentanglement starts to show
    assert len(mini.methods) >= 3 and all(len(v) >= 3 for v in mini.methods.values()) and len(mini.seeds) >= 2
    assert mini.steps >= 5000 and mini.protocol["evaluations"] == list(EVALUATIONS)
    assert mini.notes and "undertrained" in mini.notes
    for name in PRESETS:
        assert load_study(name).name == name


def test_the_published_mini_store_resumes_with_nothing_recomputed(tmp_path):
    """reports/mini/study.sqlite was written before the package layout changed: the same study, expanded by today's
    code, must find every run done (run ids are a function of the run's configuration, not of the code's layout)."""
    import shutil
    from pathlib import Path

    from training.study import load_study, sweep

    published = Path(__file__).resolve().parent.parent / "reports" / "mini" / "study.sqlite"
    copy = tmp_path / "mini.sqlite"
    shutil.copy(published, copy)

    def never(*args, **kwargs):
        raise AssertionError("a run was recomputed")

    summary = sweep(load_study("mini"), copy, run_fn=never, progress=False)
    assert summary.total == 27 and summary.already_done == 27 and summary.done == 0 and summary.ok
