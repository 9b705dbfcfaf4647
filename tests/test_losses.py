import numpy as np
import pytest
import tensorflow as tf

from keras_colour import losses
from keras_colour.config import LossConfig


def test_colour_losses():
    a = tf.constant([[0.0, 0.0], [1.0, -1.0]])
    b = tf.constant([[0.5, 0.0], [1.0, 2.0]])
    assert float(losses.colour_loss("l1")(a, b)) == pytest.approx((0.5 + 0 + 0 + 3) / 4)
    # Huber, delta 1: 0.5 * 0.25 for 0.5, 1 * (3 - 0.5) for 3
    assert float(losses.colour_loss("smooth_l1")(a, b)) == pytest.approx((0.125 + 2.5) / 4)
    # delta 0.25: 0.5 * 0.0625 + 0.25 * 0.25 for 0.5, 0.03125 + 0.25 * 2.75 for 3
    assert float(losses.colour_loss("smooth_l1", LossConfig(smooth_l1_delta=0.25))(a, b)) == pytest.approx(
        (0.09375 + 0.71875) / 4
    )
    with pytest.raises(ValueError, match="smooth_l1"):
        losses.colour_loss("l2")


def test_lsgan_and_bce():
    real, fake = (
        [tf.ones([2, 4, 4, 1]), tf.fill([2, 2, 2, 1], 0.5)],
        [tf.zeros([2, 4, 4, 1]), tf.fill([2, 2, 2, 1], 0.5)],
    )
    lsgan, bce = losses.adversarial_loss("lsgan"), losses.adversarial_loss("bce")
    d = lsgan.discriminator(real, fake)
    assert [float(x) for x in d] == pytest.approx([0.0, 0.5 * (0.25 + 0.25)])
    assert float(lsgan.generator(fake)) == pytest.approx(1.0 + 0.25)
    assert float(lsgan.against(tf.fill([2, 3, 3, 1], 0.25), 1.0)) == pytest.approx(0.5625)
    logits = tf.zeros([1, 30, 30, 1])
    assert float(bce.discriminator(logits, logits)[0]) == pytest.approx(np.log(2.0))
    assert float(bce.generator(logits)) == pytest.approx(np.log(2.0))
    assert float(bce.against(tf.fill([1, 2, 2, 1], 3.0), 1.0)) == pytest.approx(np.log1p(np.exp(-3.0)), rel=1e-6)
    with pytest.raises(ValueError, match="lsgan"):
        losses.adversarial_loss("wgan")


def _hand_made():
    # 1 image, 2x2 pixels, K = 4 classes; classes 0 and 2 present, one pixel ignored.
    mask = tf.constant([[[0, 2], [2, 255]]])
    ab_true = tf.constant([[[[0.1, 0.2], [0.3, 0.4]], [[0.5, 0.6], [0.7, 0.8]]]])
    pred = np.zeros((1, 2, 2, 8), np.float32)
    pred[..., 0:2] = 0.1  # class 0 pair
    pred[..., 4:6] = 0.0  # class 2 pair
    return ab_true, pred, mask


def test_shared_decoder_loss_on_hand_made_mask():
    ab_true, pred, mask = _hand_made()
    # class 0: pixel (0,0): |0.1-0.1| + |0.1-0.2| = 0.1 -> mean over 2 channels 0.05
    # class 2: pixels (0,1), (1,0): (0.3 + 0.4)/2 = 0.35 and (0.5 + 0.6)/2 = 0.55 -> 0.45
    present = float(losses.shared_decoder_loss(ab_true, pred, mask, True, "class_pixels"))
    every = float(losses.shared_decoder_loss(ab_true, pred, mask, False, "class_pixels"))
    assert present == pytest.approx((0.05 + 0.45) / 2, abs=1e-6)
    assert every == pytest.approx((0.05 + 0.45) / 4, abs=1e-6)


def test_absent_classes_and_ignored_pixels_do_not_count():
    ab_true, pred, mask = _hand_made()
    base = float(losses.shared_decoder_loss(ab_true, pred, mask, True, "class_pixels"))
    changed = pred.copy()
    changed[..., 2:4] = 0.9  # class 1: absent
    changed[..., 6:8] = -0.9  # class 3: absent
    changed[0, 1, 1, :] = 0.7  # the ignored pixel, every class
    assert float(losses.shared_decoder_loss(ab_true, changed, mask, True, "class_pixels")) == pytest.approx(
        base, abs=1e-7
    )
    # a present class's prediction does count
    changed[0, 0, 0, 0:2] = 0.9
    assert float(losses.shared_decoder_loss(ab_true, changed, mask, True, "class_pixels")) > base


def test_select_class_ab_and_segmentation_loss():
    ab_true, pred, mask = _hand_made()
    chosen = losses.select_class_ab(pred, mask).numpy()
    assert np.allclose(chosen[0, 0, 0], [0.1, 0.1]) and np.allclose(chosen[0, 0, 1], [0.0, 0.0])
    assert np.allclose(chosen[0, 1, 1], [0.0, 0.0])  # ignored pixel -> grey
    logits = np.full((1, 2, 2, 4), -10.0, np.float32)
    for (y, x), k in {(0, 0): 0, (0, 1): 2, (1, 0): 2}.items():
        logits[0, y, x, k] = 10.0
    logits[0, 1, 1, :] = [10, -10, -10, -10]  # would be wrong for any label, but it is ignored
    assert float(losses.segmentation_loss(mask, logits)) < 1e-6
    logits[0, 0, 0] = 0.0
    assert float(losses.segmentation_loss(mask, logits)) == pytest.approx(np.log(4.0) / 3, rel=1e-4)


def test_heads_turn_outputs_into_ab():
    from keras_colour import heads

    ab_true, pred, mask = _hand_made()
    plain = tf.fill([1, 2, 2, 2], 0.3)
    assert np.allclose(heads.PlainHead().ab(plain).numpy(), 0.3)
    assert np.allclose(
        heads.SeparateDecodersHead().ab({"ab": plain, "segmentation": tf.zeros([1, 2, 2, 4])}).numpy(), 0.3
    )
    shared = heads.SharedDecoderHead()
    np.testing.assert_array_equal(shared.ab(pred, mask).numpy(), losses.select_class_ab(pred, mask).numpy())
    with pytest.raises(ValueError, match="class mask is needed"):
        shared.ab(pred)


@pytest.mark.parametrize(
    "outputs, head",
    [((2,), "PlainHead"), ((8,), "SharedDecoderHead"), ({"ab": 2, "segmentation": 4}, "SeparateDecodersHead")],
)
def test_head_is_read_from_a_models_outputs(outputs, head):
    import keras

    from keras_colour import heads

    x = keras.Input((4, 4, 1))
    if isinstance(outputs, dict):
        y = {k: keras.layers.Conv2D(c, 1, name=k)(x) for k, c in outputs.items()}
    else:
        y = keras.layers.Conv2D(outputs[0], 1)(x)
    assert type(heads.head_for_model(keras.Model(x, y))).__name__ == head
