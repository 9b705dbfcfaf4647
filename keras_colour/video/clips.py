"""Test clips with a known colour original: camera moves over real photographs, with a hard cut.

Used by the tests and `benchmarks/video.py`: the colour frames are the ground truth, their grayscale the
input. A shot pans (and slowly zooms) over one photograph; the next shot does the same over another.
"""

import cv2
import numpy as np


def camera_move(photo, size, frames, pan=(3.0, 1.0), zoom=0.004, start_zoom=1.15):
    """`frames` RGB uint8 frames of `size` (height, width): a view on `photo` that pans and zooms.

    The view starts `start_zoom` times closer than the whole photo fitted to the frame, moves by `pan`
    output pixels per frame and zooms in by a factor `1 + zoom` per frame (sub-pixel motion, as film has).
    """
    height, width = size
    fit = max(height / photo.shape[0], width / photo.shape[1])
    centre = np.array([photo.shape[1] / 2.0, photo.shape[0] / 2.0])
    out = []
    for t in range(frames):
        scale = fit * start_zoom * (1.0 + zoom) ** t
        shift = np.array(pan) * t - (np.array(pan) * (frames - 1)) / 2.0  # centred on the middle frame
        # output = scale * (photo - centre) + frame centre - shift
        matrix = np.array(
            [
                [scale, 0.0, width / 2.0 - scale * centre[0] - shift[0]],
                [0.0, scale, height / 2.0 - scale * centre[1] - shift[1]],
            ]
        )
        out.append(
            cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        )
    return out


def two_shot_clip(photo_a, photo_b, size, frames_per_shot):
    """A pan and zoom over `photo_a`, a hard cut, then one over `photo_b`; returns (frames, index of the cut)."""
    first = camera_move(photo_a, size, frames_per_shot, pan=(3.0, 1.0))
    second = camera_move(photo_b, size, frames_per_shot, pan=(-2.0, 1.5), zoom=-0.003)
    return first + second, frames_per_shot


def grayscale(frames):
    """The frames as an archive holds them: gray, stored as RGB uint8."""
    return [np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=-1) for f in frames]
