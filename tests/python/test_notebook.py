"""docs/examples/quickstart.ipynb runs from top to bottom (so that it cannot rot)."""
import json
import warnings
from pathlib import Path

import matplotlib
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "examples" / "quickstart.ipynb"


def test_notebook_is_clean_nbformat_4():
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    for cell in notebook["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["source"], list)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_notebook_runs(monkeypatch):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not (NOTEBOOK.parent / "../../data/glove.6B.100d.15k.txt.gz").exists():
        pytest.skip("the GloVe sample is not in data/")
    monkeypatch.chdir(NOTEBOOK.parent)  # the notebook finds the data relative to itself
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    namespace = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")  # plt.show() under Agg
        for number, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            exec(compile(source, f"{NOTEBOOK.name} cell {number}", "exec"), namespace)
    plt.close("all")

    recalls = {spec: recall for spec, _, _, recall in namespace["results"]}
    assert {"f32", "f16", "int8"} <= set(recalls)
    assert recalls["f32"] == 1.0 and recalls["f16"] > 0.95 and recalls["int8"] > 0.8
    assert len(namespace["before"]) == len(namespace["after"]) == 10
