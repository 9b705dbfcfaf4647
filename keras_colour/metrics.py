"""Evaluation metrics of the thesis (Tables 2 to 5), each with its exact definition.

* `psnr_rgb`: PSNR on RGB uint8 images, peak 255: `10 log10(255^2 / MSE)`,
  MSE over all pixels and the 3 channels of one image; averaged over images.
  This is the usual convention, and the one we report as "PSNR".
* `psnr_ab_bbc`: the original BBC code's variant: the same formula on the a
  and b channels in unscaled Lab units, still with peak 255.
* `l1_ab_bbc`: the BBC code's L1 (`models/test.py:137`): mean absolute difference of the a and b channels,
  in Lab units, per image, averaged over images (on the colours `evaluation.colours` chooses).
* `perceptual_vgg19`: the BBC code's perceptual distance (`models/test.py:29-65, 143-146`), computed by
  `keras_colour.models.perceptual.BBCPerceptualDistance`: ImageNet VGG19, mean absolute difference of the
  activations at `block1_conv1` ... `block5_conv1`, averaged over the five layers, on the uint8 RGB
  images resized to 224x224 (bicubic) and `preprocess_input`; per image, averaged over images. Without
  VGG19's ImageNet weights it is not computed (never from random weights), and `metrics.json` says why.
* `ssim`: standard SSIM (Wang et al. 2004) in [-1, 1] on RGB uint8: 11x11
  Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, data range 255, averaged
  over channels and pixels (`tf.image.ssim`).
* `ColourHistogram`: counts of a and b values over the whole test set with the
  BBC code's bin edges, `np.arange(-110, 110)`: 219 bins of width 1 from -110
  to 109; plotted as the BBC code saved them, `log(counts / images)` with empty
  bins set to the smallest value (`log_density`).
* `displayed_lab`: the BBC code's evaluation colours (`models/test.py`): Lab ->
  RGB (gamut-clipped by skimage) x 255, truncated to uint8 as displayed, then
  Lab again from those pixels.
* `js_divergence`, `kl_divergence`: between the real and generated
  histograms, each first turned into a probability distribution
  `p = (h + eps) / sum(h + eps)` with `eps = 1e-10`. JS uses log base 2, so it
  lies in [0, 1]; KL(real || generated) uses the natural log (nats).
* `colourfulness`: Hasler and Suesstrunk (2003) on RGB in [0, 255]:
  `rg = R - G`, `yb = (R + G) / 2 - B`,
  `M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)`
  (population standard deviations), per image, averaged over images.
* The warping error of a video (temporal flicker) is `keras_colour.video.evaluate.warping_error`.
"""

import warnings

import numpy as np
import skimage.color
import tensorflow as tf

HIST_EDGES = np.arange(-110.0, 110.0)
EPSILON = 1e-10


def _batch(x):
    x = np.asarray(x)
    return x[None] if x.ndim == 3 else x


def _mean_psnr(real, fake, peak=255.0):
    real, fake = _batch(real).astype(np.float64), _batch(fake).astype(np.float64)
    mse = np.mean((real - fake) ** 2, axis=(1, 2, 3))
    return float(np.mean(10.0 * np.log10(peak**2 / np.maximum(mse, 1e-12))))


def psnr_rgb(real_rgb8, fake_rgb8):
    """Mean PSNR (dB) over images of uint8 RGB `[N, H, W, 3]` (or one image)."""
    return _mean_psnr(real_rgb8, fake_rgb8)


def psnr_ab_bbc(real_ab, fake_ab):
    """The BBC code's PSNR: on unscaled Lab a, b (`[N, H, W, 2]`), peak 255."""
    return _mean_psnr(real_ab, fake_ab)


def l1_ab_bbc(real_ab, fake_ab):
    """Mean over images of the mean |a, b difference| in Lab units; `[B, H, W, 2]` each (BBC `models/test.py:137`)."""
    diff = np.abs(np.asarray(fake_ab, np.float64) - np.asarray(real_ab, np.float64))
    return float(np.mean(diff.reshape(len(diff), -1).mean(axis=1)))


def ssim(real_rgb8, fake_rgb8):
    """Mean standard SSIM in [-1, 1] over uint8 RGB images."""
    real = tf.convert_to_tensor(_batch(real_rgb8), tf.float32)
    fake = tf.convert_to_tensor(_batch(fake_rgb8), tf.float32)
    return float(
        tf.reduce_mean(tf.image.ssim(real, fake, max_val=255.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03))
    )


def colourfulness(rgb8):
    """Mean Hasler-Suesstrunk colourfulness over uint8 RGB images."""
    rgb = _batch(rgb8).astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = (r - g).reshape(len(rgb), -1)
    yb = (0.5 * (r + g) - b).reshape(len(rgb), -1)
    std = np.sqrt(rg.std(axis=1) ** 2 + yb.std(axis=1) ** 2)
    mean = np.sqrt(rg.mean(axis=1) ** 2 + yb.mean(axis=1) ** 2)
    return float(np.mean(std + 0.3 * mean))


def _probabilities(hist):
    h = np.asarray(hist, dtype=np.float64) + EPSILON
    return h / h.sum()


def js_divergence(real_hist, fake_hist):
    """Jensen-Shannon divergence, base 2, in [0, 1]."""
    p, q = _probabilities(real_hist), _probabilities(fake_hist)
    m = 0.5 * (p + q)
    return float(0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m)))


def kl_divergence(real_hist, fake_hist):
    """KL(real || generated) in nats."""
    p, q = _probabilities(real_hist), _probabilities(fake_hist)
    return float(np.sum(p * np.log(p / q)))


class ColourHistogram:
    """Accumulates a and b histograms (bins of 1 from -110 to 110) over many images."""

    def __init__(self):
        self.a = np.zeros(len(HIST_EDGES) - 1, np.int64)
        self.b = np.zeros(len(HIST_EDGES) - 1, np.int64)
        self.images = 0

    def update(self, ab):
        """`ab`: unscaled Lab a, b values of a batch of images `[N, H, W, 2]` (or one image `[H, W, 2]`)."""
        ab = np.asarray(ab, np.float64)
        self.images += len(ab) if ab.ndim == 4 else 1
        ab = ab.reshape(-1, 2)
        self.a += np.histogram(ab[:, 0], HIST_EDGES)[0]
        self.b += np.histogram(ab[:, 1], HIST_EDGES)[0]

    @property
    def centres(self):
        return 0.5 * (HIST_EDGES[:-1] + HIST_EDGES[1:])

    def log_density(self, channel):
        """`log(counts / images)` of channel `a` or `b`, empty bins set to the smallest value (BBC `test.py`)."""
        counts = getattr(self, channel).astype(np.float64)
        with np.errstate(divide="ignore"):
            values = np.log(counts / max(self.images, 1))
        finite = values[np.isfinite(values)]
        values[~np.isfinite(values)] = finite.min() if finite.size else 0.0
        return values


def displayed(lab):
    """The BBC code's displayed colours: Lab `[..., 3]` -> (uint8 RGB as displayed, its Lab).

    skimage's `lab2rgb` clips to the sRGB gamut; `np.uint8(rgb * 255)` truncates, as the BBC decoder did.
    """
    with warnings.catch_warnings():  # "negative Z values clipped": the gamut clipping meant here
        warnings.simplefilter("ignore", UserWarning)
        rgb8 = np.uint8(skimage.color.lab2rgb(np.asarray(lab, np.float64)) * 255)
    return rgb8, skimage.color.rgb2lab(rgb8)


def compare_histograms(real, fake):
    """JS and KL for a and b between two `ColourHistogram`s."""
    return {
        "js_a": js_divergence(real.a, fake.a),
        "js_b": js_divergence(real.b, fake.b),
        "kl_a": kl_divergence(real.a, fake.a),
        "kl_b": kl_divergence(real.b, fake.b),
    }
