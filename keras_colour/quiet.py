"""TensorFlow without its start-up noise: the C++ lines it prints while it loads (absl, CUDA probes, XNNPACK).

`import keras_colour` calls `quiet_tensorflow_import()`, which costs nothing until TensorFlow is imported: the first
`import tensorflow` after it runs with the process's standard error sent to /dev/null at the file-descriptor level
(where those lines are written; Python's `sys.stderr` never sees them) and `TF_CPP_MIN_LOG_LEVEL=3`. A user who has
set `TF_CPP_MIN_LOG_LEVEL`, or imported TensorFlow first, keeps TensorFlow as it is. Python exceptions are not
affected: a broken install still raises its `ImportError`.
"""

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys


@contextlib.contextmanager
def stderr_silenced():
    """Sends file descriptor 2 to /dev/null for the duration of a block (C and C++ output included)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (some embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, inner):
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        with stderr_silenced():
            self._inner.exec_module(module)
            import tensorflow as tf  # noqa: PLC0415 (the module being loaded, now complete)

            tf.config.list_physical_devices()  # the CUDA probe complains here, silenced
        tf.get_logger().setLevel("ERROR")

    def __getattr__(self, name):  # resources and the rest: the real loader's
        return getattr(self._inner, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_import():
    """Makes the first `import tensorflow` quiet (see the module docstring); a no-op if it cannot apply."""
    if "tensorflow" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    if any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.meta_path.insert(0, _QuietTensorFlowFinder())


def loud_tensorflow_import():
    """Undoes `quiet_tensorflow_import` before TensorFlow is imported (`keras-colour -v`)."""
    finders = [f for f in sys.meta_path if isinstance(f, _QuietTensorFlowFinder)]
    for finder in finders:
        sys.meta_path.remove(finder)
    if finders and os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "3":
        del os.environ["TF_CPP_MIN_LOG_LEVEL"]
