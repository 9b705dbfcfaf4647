import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import pytest

from helpers import built_once

# Small settings used across tests: 64x64 images, narrow networks (the thesis shapes, smaller widths).
SMALL = dict(image_size=64, base_filters=8, num_downsamples=5)


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
    """One demo dataset for the whole session."""
    path = str(tmp_path_factory.mktemp("demo_cache"))
    os.environ["KERAS_COLOUR_CACHE"] = path
    return path


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory, demo_cache):
    """A finished tiny quick-start run (train and evaluate), shared by the session: read it, or copy it first."""

    def build(folder):
        from helpers import ROOT, tiny_overrides
        from keras_colour.config import load_config
        from keras_colour.experiment import train

        out = folder / "quickstart"
        train(load_config(os.path.join(ROOT, "experiments", "quickstart.yaml"), tiny_overrides(output_dir=str(out))))
        return out

    return built_once(tmp_path_factory, "quickstart_run", build)


@pytest.fixture
def photos():
    """Real colour photographs shipped with scikit-image."""
    import skimage.data

    return [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_collection_modifyitems(config, items):
    """The `slow` tests first (each file's order kept): pytest-xdist then starts the long ones while the short
    ones fill the gaps, instead of one long test running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
