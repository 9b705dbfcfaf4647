"""Executes every notebook as Jupyter does (working directory = the notebook's folder, no environment
variables), right after a quick-start run made here, laid out as a user's checkout is."""

import glob
import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import ROOT, copy_of_run

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, quickstart_run):
    """A copy of notebooks/ beside runs/quickstart (a tiny quick-start run): a checkout after the README's command."""
    root = tmp_path_factory.mktemp("checkout")
    shutil.copytree(os.path.join(ROOT, "notebooks"), root / "notebooks")
    copy_of_run(quickstart_run, root / "runs" / "quickstart")
    return root


def test_every_notebook_is_listed_in_the_readme():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert len(NOTEBOOKS) == 4
    for path in NOTEBOOKS:
        assert f"(notebooks/{os.path.basename(path)})" in readme


@pytest.mark.slow
@pytest.mark.parametrize("name", [os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs_with_jupyters_working_directory_and_defaults(name, checkout, monkeypatch):
    for var in ("KERAS_COLOUR_NOTEBOOK_RUNS", "KERAS_COLOUR_NOTEBOOK_OUTPUT", "KERAS_COLOUR_RUNS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)  # as Jupyter starts: importing keras_colour is quiet
    folder = checkout / "notebooks"
    book = nbformat.read(folder / name, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    errors = [
        o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    streams = "".join(o.get("text", "") for c in book.cells for o in c.get("outputs", []) if o.get("name") == "stderr")
    if name != "use_saved_model.ipynb":  # that one imports Keras alone, as a user without this package would
        for noise in ("cuInit", "absl::InitializeLog", "cudart_stub", "cpu_feature_guard", "I0000", "E0000"):
            assert noise not in streams, streams[-2000:]
    figures_dir = checkout / "runs" / "notebook_figures"
    assert glob.glob(str(figures_dir / "*.png")), "the notebook saved no figure where its defaults say"
    if name == "use_saved_model.ipynb":
        assert os.path.isdir(figures_dir / "generator_savedmodel")
        first_code = [c.source for c in book.cells if c.cell_type == "code"][:2]
        assert all("import keras_colour" not in src and "from keras_colour" not in src for src in first_code)
    else:  # figures are shown inline as well as saved
        assert any("image/png" in o.get("data", {}) for c in book.cells for o in c.get("outputs", []))
