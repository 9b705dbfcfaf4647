"""Input pipelines: image folders and lists, Pascal VOC, and the built-in demo set."""

import collections
import dataclasses
import logging

from keras_colour.batch import BatchLayout
from keras_colour.data.demo import build_demo_dataset
from keras_colour.data.images import IMAGE_EXTENSIONS, SkipLog, list_images, read_image_list, split_per_class
from keras_colour.data.pipeline import make_dataset
from keras_colour.data.voc import VOC_CLASSES, voc_split
from keras_colour.errors import DataError

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class DataBundle:
    """What `build_datasets` returns: both pipelines and the files behind them."""

    train: object
    test: object
    train_paths: list
    test_paths: list
    train_masks: list = None
    test_masks: list = None
    steps_per_epoch: int = 0
    skip_log: SkipLog = dataclasses.field(default_factory=SkipLog)
    layout: BatchLayout = BatchLayout()
    train_probe: object = None

    def summary(self):
        return (
            f"train: {len(self.train_paths)} images, {self.steps_per_epoch} steps/epoch; "
            f"test: {len(self.test_paths)} images; batches: {self.layout.description}"
        )


def resolve_files(data_config, seed=42):
    """Returns `(train_paths, test_paths, train_masks, test_masks)` for a `DataConfig`."""
    kind = data_config.kind
    train_masks = test_masks = None
    if kind == "voc":
        train, train_masks = voc_split(data_config.train, data_config.voc_train_split)
        test, test_masks = voc_split(data_config.test or data_config.train, data_config.voc_test_split)
    else:
        if kind == "demo":
            train_dir, test_dir = build_demo_dataset(data_config.demo_cache_dir, data_config.demo_train_crops, seed)
            train, labels = list_images(train_dir)
            test, _ = list_images(test_dir)
        else:
            reader = list_images if kind == "folder" else read_image_list
            train, labels = reader(data_config.train)
            if not train:
                raise DataError(
                    f"no image files found in data.train={data_config.train!r} (looked for {IMAGE_EXTENSIONS})"
                )
            if data_config.test:
                test, _ = reader(data_config.test)
            else:
                counts = collections.Counter(labels)
                train, test = split_per_class(train, labels, data_config.test_per_class, seed)
                if not train:
                    smallest = min(counts, key=counts.get)
                    raise DataError(
                        f"data.test_per_class={data_config.test_per_class} takes every image for the test set "
                        f"(class {smallest or '(top folder)'!r} has {counts[smallest]}): put more images in each class "
                        "or lower data.test_per_class"
                    )
    if data_config.max_train_images:
        train = train[: data_config.max_train_images]
        train_masks = train_masks[: data_config.max_train_images] if train_masks else None
    if not train:
        raise DataError(f"no training images found for data.kind={kind!r}, data.train={data_config.train!r}")
    return train, test, train_masks, test_masks


def build_datasets(config, global_batch_size=None, repeat_train=False):
    """Builds the training and test pipelines a `Config` describes."""
    data = config.data
    train, test, train_masks, test_masks = resolve_files(data, config.seed)
    batch = global_batch_size or data.batch_size
    skip_log = SkipLog()
    common = dict(
        image_size=data.image_size,
        batch_size=batch,
        seed=config.seed,
        resize_method=data.resize_method,
        antialias=data.antialias,
        lab_on_device=data.lab_on_device,
        skip_log=skip_log,
        decoder=data.decoder,
    )
    train_ds = make_dataset(
        train,
        training=True,
        flip=data.flip,
        shuffle_buffer=data.shuffle_buffer,
        cache=data.cache,
        mask_paths=train_masks,
        repeat=repeat_train,
        **common,
    )
    test_ds = make_dataset(test, training=False, mask_paths=test_masks, **common) if test else None
    # The same files in their listed order, for `check_decodable`. Checking on `train_ds` itself would shift
    # its shuffle: every iterator of a dataset advances one shared seed generator each time `repeat` restarts
    # the shuffle, and how far a checking iterator reads ahead depends on thread timing (a quick-start run
    # then took one of two batch orders, at random).
    probe = make_dataset(
        train, training=False, drop_remainder=True, mask_paths=train_masks, repeat=repeat_train, **common
    )
    steps = max(1, len(train) // batch)
    layout = BatchLayout(rgb=data.lab_on_device, mask=train_masks is not None)
    return DataBundle(train_ds, test_ds, train, test, train_masks, test_masks, steps, skip_log, layout, probe)


def check_decodable(dataset, paths, skip_log, what, batch_size):
    """Raises `DataError` if `dataset` yields no batch (every image undecodable, or too few for one batch).

    For a training set pass `DataBundle.train_probe`, not `DataBundle.train`: iterating the training pipeline
    would change its batch order.
    """
    for _ in dataset.take(1):
        return
    if skip_log.count >= len(paths):
        examples = ", ".join(sorted(skip_log.skipped)[:3])
        raise DataError(f"none of the {len(paths)} {what} images could be decoded (for example {examples})")
    raise DataError(
        f"the {len(paths)} {what} images ({skip_log.count} undecodable) do not fill one batch of "
        f"data.batch_size={batch_size}: add images or lower data.batch_size"
    )


__all__ = [
    "DataBundle", "SkipLog", "VOC_CLASSES", "build_datasets", "build_demo_dataset", "check_decodable", "list_images",
    "make_dataset", "read_image_list", "resolve_files", "split_per_class", "voc_split",
]  # fmt: skip
