"""A user's own generators, losses and update protocols, loaded from the files a config names.

A config's top-level `plugins` lists Python files (relative to the YAML file's folder, or absolute) or importable
module names. `keras_colour.config.load_config` imports each one once per process, before it validates the rest of
the config, so the names they register (`register_generator`, `register_colour_loss`, `register_protocol`, ...)
are accepted choices there; the resolved config keeps absolute paths, so a run folder's `config.yaml` loads them
again for `--resume` and `evaluate`. See docs/extending.md.
"""

import hashlib
import importlib
import importlib.util
import os
import sys

_LOADED = {}  # real path or module name -> module


def resolve(entry, base_dir):
    """The absolute path of a plugin file entry, or the module name as it is."""
    if entry.endswith(".py") or "/" in entry or os.sep in entry:
        return os.path.abspath(os.path.join(base_dir or os.getcwd(), os.path.expanduser(entry)))
    return entry


def load_plugin(entry):
    """Imports one resolved plugin entry (once); returns the module. Raises `ImportError` or the plugin's own error."""
    key = os.path.realpath(entry) if entry.endswith(".py") else entry
    if key in _LOADED:
        return _LOADED[key]
    if entry.endswith(".py"):
        if not os.path.isfile(entry):
            raise FileNotFoundError(f"plugin file not found: {entry!r}")
        stem = os.path.splitext(os.path.basename(entry))[0]
        name = f"keras_colour_plugins.{stem}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(name, entry)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    else:
        module = importlib.import_module(entry)
    _LOADED[key] = module
    return module
