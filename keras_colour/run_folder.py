"""The run folder: one module owns its layout on disk, and who may write to it.

A run folder holds the resolved `config.yaml`, `state.json` (completed epochs), `checkpoints/` (every
network, both optimisers, the epoch), `generator.keras`, TensorBoard `logs/`, `history.csv`,
`loss_curves.png`, `samples/epoch_NNN.png`, `metrics.json`, `histograms.npz` and `histograms.png`, and
`.lock` while a process trains into it.
"""

import contextlib
import csv
import fcntl
import glob
import io
import json
import math
import os
import shutil

import keras

from keras_colour.config import load_config, save_config
from keras_colour.errors import ResumeMismatchError, RunExistsError, RunLockedError, UserError
from keras_colour.io_utils import TEMP_MARK, atomic_write_text

# What `--resume` may change: how long and how fast to train, what to log and how to evaluate. Anything
# else changes what the checkpoint holds or what the run means.
RESUMABLE_CHANGES = (
    "name", "seed", "train.epochs", "train.steps_per_epoch", "train.g_learning_rate", "train.d_learning_rate",
    "train.verbose", "train.sample_images", "train.eval_max_images", "train.deterministic", "train.check_replicas",
    "train.jit_compile",
    "data.train", "data.test", "data.cache", "data.shuffle_buffer", "data.demo_cache_dir", "evaluation.",
)  # fmt: skip


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


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
    lock_path = property(lambda self: self._join(".lock"))

    def sample_path(self, epoch):
        """The sample grid of 1-based `epoch`."""
        return self._join("samples", f"epoch_{epoch:03d}.png")

    def __repr__(self):
        return f"RunFolder({self.path!r})"

    @property
    def holds_run(self):
        """True once a run has completed an epoch here (a failed start leaves nothing that counts)."""
        return os.path.isfile(self.state_path) or os.path.isfile(os.path.join(self.checkpoints, "checkpoint"))

    @property
    def is_run_folder(self):
        """True if the folder was made by keras-colour (it has its config.yaml)."""
        return os.path.isfile(self.config_path)

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
        bad = sorted(k for k, v in results.items() if isinstance(v, float) and not math.isfinite(v))
        if bad:
            raise UserError(
                f"evaluating {self.path!r} gave non-finite {', '.join(bad)}: the generator's output is not finite"
            )
        atomic_write_text(self.metrics, json.dumps(results, indent=2, allow_nan=False))

    # -- writing a run ------------------------------------------------------------------------------------------
    def check_apart_from_data(self, config):
        """Refuses an output folder that is, contains or lies inside a data folder of the config."""
        for key in ("train", "test", "demo_cache_dir"):
            data = getattr(config.data, key)
            if data and (_inside(self.path, data) or _inside(data, self.path)):
                raise UserError(
                    f"output_dir {self.path!r} overlaps data.{key} {data!r}: outputs would mix with (or, with "
                    "--overwrite, delete) the images. Set output_dir to a folder outside the data"
                )

    @contextlib.contextmanager
    def open_for_training(self, config, resume=False, overwrite=False):
        """Checks, locks and prepares the folder for `config`; yields while training writes to it.

        Nothing is changed before every check has passed: the folder must be apart from the data, not hold
        another run (unless `overwrite`, and then only a keras-colour run folder is deleted), not be locked by
        another process, and on `resume` hold a run of the same architecture.
        """
        self.check_apart_from_data(config)
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UserError(f"output_dir {self.path!r} is a file, not a folder: set output_dir to a folder")
        if self.holds_run and not resume:
            if not overwrite:
                what = "a finished run" if (self.read_state() or {}).get("finished") else "a run"
                raise RunExistsError(
                    f"{self.path!r} already holds {what}. Pass --resume to continue it, --overwrite to replace it, "
                    "or set output_dir to a new folder."
                )
        if overwrite and not resume and os.path.isdir(self.path) and os.listdir(self.path) and not self.is_run_folder:
            raise UserError(
                f"--overwrite refuses to delete {self.path!r}: it is not a keras-colour run folder (no config.yaml). "
                "Delete it yourself or set output_dir to a new folder"
            )
        lock = self._acquire_lock()
        try:
            # The OS drops a flock when its process dies, so a lock left by a killed run is simply taken over.
            lock.seek(0)
            lock.truncate()
            lock.write(str(os.getpid()))
            lock.flush()
            if resume and self.holds_run:
                self.check_resume(config)
            elif overwrite and self.is_run_folder:
                for entry in os.listdir(self.path):
                    if entry != ".lock":
                        target = self._join(entry)
                        shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
            self.remove_stale_temporaries()
            save_config(config, self.config_path)
            yield self
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.lock_path)  # a finished run leaves no lock; removed while still held (see _acquire_lock)
            lock.close()

    def _acquire_lock(self):
        """Opens and flocks `.lock`; raises `RunLockedError` if another process holds it.

        The holder removes the file before it lets go, so a process that opened the old file just before may
        lock a file that is no longer there: it then opens the new one and tries again.
        """
        while True:
            try:
                os.makedirs(self.path, exist_ok=True)
                lock = open(self.lock_path, "a+")  # noqa: SIM115 (held for the whole run)
            except OSError as e:
                raise UserError(f"cannot write to output_dir {self.path!r}: {e.strerror or e}") from None
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "?"
                lock.close()
                raise RunLockedError(
                    f"another keras-colour process (pid {holder}) is writing to {self.path!r}; "
                    "wait for it to finish or stop it"
                ) from None
            try:
                same = os.fstat(lock.fileno()).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return lock
            lock.close()

    def check_resume(self, config):
        """Raises `ResumeMismatchError` naming every key that `--resume` may not change."""
        old, new = _flatten(self.load_config().to_dict()), _flatten(config.to_dict())
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        refused = [
            k for k in changed if not any(k == a or (a.endswith(".") and k.startswith(a)) for a in RESUMABLE_CHANGES)
        ]
        if refused:
            details = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in refused)
            raise ResumeMismatchError(
                f"--resume cannot change {details} of the run in {self.path!r}; --resume may change only "
                f"{', '.join(a.rstrip('.') for a in RESUMABLE_CHANGES)}. Start a new run (another output_dir) instead"
            )

    def remove_stale_temporaries(self):
        """Deletes half-written files a killed process left: `*.tmp-PID*` and checkpoint `*_temp` folders."""
        for path in glob.glob(self._join("**", f"*{TEMP_MARK}*"), recursive=True):
            os.remove(path) if os.path.isfile(path) else shutil.rmtree(path, ignore_errors=True)
        for path in glob.glob(os.path.join(self.checkpoints, "*_temp*")):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)

    def align_to_checkpoint(self, completed_epochs):
        """Drops history rows and sample grids of epochs after the last checkpoint (they will be run again)."""
        if os.path.isfile(self.history):
            with open(self.history, encoding="utf-8", newline="") as f:
                rows = list(csv.reader(f))
            if rows:
                kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= completed_epochs]  # epochs from 1
                if len(kept) != len(rows):
                    text = io.StringIO()
                    csv.writer(text, lineterminator="\n").writerows(kept)
                    atomic_write_text(self.history, text.getvalue())
        for path in glob.glob(self._join("samples", "epoch_*.png")):
            if int(os.path.basename(path)[len("epoch_") : -len(".png")]) > completed_epochs:
                os.remove(path)


def labelled_runs(arguments):
    """`RUN_DIR` or `RUN_DIR=LABEL` command-line arguments -> `[(run_dir, label or None)]`.

    An argument that is an existing folder is a run folder as it is (even with `=` in its name); otherwise the
    text after the last `=` is the label.
    """
    out = []
    for argument in arguments:
        path, label = str(argument), None
        if not os.path.isdir(path) and "=" in path:
            path, label = path.rsplit("=", 1)
            if not label.strip():
                raise UserError(f"{argument!r}: an empty label after '='; write RUN_DIR=LABEL")
        out.append((path, label))
    return out


def run_labels(run_dirs, names, labels=None):
    """The label of each run in tables and studies: its given label, else its config's `name`.

    Where names repeat (two seeds of one YAML), the repeated ones take their folder's name instead, and their
    folder path if those repeat too. Given labels must be distinct.
    """
    labels = list(labels or [None] * len(run_dirs))
    given = [label for label in labels if label]
    if len(set(given)) != len(given):
        raise UserError(f"the labels repeat ({given}); give each run a distinct label (RUN_DIR=LABEL)")
    chosen = [label or name for label, name in zip(labels, names)]
    for fallback in (lambda d: os.path.basename(os.path.normpath(d)), lambda d: os.path.normpath(d)):
        repeated = {x for x in chosen if chosen.count(x) > 1}
        chosen = [fallback(d) if (c in repeated and not label) else c for d, c, label in zip(run_dirs, chosen, labels)]
    if len(set(chosen)) != len(chosen):
        raise UserError(f"two runs would share the label {chosen}; label them: RUN_DIR=LABEL")
    return chosen
