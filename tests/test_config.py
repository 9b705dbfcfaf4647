import os

import pytest
import yaml

from keras_colour.config import Config, ConfigError, config_from_dict, load_config, save_config


def _write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_defaults_are_the_spec_values():
    c = Config()
    assert (c.seed, c.data.image_size, c.data.batch_size, c.data.test_per_class) == (42, 256, 16, 10)
    assert (c.train.g_learning_rate, c.train.beta_1, c.train.epochs) == (2e-4, 0.5, 200)
    assert (c.loss.colour, c.loss.colour_weight) == ("l1", 100.0)


def test_unknown_key_names_key_and_file(tmp_path):
    path = _write(tmp_path, "model:\n  generator: gorriz\n  filterz: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert "model.filterz" in msg and path in msg and "unknown key" in msg
    assert msg.count("\n") == 0  # one clear line


def test_wrong_type_names_key_value_and_file(tmp_path):
    path = _write(tmp_path, "train:\n  epochs: many\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml: `train\.epochs`: must be an integer\. Received: 'many'"):
        load_config(path)


def test_bad_values_are_errors(tmp_path):
    for text, key in [
        ("model:\n  norm: layer\n", "model.norm"),
        ("model:\n  generator: resnet\n", "model.generator"),
        ("model:\n  d_scales: 0\n  discriminator: multiscale\nloss:\n  adversarial: lsgan\n", "model.d_scales"),
        ("data:\n  batch_size: -2\n", "data.batch_size"),
        ("model:\n  discriminator: patchgan\n", "loss.adversarial"),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(_write(tmp_path, text))


def test_missing_data_folder_is_one_clear_error(tmp_path):
    path = _write(tmp_path, f"data:\n  kind: folder\n  train: {tmp_path}/nowhere\n")
    config = load_config(path)
    with pytest.raises(ConfigError, match=r"`data\.train`: path does not exist: .*nowhere"):
        config.check_paths()


def test_overrides_and_env_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_DATA", str(tmp_path))
    path = _write(tmp_path, "data:\n  kind: folder\n  train: ${MY_DATA}/imagenet\noutput_dir: ${RUNS:-runs}/x\n")
    config = load_config(path, ["train.epochs=3", "model.spectral_norm=true", "loss.feature={backbone: vgg19}"])
    assert config.data.train == f"{tmp_path}/imagenet" and config.output_dir == "runs/x"
    assert config.train.epochs == 3 and config.model.spectral_norm == "keras"  # true reads as keras
    assert config.loss.feature.backbone == "vgg19" and config.loss.feature.layers == ["block3_conv3"]
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        config_from_dict({"data": {"train": "${NOT_SET_ANYWHERE}"}}, source="x.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(path, ["train.epochs"])


def test_scientific_notation_without_dot_is_a_float(tmp_path):
    config = load_config(_write(tmp_path, "train:\n  g_learning_rate: 1e-4\n"))
    assert config.train.g_learning_rate == 1e-4


def test_resolved_config_round_trips(tmp_path):
    config = config_from_dict(
        {"model": {"generator": "pix2pix", "discriminator": "patchgan"}, "loss": {"adversarial": "bce"}}
    )
    out = tmp_path / "config.yaml"
    save_config(config, str(out))
    again = load_config(str(out))
    assert again.to_dict() == config.to_dict()
    assert yaml.safe_load(out.read_text())["model"]["generator"] == "pix2pix"


def test_not_a_mapping_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(os.path.join(tmp_path, "missing.yaml"))


def test_a_config_built_in_code_is_validated_too():
    from keras_colour.config import ModelConfig, TrainConfig

    with pytest.raises(ConfigError, match=r"`model\.norm`: unknown value 'layer'"):
        ModelConfig(norm="layer")
    with pytest.raises(ConfigError, match=r"`train\.epochs`: must be an integer\. Received: '3'"):
        TrainConfig(epochs="3")
    with pytest.raises(ConfigError, match=r"`loss\.adversarial`"):
        Config(model=ModelConfig(discriminator="patchgan"))
    assert TrainConfig(g_learning_rate=1).g_learning_rate == 1.0  # an int where a float is due is widened


@pytest.mark.parametrize(
    "text, key",
    [
        ("train:\n  g_learning_rate: .inf\n", "train.g_learning_rate"),
        ("loss:\n  colour_weight: .nan\n", "loss.colour_weight"),
        ("train:\n  epochs: 3\n  epochs: 4\n", "epochs"),
    ],
    ids=["inf", "nan", "duplicate"],
)
def test_non_finite_numbers_and_duplicate_keys_are_rejected(tmp_path, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as e:
        load_config(path)
    assert path in str(e.value)


def test_check_lists_every_broken_config_and_exits_1(tmp_path):
    import subprocess
    import sys

    from helpers import ROOT

    good = os.path.join(ROOT, "experiments", "quickstart.yaml")
    bad_key = _write(tmp_path, "model:\n  filterz: 3\n", "bad_key.yaml")
    bad_value = _write(tmp_path, "train:\n  epochs: 0\n", "bad_value.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "keras_colour.cli", "check", bad_key, good, bad_value],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "bad_key.yaml: `model.filterz`: unknown key" in result.stderr
    assert "bad_value.yaml: `train.epochs`: must be > 0" in result.stderr
    assert "2 of 3 config(s) have errors" in result.stderr
    assert "quickstart.yaml: ok" in result.stdout and "protocol=simultaneous" in result.stdout
    assert "Traceback" not in result.stderr and "tensorflow" not in result.stderr.lower()


def test_an_unknown_key_or_value_suggests_the_near_one():
    from keras_colour.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r"`train.epoch`: unknown key; did you mean `epochs`\?"):
        config_from_dict({"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"did you mean 'pillow'\?"):
        config_from_dict({"data": {"decoder": "pilow"}})
    with pytest.raises(ConfigError) as e:
        config_from_dict({"train": {"zzz": 3}})
    assert "did you mean" not in str(e.value)
