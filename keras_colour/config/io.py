"""Reading and writing configs: YAML files, `${VAR}` expansion and `--set key=value` overrides.

Loading is strict: an unknown key, a duplicate key, a wrong type or a bad value raises `ConfigError`
naming the key, the value and the file. `${VAR}` (or `${VAR:-default}`) in strings is expanded from the
environment. The schema itself (and its validation) lives in `keras_colour.config.schema`.
"""

import dataclasses
import difflib
import os
import re
import typing

import yaml

from keras_colour import plugins
from keras_colour.config.schema import Config, ConfigError, required_type
from keras_colour.io_utils import atomic_write_text

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value, key):
    def repl(match):
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (used in {value!r})", key)

    return _ENV.sub(repl, value)


def _from_yaml(value, hint, key):
    """Turns a value as YAML reads it into what the schema field expects (no validation beyond that)."""
    if value is None and required_type(hint) is not hint:
        return None
    hint = required_type(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"must be a mapping. Received: {value!r}", key)
        return _build(hint, value, key)
    if isinstance(value, str):
        if hint is float:
            try:  # YAML 1.1 reads `1e-5` (no dot) as a string.
                return float(value)
            except ValueError:
                raise ConfigError(f"must be a number. Received: {value!r}", key) from None
        value = _expand_env(value, key)
        return [value] if hint is list else value
    if isinstance(value, list):
        return [_expand_env(v, f"{key}[{i}]") if isinstance(v, str) else v for i, v in enumerate(value)]
    return value


def _build(cls, data, prefix):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
            hint = f"did you mean `{near[0]}`? " if near else ""
            raise ConfigError(f"unknown key; {hint}accepted keys: {sorted(names)}", full)
        kwargs[key] = _from_yaml(value, hints[key], full)
    return cls(**kwargs)


def _set_nested(tree, dotted, value):
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set a key below {part!r}, which is {child!r}", dotted)
        node = child
    node[parts[-1]] = value


def apply_overrides(tree, overrides):
    """Applies `a.b=c` strings (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value. Received: {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({e.problem})", key.strip()) from None
        _set_nested(tree, key.strip(), value)
    return tree


def _load_plugins(data, source):
    """Imports the config's `plugins` (before validation: they register names) and keeps them as absolute paths."""
    entries = data.get("plugins")
    if entries is None:
        return
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise ConfigError(f"must be a list of Python files or module names. Received: {entries!r}", "plugins")
    base = os.path.dirname(os.path.abspath(source)) if source and os.path.isfile(source) else os.getcwd()
    resolved = [plugins.resolve(e, base) for e in entries]
    for entry in resolved:
        try:
            plugins.load_plugin(entry)
        except Exception as e:  # a plugin's own mistake: one line naming the plugin
            raise ConfigError(f"{entry!r} could not be loaded: {type(e).__name__}: {e}", "plugins") from None
    data["plugins"] = resolved


def config_from_dict(data, source=None, overrides=()):
    """Builds and validates a `Config` from a nested dict (as YAML reads it), after `a.b=c` overrides.

    The config's `plugins` are imported first (`keras_colour.plugins`), so the names they register are accepted.
    """
    data = dict(data or {})
    try:
        apply_overrides(data, overrides)
        _load_plugins(data, source)
        config = _build(Config, data, "")
    except ConfigError as e:
        raise e.with_source(source) from None
    config.source = source
    return config


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"duplicate key {key!r} (line {key_node.start_mark.line + 1}): give each key once", str(key)
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(path):
    """Reads a YAML mapping strictly (duplicate keys are errors); raises `ConfigError` naming `path`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as e:
        raise e.with_source(path) from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"not valid YAML: {e}", source=path) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping of keys, got {type(data).__name__}", source=path)
    return data


def load_config(path, overrides=()):
    """Loads a YAML experiment file, applies `a.b=c` overrides and validates it.

    Args:
        path: str. A YAML file.
        overrides: sequence of `"a.b=value"` strings, applied after the file.

    Returns:
        A validated `Config`.
    """
    return config_from_dict(read_yaml(path), source=os.fspath(path), overrides=overrides)


def save_config(config, path):
    """Writes the resolved config as YAML (atomically)."""
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
