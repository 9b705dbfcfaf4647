"""Name -> builder tables, so configs pick networks by name.

Adding a network is one decorated function, in the package or in a plugin file (docs/extending.md)::

    @register_generator("my_net")
    def build_my_net(image_size=256, **options): ...

A generator builder takes `image_size` and the options `keras_colour.models.generator_options` gives (it may
accept `**options` and ignore those it does not use) and returns a functional `keras.Model` from L_n
`(H, W, 1)` in [-1, 1] to ab_n `(H, W, 2)` in [-1, 1], built from built-in Keras layers only.
"""

from keras_colour import choices

GENERATORS = {}
DISCRIMINATORS = {}
BACKBONES = {}

# Which table of `keras_colour.choices` lists each registry's names.
ACCEPTED = {"generator": choices.GENERATORS, "discriminator": choices.DISCRIMINATORS, "backbone": choices.BACKBONES}


def _register(table, kind, what):
    return choices.registrar(table, ACCEPTED[what], what)(kind)  # a config may name it from now on


def register_generator(kind):
    """Registers a generator builder as `kind` (`model.generator: KIND`); see above and docs/extending.md."""
    return _register(GENERATORS, kind, "generator")


def register_discriminator(kind):
    """Registers a discriminator builder as `kind` (`model.discriminator: KIND`): `[L_n, ab_n]` -> patch map(s)."""
    return _register(DISCRIMINATORS, kind, "discriminator")


def register_backbone(kind):
    """Registers a feature-loss backbone as `kind` (`loss.feature.backbone: KIND`).

    The builder takes `(image_size, weights, allow_random_weights)` and returns a `keras.Model` on RGB.
    """
    return _register(BACKBONES, kind, "backbone")


def lookup(table, kind, what):
    """The builder registered as `kind` in `table`; `ValueError` naming the accepted kinds otherwise."""
    try:
        return table[kind]
    except KeyError:
        raise ValueError(f"Unknown {what} kind {kind!r}. Accepted values: {sorted(table)}.") from None
