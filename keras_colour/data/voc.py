"""Pascal VOC 2012 segmentation: images with their class masks.

Layout: `JPEGImages/<id>.jpg`, `SegmentationClass/<id>.png` (palette PNGs,
index = class, 255 = boundary/ignore), `ImageSets/Segmentation/{train,val}.txt`.
"""

import os

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
IGNORE_INDEX = 255


def voc_split(root, split):
    """Returns `(image_paths, mask_paths)` for a VOC split (`train` or `val`)."""
    list_file = os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")
    if not os.path.isfile(list_file):
        raise FileNotFoundError(
            f"Pascal VOC split file not found: {list_file!r}. `data.train` must point at the VOC2012 folder "
            "holding JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/."
        )
    with open(list_file, encoding="utf-8") as f:
        ids = [line.strip() for line in f if line.strip()]
    images = [os.path.join(root, "JPEGImages", f"{i}.jpg") for i in ids]
    masks = [os.path.join(root, "SegmentationClass", f"{i}.png") for i in ids]
    return images, masks
