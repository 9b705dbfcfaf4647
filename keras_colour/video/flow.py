"""Optical flow between grayscale frames, with the forward-backward check for occlusions.

Used twice: by the temporal filter (to carry the previous frame's colours along the motion) and by the warping
error of `keras_colour.video.evaluate` (Lai et al. 2018), so both judge motion the same way. OpenCV's DIS flow
(Kroeger et al. 2016) on 8-bit grayscale.
"""

import cv2
import numpy as np

# Forward-backward consistency (Sundaram et al. 2010, as in Ruder et al. 2016 and Lai et al. 2018): a pixel is
# trusted when |b + f(x + b)|^2 < ALPHA (|b|^2 + |f(x + b)|^2) + BETA.
ALPHA = 0.01
BETA = 0.5
# ... and when the warped previous frame's gray level is within this many 8-bit levels of the frame's.
BRIGHTNESS_TOLERANCE = 12.0

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def as_gray8(frame):
    """8-bit grayscale of an RGB (H, W, 3) or gray (H, W) / (H, W, 1) frame, uint8 or float in [0, 1]."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        frame = np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[-1] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return frame.reshape(frame.shape[:2])


class Flow:
    """DIS optical flow of one preset; `backward(current, previous)` gives where each pixel came from."""

    def __init__(self, preset="medium"):
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[preset])

    def __call__(self, source, target):
        """Flow (H, W, 2) float32 with `target(x + flow(x)) ~ source(x)`."""
        return self._dis.calc(source, target, None)

    def backward(self, current, previous):
        """`(sampling map, trusted mask)` to warp `previous` onto `current` (8-bit gray frames of one size).

        The map is the absolute (x, y) position in `previous` of each pixel of `current` (for `cv2.remap`);
        the mask (float32 in {0, 1}) marks pixels whose motion passes the forward-backward and brightness
        checks and stays inside the frame: everything else counts as occluded or unreliable.
        """
        back = self(current, previous)
        forward = self(previous, current)
        height, width = current.shape
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        map_x, map_y = grid_x + back[..., 0], grid_y + back[..., 1]
        forward_there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        round_trip = np.sum((back + forward_there) ** 2, axis=-1)
        scale = np.sum(back**2, axis=-1) + np.sum(forward_there**2, axis=-1)
        consistent = round_trip < ALPHA * scale + BETA
        inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
        warped = cv2.remap(previous, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        similar = np.abs(warped.astype(np.float32) - current.astype(np.float32)) < BRIGHTNESS_TOLERANCE
        return (map_x, map_y), (consistent & inside & similar).astype(np.float32)


def warp(image, sampling):
    """`image` (H, W) or (H, W, C) float32 resampled at `sampling` (from `Flow.backward`), bilinear."""
    map_x, map_y = sampling
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def histogram_change(gray_a, gray_b):
    """Total-variation distance in [0, 1] between two frames' gray-level histograms (scene-cut cue)."""
    ha = np.bincount((gray_a.ravel() >> 2).astype(np.intp), minlength=64) / gray_a.size
    hb = np.bincount((gray_b.ravel() >> 2).astype(np.intp), minlength=64) / gray_b.size
    return 0.5 * float(np.abs(ha - hb).sum())
