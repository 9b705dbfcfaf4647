import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
import skimage.metrics

from keras_colour import metrics


@pytest.fixture
def pair(photos):
    real = photos[0][:96, :128]
    rng = np.random.default_rng(0)
    fake = np.clip(real.astype(int) + rng.integers(-40, 40, real.shape), 0, 255).astype(np.uint8)
    return real, fake


def test_psnr_matches_skimage(pair):
    real, fake = pair
    assert metrics.psnr_rgb(real, fake) == pytest.approx(
        skimage.metrics.peak_signal_noise_ratio(real, fake, data_range=255), abs=1e-6
    )
    both = metrics.psnr_rgb(np.stack([real, real]), np.stack([fake, real // 2]))
    ref = np.mean([skimage.metrics.peak_signal_noise_ratio(real, f, data_range=255) for f in (fake, real // 2)])
    assert both == pytest.approx(ref, abs=1e-6)


def test_bbc_ab_psnr_definition(rng):
    real = rng.uniform(-100, 100, (2, 8, 8, 2))
    fake = real + 5.0
    assert metrics.psnr_ab_bbc(real, fake) == pytest.approx(10 * np.log10(255**2 / 25.0), abs=1e-9)


def test_ssim_matches_skimage_and_is_standard(pair):
    real, fake = pair
    ref = skimage.metrics.structural_similarity(
        real, fake, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert metrics.ssim(real, fake) == pytest.approx(ref, abs=1e-4)
    assert metrics.ssim(real, real) == pytest.approx(1.0, abs=1e-6)
    assert -1.0 <= metrics.ssim(real, 255 - real) <= 1.0


def test_js_and_kl_match_scipy(rng):
    p = rng.integers(0, 1000, 219)
    q = rng.integers(0, 1000, 219)
    q[:30] = 0  # empty bins: the epsilon keeps KL finite
    pe, qe = (p + metrics.EPSILON) / (p + metrics.EPSILON).sum(), (q + metrics.EPSILON) / (q + metrics.EPSILON).sum()
    assert metrics.js_divergence(p, q) == pytest.approx(
        scipy.spatial.distance.jensenshannon(pe, qe, base=2) ** 2, abs=1e-6
    )
    assert metrics.kl_divergence(p, q) == pytest.approx(scipy.stats.entropy(pe, qe), abs=1e-6)
    assert metrics.js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    disjoint = np.zeros(219)
    disjoint[:10] = 5
    other = np.zeros(219)
    other[-10:] = 5
    assert metrics.js_divergence(disjoint, other) == pytest.approx(1.0, abs=1e-6)


def test_colourfulness_by_hand():
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, 0] = [255, 0, 0]
    img[0, 1] = [0, 255, 0]
    img[1, 0] = [0, 0, 255]
    img[1, 1] = [255, 255, 255]
    rg = np.array([255, -255, 0, 0], float)
    yb = np.array([127.5, 127.5, -255, 0], float)
    expected = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    assert metrics.colourfulness(img) == pytest.approx(expected, abs=1e-9)
    gray = np.full((4, 4, 3), 90, np.uint8)
    assert metrics.colourfulness(gray) == 0.0


def test_histogram_bins_like_bbc_code(rng):
    h = metrics.ColourHistogram()
    h.update(np.array([[-110.0, 0.2], [108.9, 0.9], [109.5, 0.1], [0.5, -0.5], [-200, 200]]))
    # BBC models/test.py: np.histogram(..., bins=np.arange(-110., 110.)): 219 bins, the last [108, 109]
    np.testing.assert_array_equal(h.a, np.histogram([-110.0, 108.9, 109.5, 0.5, -200], np.arange(-110.0, 110.0))[0])
    assert len(h.a) == 219 and h.centres[0] == -109.5
    assert h.a.sum() == 3 and h.b.sum() == 4  # values outside [-110, 109] fall outside the bins
    assert h.a[0] == 1 and h.a[-1] == 1 and h.a[110] == 1
    assert h.b[110] == 3 and h.b[109] == 1
