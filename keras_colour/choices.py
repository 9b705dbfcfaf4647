"""The accepted names of every choice a config makes, in one TensorFlow-free table.

The config schema validates against these tables, and each registry of TensorFlow objects (networks,
losses, heads, update protocols) is checked against them when it is filled, so a name cannot be accepted
by one and unknown to the other.
"""

DATA_KINDS = ("demo", "folder", "list", "voc")
RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area")
DECODERS = ("auto", "native", "pillow")

GENERATORS = ("gorriz", "pix2pix", "unet")
# Down blocks of each generator unless `model.num_downsamples` says otherwise (2x2 / 1x1 bottleneck at 256).
GENERATOR_DEPTHS = {"gorriz": 7, "pix2pix": 8, "unet": 8}
DISCRIMINATORS = ("patchgan", "multiscale")
NORMS = ("bn", "in", "ibn", "none")
INSTANCE_NORM_MODES = ("channel", "sample")
BATCH_NORMS = ("keras", "bbc")
SPECTRAL_NORMS = ("none", "keras", "bbc")
SEGMENTATION_HEADS = ("none", "shared_decoder", "separate_decoders")
BACKBONES = ("vgg16", "vgg19", "resnet50", "unet", "fpn")

COLOUR_LOSSES = ("l1", "smooth_l1")
ADVERSARIAL_LOSSES = ("lsgan", "bce")
PROTOCOLS = ("simultaneous", "bbc")
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
