"""Name -> builder tables, so configs pick networks by name.

Adding a network is one decorated function::

    @register_generator("my_net")
    def build_my_net(image_size=256, **options): ...
"""

from keras_colour import choices

GENERATORS = {}
DISCRIMINATORS = {}
BACKBONES = {}

# Which table of `keras_colour.choices` lists each registry's names.
ACCEPTED = {"generator": choices.GENERATORS, "discriminator": choices.DISCRIMINATORS, "backbone": choices.BACKBONES}


def _register(table, kind, what):
    def decorator(fn):
        if kind not in ACCEPTED[what]:
            raise ValueError(f"{what} {kind!r} is not listed in keras_colour.choices; add it there first")
        if kind in table:
            raise ValueError(f"{kind!r} is registered twice")
        table[kind] = fn
        return fn

    return decorator


def register_generator(kind):
    return _register(GENERATORS, kind, "generator")


def register_discriminator(kind):
    return _register(DISCRIMINATORS, kind, "discriminator")


def register_backbone(kind):
    return _register(BACKBONES, kind, "backbone")


def lookup(table, kind, what):
    try:
        return table[kind]
    except KeyError:
        raise ValueError(f"Unknown {what} kind {kind!r}. Accepted values: {sorted(table)}.") from None
