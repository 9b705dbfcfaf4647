"""Executes every notebook top to bottom against a tiny run made here (issue: notebooks run in CI)."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import ROOT, tiny_overrides

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, demo_cache):
    from keras_colour.config import load_config
    from keras_colour.experiment import evaluate_run, train

    runs = []
    base = tmp_path_factory.mktemp("runs")
    for name, extra in (("tiny_gorriz", {}), ("tiny_unet", {"model.generator": "unet", "model.discriminator": "none", "loss.adversarial": "none"})):
        out = str(base / name)
        config = load_config(os.path.join(ROOT, "experiments", "quickstart.yaml"), tiny_overrides(output_dir=out, name=name, **extra))
        train(config)
        if name == "tiny_gorriz":
            evaluate_run(out)  # the other one is evaluated by the histogram notebook itself
        runs.append(out)
    return runs


def test_every_notebook_is_listed_in_the_readme():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert len(NOTEBOOKS) == 4
    for path in NOTEBOOKS:
        assert f"(notebooks/{os.path.basename(path)})" in readme


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_top_to_bottom(path, tiny_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_COLOUR_NOTEBOOK_RUNS", os.pathsep.join(tiny_runs))
    monkeypatch.setenv("KERAS_COLOUR_NOTEBOOK_OUTPUT", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    pngs = glob.glob(str(tmp_path / "*.png"))
    assert pngs, "the notebook saved no figure"
    name = os.path.basename(path)
    if name != "use_saved_model.ipynb":  # figures are shown inline as well as saved
        assert any("image/png" in o.get("data", {}) for c in book.cells for o in c.get("outputs", []))
    if name == "use_saved_model.ipynb":
        assert os.path.isdir(tmp_path / "generator_savedmodel")
        first_code = [c.source for c in book.cells if c.cell_type == "code"][:2]
        assert all("import keras_colour" not in src and "from keras_colour" not in src for src in first_code)
