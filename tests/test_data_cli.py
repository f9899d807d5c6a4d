"""``dstudy data info`` / ``dstudy data preview`` and the traversal grid behind the preview."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from training.cli import main
from training.data import get_dataset, render_dsprites
from training.data.preview import TILE, traversal_tiles, traversal_values


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DSTUDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DSTUDY_DATA", raising=False)
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)


def test_traversal_values():
    assert traversal_values(3, 10).tolist() == [0, 1, 2]
    assert traversal_values(40, 10).tolist()[0] == 0 and traversal_values(40, 10).tolist()[-1] == 39
    assert len(traversal_values(40, 10)) == 10 and np.all(np.diff(traversal_values(40, 10)) > 0)


def test_traversal_rows_vary_one_factor_from_the_base_sample():
    ds = get_dataset("dsprites_full")
    rows = traversal_tiles(ds, seed=4, max_columns=5)
    assert [name for name, _ in rows] == ds.factor_names
    base = ds.sample_factors(1, np.random.RandomState(4))[0]
    for j, (_, tiles) in enumerate(rows):
        values = traversal_values(ds.factors_num_values[j], 5)
        factors = np.repeat(base[None], len(values), axis=0)
        factors[:, j] = values
        expected = render_dsprites(*factors.T) * 255
        assert tiles.shape == (len(values), 64, 64, 3)
        assert np.array_equal(tiles[..., 0], expected) and np.array_equal(tiles[..., 2], expected)


def test_traversal_keeps_nuisance_draws_fixed():
    ds = get_dataset("color_dsprites")
    _, tiles = traversal_tiles(ds, seed=1, max_columns=4)[3]      # posX row
    colours = [t.reshape(-1, 3)[t.reshape(-1, 3).sum(1) > 0][0] for t in tiles]
    assert all(np.array_equal(c, colours[0]) for c in colours)     # one sprite colour across the row


def test_cli_info(capsys):
    assert main(["data", "info", "shapes3d"]) == 0
    out = capsys.readouterr().out
    for text in ("floor_hue", "orientation  15", "(64, 64, 3)", '"kind": "procedural"', "memory:", "480,000"):
        assert text in out


def test_cli_preview_writes_png(tmp_path, capsys):
    out = tmp_path / "sub" / "p.png"
    assert main(["data", "preview", "dsprites_full", "--out", str(out), "--seed", "2"]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape[0] == 5 * (TILE + 2) + 2          # one row per factor
    assert image.shape[2] == 3
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["data", "info", "mnist"], "unknown dataset 'mnist'"),
    (["data", "preview", "dsprites_full", "--out", "x.jpg"], "must be a .png"),
    (["data", "preview", "dsprites_full", "--seed", "-1"], "--seed"),
    (["data", "info", "cars3d"], "cars3d needs the original files"),
])
def test_cli_bad_input_is_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_data_dir_option(tmp_path, capsys):
    assert main(["data", "info", "smallnorb", "--data-dir", str(tmp_path)]) == 2
    assert str(tmp_path / "small_norb") in capsys.readouterr().err
