"""Atomic file writes: a reader (or a kill) never sees half a file.

Everything keras-colour writes that a later step reads back (configs, state, metrics, exported models)
goes through `atomic_write`: the data goes to a temporary file in the same folder, is flushed to disk,
and then replaces the target in one `os.replace`.
"""

import contextlib
import os

TEMP_MARK = ".tmp-"


def temporary_path(path):
    """A temporary name beside `path` that keeps its extension (Keras checks `.keras`)."""
    root, ext = os.path.splitext(path)
    return f"{root}{TEMP_MARK}{os.getpid()}{ext}"


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path to write; on success it is fsynced and renamed onto `path`."""
    tmp = temporary_path(path)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path, text):
    """Writes `text` to `path` through a temporary file and a rename: readers see the old file or the new one."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
