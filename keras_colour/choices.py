"""The accepted names of every choice a config makes, in one TensorFlow-free table.

The config schema validates against these tables, and each registry of TensorFlow objects (networks,
losses, heads, update protocols) is checked against them when it is filled, so a name cannot be accepted
by one and unknown to the other. The tables a user can extend (generators, discriminators, feature
backbones, colour and adversarial losses, update protocols) are `Names`: registering a new builder
(`keras_colour.models.registry.register_generator`, `keras_colour.losses.register_colour_loss`,
`keras_colour.protocols.register_protocol`) adds its name here, so a YAML may use it and
`keras-colour check` lists it (see docs/extending.md).
"""


class Names:
    """An ordered set of accepted names that registration extends.

    Args:
        *names: str. The built-in names.
        extends: `Names` or None. Names listed after these ones, live (`OPTIONAL_DISCRIMINATORS` is `none`
            followed by whatever `DISCRIMINATORS` holds now).
    """

    def __init__(self, *names, extends=None):
        self._own, self._extends = list(names), extends

    def _all(self):
        return self._own + (self._extends._all() if self._extends is not None else [])

    def add(self, name):
        """Accepts `name` from now on (registering a builder calls this)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a registered name must be a non-empty string. Received: {name!r}")
        if name not in self._all():
            self._own.append(name)

    def __iter__(self):
        return iter(self._all())

    def __contains__(self, name):
        return name in self._all()

    def __len__(self):
        return len(self._all())

    def __eq__(self, other):
        return list(self) == list(other)

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return repr(self._all())


DATA_KINDS = ("demo", "folder", "list", "voc")
RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area")
DECODERS = ("auto", "native", "pillow")

GENERATORS = Names("gorriz", "pix2pix", "unet")
# Down blocks of each generator unless `model.num_downsamples` says otherwise (2x2 / 1x1 bottleneck at 256).
GENERATOR_DEPTHS = {"gorriz": 7, "pix2pix": 8, "unet": 8}
DISCRIMINATORS = Names("patchgan", "multiscale")
OPTIONAL_DISCRIMINATORS = Names("none", extends=DISCRIMINATORS)
NORMS = ("bn", "in", "ibn", "none")
INSTANCE_NORM_MODES = ("channel", "sample")
BATCH_NORMS = ("keras", "bbc")
SPECTRAL_NORMS = ("none", "keras", "bbc")
SEGMENTATION_HEADS = ("none", "shared_decoder", "separate_decoders")
BACKBONES = Names("vgg16", "vgg19", "resnet50", "unet", "fpn")

COLOUR_LOSSES = Names("l1", "smooth_l1")
ADVERSARIAL_LOSSES = Names("lsgan", "bce")
OPTIONAL_ADVERSARIAL_LOSSES = Names("none", extends=ADVERSARIAL_LOSSES)
PROTOCOLS = Names("simultaneous", "bbc")
SHARED_DECODER_TARGETS = ("grey_elsewhere", "class_pixels")
FEATURE_INPUTS = ("imagenet", "unit")
EVALUATION_COLOURS = ("displayed", "raw_lab")

DISTRIBUTE = ("none", "mirrored", "multi_worker")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")


def check_choice(name, value, accepted):
    """Raises `ValueError` naming `name`, the value and the accepted ones if `value` is not accepted."""
    if value not in accepted:
        raise ValueError(f"Unknown {name} {value!r}. Accepted values: {list(accepted)}. Received: {name}={value!r}")


def check_registry(table_name, registered, accepted):
    """Raises if a registry and its name table disagree (a programming error, caught at import)."""
    if set(registered) != set(accepted):
        raise RuntimeError(f"registry {table_name} holds {sorted(registered)} but choices lists {sorted(accepted)}")


def registrar(table, names, what):
    """A `register(name)` decorator factory for one registry: `table` maps names to objects, `names` is the
    `Names` table the config accepts. Registering a name twice is an error; a new name becomes accepted."""

    def register(name):
        def decorator(obj):
            if name in table:
                raise ValueError(f"{what} {name!r} is registered twice")
            names.add(name)
            table[name] = obj
            return obj

        return decorator

    return register
