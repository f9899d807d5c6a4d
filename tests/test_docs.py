"""The code, the notebooks and the report cite the paper or documents inside the repository, never files a user does
not have; the public API of both packages is declared."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"DESIGN\.md|spec/[a-z]+\.md|\bspec \d|\bspec section\b")


def test_nothing_points_outside_the_repository():
    offenders = []
    for folder in ("training", "analysis", "notebooks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".ipynb", ".md", ".json", ".toml") and "__pycache__" not in path.parts:
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                    if OUTSIDE.search(line):
                        offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not offenders, "\n".join(offenders)


def test_documents_the_code_cites_exist():
    cited = set()
    for path in list((ROOT / "training").rglob("*.py")) + list((ROOT / "analysis").rglob("*.py")):
        cited.update(re.findall(r"(metrics/REFERENCE\.md)", path.read_text(encoding="utf-8")))
    assert cited == {"metrics/REFERENCE.md"}
    text = (ROOT / "training" / "evaluation" / "metrics" / "REFERENCE.md").read_text(encoding="utf-8")
    for item in range(1, 16):
        assert re.search(rf"^{item}\. ", text, re.M), item


def test_public_api_of_both_packages():
    import analysis
    import training

    assert {"train_model", "evaluate_model", "load_study", "sweep", "Store"} <= set(training.__all__)
    for name in training.__all__:
        assert getattr(training, name) is not None
    assert {"load_frames", "scorecard", "build_report"} <= set(analysis.__all__)
    for name in analysis.__all__:
        assert getattr(analysis, name) is not None
