"""Name -> builder tables, so configs pick networks by name.

Adding a network is one decorated function::

    @register_generator("my_net")
    def build_my_net(image_size=256, **options): ...
"""

GENERATORS = {}
DISCRIMINATORS = {}
BACKBONES = {}


def _register(table, kind):
    def decorator(fn):
        if kind in table:
            raise ValueError(f"{kind!r} is registered twice")
        table[kind] = fn
        return fn

    return decorator


def register_generator(kind):
    return _register(GENERATORS, kind)


def register_discriminator(kind):
    return _register(DISCRIMINATORS, kind)


def register_backbone(kind):
    return _register(BACKBONES, kind)


def lookup(table, kind, what):
    try:
        return table[kind]
    except KeyError:
        raise ValueError(f"Unknown {what} kind {kind!r}. Accepted values: {sorted(table)}.") from None
