"""The run folder: one module owns its layout on disk.

A run folder holds the resolved `config.yaml`, `state.json` (completed epochs), `checkpoints/` (every
network, both optimisers, the epoch), `generator.keras`, TensorBoard `logs/`, `history.csv`,
`loss_curves.png`, `samples/epoch_NNN.png`, `metrics.json`, `histograms.npz` and `histograms.png`.
"""

import json
import os
import shutil

import keras

from keras_colour.config import load_config, save_config
from keras_colour.errors import RunExistsError
from keras_colour.io_utils import atomic_write_text


class RunFolder:
    """Paths and contents of one run folder.

    Args:
        path: str. The folder (`output_dir` of the run's config).
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    def _join(self, *parts):
        return os.path.join(self.path, *parts)

    config_path = property(lambda self: self._join("config.yaml"))
    state_path = property(lambda self: self._join("state.json"))
    checkpoints = property(lambda self: self._join("checkpoints"))
    generator_path = property(lambda self: self._join("generator.keras"))
    logs = property(lambda self: self._join("logs"))
    history = property(lambda self: self._join("history.csv"))
    loss_curves = property(lambda self: self._join("loss_curves.png"))
    samples = property(lambda self: self._join("samples"))
    metrics = property(lambda self: self._join("metrics.json"))
    histograms = property(lambda self: self._join("histograms.npz"))
    histogram_plot = property(lambda self: self._join("histograms.png"))

    def sample_path(self, epoch):
        """The sample grid of 1-based `epoch`."""
        return self._join("samples", f"epoch_{epoch:03d}.png")

    def __repr__(self):
        return f"RunFolder({self.path!r})"

    @property
    def holds_run(self):
        return os.path.isfile(self.config_path) or os.path.isdir(self.checkpoints)

    def load_config(self):
        """The run's resolved config, validated as any config file is."""
        if not os.path.isfile(self.config_path):
            raise FileNotFoundError(f"{self.path!r} is not a run folder: it has no config.yaml")
        return load_config(self.config_path)

    def load_generator(self):
        """The run's `generator.keras`, loaded with plain Keras."""
        if not os.path.isfile(self.generator_path):
            raise FileNotFoundError(f"{self.path!r} has no generator.keras yet: train it first.")
        return keras.models.load_model(self.generator_path, compile=False)

    def read_state(self):
        if not os.path.isfile(self.state_path):
            return None
        with open(self.state_path, encoding="utf-8") as f:
            return json.load(f)

    def write_state(self, completed_epochs, total_epochs):
        state = {
            "completed_epochs": completed_epochs,
            "total_epochs": total_epochs,
            "finished": completed_epochs == total_epochs,
        }
        atomic_write_text(self.state_path, json.dumps(state, indent=2))

    def write_metrics(self, results):
        atomic_write_text(self.metrics, json.dumps(results, indent=2))

    def prepare(self, config, resume=False, overwrite=False):
        """Creates the folder and writes `config.yaml`; refuses to write over a run unless asked."""
        if self.holds_run and not resume:
            if not overwrite:
                what = "a finished run" if (self.read_state() or {}).get("finished") else "a run"
                raise RunExistsError(
                    f"{self.path!r} already holds {what}. Pass --resume to continue it, --overwrite to replace it, "
                    "or set output_dir to a new folder."
                )
            shutil.rmtree(self.path)
        os.makedirs(self.path, exist_ok=True)
        save_config(config, self.config_path)
