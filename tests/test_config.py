"""Config loading: The paper's size values in the shipped YAMLs, overrides, and every rejection."""

import os

import pytest

from electra_tf import config as config_lib
from electra_tf.config import ConfigError, load_config

from conftest import REPO_ROOT

CONFIGS = os.path.join(REPO_ROOT, "configs")


def _path(name):
    return os.path.join(CONFIGS, f"electra_{name}.yaml")


@pytest.mark.parametrize(
    "name, d, g, mask, seq, batch, lr, steps, max_pred",
    [
        # (layers, hidden, ffn, heads, emb), (hidden, layers, ffn, heads)
        ("small", (12, 256, 1024, 4, 128), (64, 12, 256, 1), 0.15, 128, 128, 5e-4, 1_000_000, 19),
        ("base", (12, 768, 3072, 12, 768), (256, 12, 1024, 4), 0.15, 512, 256, 2e-4, 766_000, 79),
        ("large", (24, 1024, 4096, 16, 1024), (256, 24, 1024, 4), 0.25, 512, 2048, 2e-4, 400_000, 130),
    ],
)
def test_paper_sizes_match_spec(name, d, g, mask, seq, batch, lr, steps, max_pred):
    cfg = load_config(_path(name))
    m = cfg.model
    assert (m.num_layers, m.hidden_size, m.intermediate_size, m.num_heads, m.embedding_size) == d
    assert (cfg.generator_hidden_size(), cfg.generator_num_layers(),
            cfg.generator_intermediate_size(), cfg.generator_num_heads()) == g
    assert cfg.objective.mask_prob == mask
    assert cfg.data.max_seq_length == seq
    assert cfg.training.batch_size == batch
    assert cfg.optimizer.learning_rate == pytest.approx(lr)
    assert cfg.training.train_steps == steps
    assert cfg.objective.max_predictions_per_seq == max_pred
    # Shared by all sizes (docs/architecture.md, "Model sizes").
    assert m.vocab_size == 30522 and m.max_position_embeddings == 512
    assert m.layer_norm_epsilon == 1e-12 and m.initializer_range == 0.02
    assert (m.hidden_dropout, m.attention_dropout) == (0.1, 0.1)
    assert cfg.optimizer.warmup_steps == 10000 and cfg.optimizer.weight_decay == 0.01
    assert (cfg.optimizer.beta_1, cfg.optimizer.beta_2, cfg.optimizer.epsilon) == (0.9, 0.999, 1e-6)
    assert cfg.optimizer.clip_norm == 1.0 and not cfg.optimizer.bias_correction
    assert (cfg.objective.gen_weight, cfg.objective.disc_weight) == (1.0, 50.0)
    assert cfg.objective.mask_token_prob == 0.85


def test_tiny_config_is_small_enough_for_cpu():
    cfg = load_config(_path("tiny"))
    assert cfg.model.hidden_size <= 128
    assert cfg.model.num_layers <= 4


def test_derived_max_predictions_when_null():
    cfg = load_config(_path("small"), ["objective.max_predictions_per_seq=null",
                                       "data.max_seq_length=512"])
    assert cfg.objective.max_predictions_per_seq == 79


def test_overrides_apply_with_yaml_types():
    cfg = load_config(_path("tiny"), ["training.batch_size=4", "optimizer.learning_rate=1e-3",
                                      "model.embedding_sharing=gdes", "training.jit_compile=true"])
    assert cfg.training.batch_size == 4
    assert cfg.optimizer.learning_rate == pytest.approx(1e-3)
    assert cfg.model.embedding_sharing == "gdes"
    assert cfg.training.jit_compile is True


def test_save_and_reload_round_trip(tmp_path):
    cfg = load_config(_path("base"), ["training.seed=7"])
    out = tmp_path / "config.yaml"
    config_lib.save_config(cfg, str(out))
    again = load_config(str(out))
    assert again == cfg
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def _write(tmp_path, text):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize(
    "text, must_name",
    [
        ("model:\n  hidden_sise: 256\n", "model.hidden_sise"),  # unknown key
        ("modle:\n  hidden_size: 256\n", "modle"),  # unknown section
        ("model:\n  hidden_size: '256'\n", "model.hidden_size"),  # wrong type
        ("model:\n  num_layers: 2.5\n", "model.num_layers"),  # float for int
        ("objective:\n  disallow_correct: 1\n", "objective.disallow_correct"),  # int for bool
        ("model:\n  hidden_size: 250\n  num_heads: 4\n", "model.hidden_size"),  # not divisible
        ("generator:\n  hidden_fraction: 1.5\n", "generator.hidden_fraction"),  # wider G
        ("generator:\n  num_layers: 20\n", "generator.num_layers"),  # deeper G
        ("objective:\n  mask_prob: 0.0\n", "objective.mask_prob"),
        ("objective:\n  mask_prob: 1.0\n", "objective.mask_prob"),
        ("objective:\n  max_predictions_per_seq: 0\n", "objective.max_predictions_per_seq"),
        ("data:\n  max_seq_length: 1024\n", "data.max_seq_length"),  # above max positions
        ("model:\n  embedding_sharing: shared\n", "model.embedding_sharing"),
        ("optimizer:\n  name: sgd\n", "optimizer.name"),
        ("training:\n  mixed_precision: fp8\n", "training.mixed_precision"),
        ("training:\n  batch_size: 0\n", "training.batch_size"),
        ("model: [1, 2]\n", "model"),
        # NaN and infinity compare false with every bound: refused by name.
        ("optimizer:\n  learning_rate: .nan\n", "optimizer.learning_rate=nan"),
        ("optimizer:\n  learning_rate: .inf\n", "optimizer.learning_rate=inf"),
        ("objective:\n  temperature: .nan\n", "objective.temperature=nan"),
    ],
)
def test_rejections_name_key_file_and_allowed(tmp_path, text, must_name):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert path in message
    assert must_name in message


def test_rejection_lists_allowed_values(tmp_path):
    with pytest.raises(ConfigError, match=r"tied \| untied \| gdes"):
        load_config(_write(tmp_path, "model:\n  embedding_sharing: shared\n"))
    with pytest.raises(ConfigError, match=r"multiple of model.num_heads \(4\)"):
        load_config(_write(tmp_path, "model:\n  hidden_size: 250\n"))
    with pytest.raises(ConfigError, match=r"allowed keys here: .*hidden_size"):
        load_config(_write(tmp_path, "model:\n  hidden_sise: 256\n"))


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(_path("tiny"), ["training.batch_size"])
    with pytest.raises(ConfigError, match="training.batch_sizes"):
        load_config(_path("tiny"), ["training.batch_sizes=3"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="not valid YAML at line 3"):
        load_config(_write(tmp_path, "model:\n  hidden_size: [\n"))


def test_every_training_flag_is_a_config_key():
    """The binary's flags are config keys (so config.yaml records the whole run); only the
    paths and the config's own flags are not."""
    from absl import flags
    from electra_tf import train as train_bin

    paths = {"config", "override", "train_data", "eval_data", "model_dir", "vocab"}
    defined = {flag.name for flag in flags.FLAGS.flags_by_module_dict()[train_bin.__name__]}
    assert paths <= defined and len(defined) > 20
    assert defined - paths == set(train_bin._FLAG_TO_KEY)
    cfg = config_lib.ElectraConfig()
    for flag, key in train_bin._FLAG_TO_KEY.items():
        section, name = key.split(".")
        assert hasattr(getattr(cfg, section), name), (flag, key)
    # Flags become overrides, so they are validated like the YAML and saved with it.
    resolved = train_bin.resolve_config(
        os.path.join(CONFIGS, "electra_tiny.yaml"), [],
        {"seed_group_size": 4, "deterministic": True, "strategy": "mirrored",
         "peak_tflops": 0.5}, model_dir="/nonexistent")
    assert (resolved.training.seed_group_size, resolved.runtime.deterministic,
            resolved.runtime.strategy, resolved.runtime.peak_tflops) == (4, True, "mirrored", 0.5)
