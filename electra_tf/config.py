"""Typed configuration for ELECTRA pretraining, loaded from YAML with flag overrides.

A config is a tree of dataclasses (`ElectraConfig`). YAML files under `configs/` name
experiments; `load_config(path, overrides)` reads one, applies `section.key=value` overrides
and validates the result. Every rejection is a `ConfigError` whose message is one line naming
the key, the file and what is allowed.

Example:

>>> cfg = load_config("configs/electra_small.yaml", ["training.batch_size=32"])
>>> cfg.generator_hidden_size(), cfg.objective.max_predictions_per_seq
(64, 19)
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from typing import Any, Optional, Sequence

import yaml


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped or inconsistent (one-line message)."""


@dataclasses.dataclass
class ModelConfig:
    """Discriminator size and the embedding block shared with the generator (docs/architecture.md, "Model sizes")."""

    vocab_size: int = 30522
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 12
    num_heads: int = 4
    intermediate_size: int = 1024
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_epsilon: float = 1e-12
    # tied (reference default), untied, or gdes (gradient-disentangled, DeBERTa-v3).
    embedding_sharing: str = "tied"


@dataclasses.dataclass
class GeneratorConfig:
    """Generator size relative to the discriminator (docs/architecture.md, "Model sizes").

    hidden = round(D hidden * hidden_fraction), heads = max(1, hidden // 64),
    FFN = 4 * hidden. `num_layers` None means the discriminator's layer count.
    """

    hidden_fraction: float = 0.25
    num_layers: Optional[int] = None


@dataclasses.dataclass
class ObjectiveConfig:
    """Masking, sampling and loss weights (docs/architecture.md, "Masking")."""

    # electra: generator + discriminator; mlm: BERT-style masked LM at the discriminator's size.
    kind: str = "electra"
    mask_prob: float = 0.15
    # None derives int((mask_prob + 0.005) * max_seq_length), as the reference does.
    max_predictions_per_seq: Optional[int] = None
    # Probability that a chosen position becomes [MASK]; otherwise the original is kept.
    mask_token_prob: float = 0.85
    # The reference draws positions with replacement; we default to without (documented).
    sample_positions_with_replacement: bool = False
    gen_weight: float = 1.0
    disc_weight: float = 50.0
    temperature: float = 1.0
    disallow_correct: bool = False


@dataclasses.dataclass
class DataConfig:
    max_seq_length: int = 128
    lower_case: bool = True


@dataclasses.dataclass
class OptimizerConfig:
    """Reference `model/optimization.py`: Adam with decoupled decay, no bias correction (docs/architecture.md, "Optimisation")."""

    name: str = "adamw"
    learning_rate: float = 5e-4
    warmup_steps: int = 10000
    weight_decay: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    clip_norm: float = 1.0
    bias_correction: bool = False
    lr_decay_power: float = 1.0


@dataclasses.dataclass
class TrainingConfig:
    batch_size: int = 128
    train_steps: int = 1000000
    grad_accum_steps: int = 1
    seed: int = 0
    steps_per_loop: int = 100
    log_every: int = 100
    checkpoint_every: int = 1000
    eval_every: int = 0
    eval_steps: int = 100
    max_checkpoints: int = 3
    # Examples that share one masking seed; 0 = the per-replica batch. A size dividing the
    # per-replica batch makes masks independent of how the global batch is split.
    seed_group_size: int = 0
    # none, mixed_bfloat16 or mixed_float16.
    mixed_precision: str = "none"
    jit_compile: bool = False


@dataclasses.dataclass
class RuntimeConfig:
    """Where and how the run executes; may change between a run and its resume.

    The flags follow Model Garden's `distribute_utils`: `strategy` one_device | mirrored |
    multi_worker_mirrored | tpu, `num_gpus`, `all_reduce_alg`, `tpu`.
    """

    strategy: str = "one_device"
    num_gpus: int = 0
    # Split the CPU into this many logical devices (multi-device runs without GPUs).
    num_cpu_devices: int = 0
    all_reduce_alg: Optional[str] = None
    tpu: Optional[str] = None
    # Per-device peak TFLOP/s for the MFU figure; null measures the matmul peak at start.
    peak_tflops: Optional[float] = None
    # TF op determinism: bit-exact reruns and resumes on CPU, at some speed cost.
    deterministic: bool = False
    # Read every record of the data back before training (CRC, schema, counts against
    # dataset.json); false checks only each shard's size (docs/architecture.md, "The TFRecord
    # schema").
    verify_data: bool = False


@dataclasses.dataclass
class ElectraConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    generator: GeneratorConfig = dataclasses.field(default_factory=GeneratorConfig)
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

    # Derived sizes (docs/architecture.md, "Model sizes"). Kept as methods so the YAML holds only free choices.
    def generator_hidden_size(self) -> int:
        return max(1, int(round(self.model.hidden_size * self.generator.hidden_fraction)))

    def generator_num_heads(self) -> int:
        return max(1, self.generator_hidden_size() // 64)

    def generator_intermediate_size(self) -> int:
        return 4 * self.generator_hidden_size()

    def generator_num_layers(self) -> int:
        return self.generator.num_layers or self.model.num_layers

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_CHOICES = {
    ("model", "embedding_sharing"): ("tied", "untied", "gdes"),
    ("objective", "kind"): ("electra", "mlm"),
    ("optimizer", "name"): ("adamw", "lamb"),
    ("training", "mixed_precision"): ("none", "mixed_bfloat16", "mixed_float16"),
    ("runtime", "strategy"): ("one_device", "mirrored", "multi_worker_mirrored", "tpu"),
}


def _type_name(tp) -> str:
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return f"{args[0].__name__} or null"
    return tp.__name__


def _coerce(value: Any, tp, where: str, source: str):
    """Checks one leaf value against its annotated type; ints are accepted for floats."""
    if typing.get_origin(tp) is typing.Union:
        if value is None:
            return None
        tp = [a for a in typing.get_args(tp) if a is not type(None)][0]
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads "1e-3" (no dot) as a string; accept what Python reads as a float.
        try:
            value = float(value)
        except ValueError:
            pass
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        raise ConfigError(
            f"{source}: {where} must be {_type_name(tp)}, got {value!r} "
            f"({type(value).__name__}); fix the value"
        )
    return float(value) if tp is float else value


def _from_dict(cls, data: Any, prefix: str, source: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or 'top level'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in hints:
            raise ConfigError(
                f"{source}: unknown key '{where}'; allowed keys here: {', '.join(names)}"
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _from_dict(tp, value, where, source)
        else:
            kwargs[key] = _coerce(value, tp, where, source)
    return cls(**kwargs)


def validate(cfg: ElectraConfig, source: str = "config") -> ElectraConfig:
    """Rejects inconsistent values with a one-line ConfigError; fills derived defaults."""

    def fail(key, value, allowed):
        raise ConfigError(f"{source}: {key}={value!r} is invalid; allowed: {allowed}")

    # NaN compares false with everything, so it would slip past every range check below.
    for section in dataclasses.fields(cfg):
        for field in dataclasses.fields(getattr(cfg, section.name)):
            value = getattr(getattr(cfg, section.name), field.name)
            if isinstance(value, float) and not math.isfinite(value):
                fail(f"{section.name}.{field.name}", value, "a finite number")

    for (section, key), allowed in _CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in allowed:
            fail(f"{section}.{key}", value, " | ".join(allowed))

    m = cfg.model
    for key in ("vocab_size", "embedding_size", "hidden_size", "num_layers", "num_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size"):
        if getattr(m, key) < 1:
            fail(f"model.{key}", getattr(m, key), "an integer >= 1")
    if m.hidden_size % m.num_heads:
        fail("model.hidden_size", m.hidden_size,
             f"a multiple of model.num_heads ({m.num_heads})")
    for key in ("hidden_dropout", "attention_dropout"):
        if not 0.0 <= getattr(m, key) < 1.0:
            fail(f"model.{key}", getattr(m, key), "a probability in [0, 1)")
    if m.attention_dropout != m.hidden_dropout:
        fail("model.attention_dropout", m.attention_dropout,
             f"the value of model.hidden_dropout ({m.hidden_dropout}): keras-hub's "
             "TransformerEncoder takes one dropout rate for both")
    if m.layer_norm_epsilon <= 0 or m.initializer_range <= 0:
        fail("model.layer_norm_epsilon/initializer_range",
             (m.layer_norm_epsilon, m.initializer_range), "positive numbers")

    g = cfg.generator
    if not 0.0 < g.hidden_fraction <= 1.0:
        fail("generator.hidden_fraction", g.hidden_fraction,
             "a fraction in (0, 1]; the generator may not be wider than the discriminator")
    if g.num_layers is not None and not 1 <= g.num_layers <= m.num_layers:
        fail("generator.num_layers", g.num_layers,
             f"null or 1..{m.num_layers} (model.num_layers); the generator may not be deeper")
    gh = cfg.generator_hidden_size()
    if gh % cfg.generator_num_heads():
        fail("generator.hidden_fraction", g.hidden_fraction,
             f"a fraction giving a generator hidden size ({gh}) divisible by its "
             f"{cfg.generator_num_heads()} heads (hidden // 64)")

    d = cfg.data
    if d.max_seq_length < 8:
        fail("data.max_seq_length", d.max_seq_length, "an integer >= 8")
    if d.max_seq_length > m.max_position_embeddings:
        fail("data.max_seq_length", d.max_seq_length,
             f"at most model.max_position_embeddings ({m.max_position_embeddings})")

    o = cfg.objective
    if not 0.0 < o.mask_prob < 1.0:
        fail("objective.mask_prob", o.mask_prob, "a rate strictly between 0 and 1")
    if not 0.0 <= o.mask_token_prob <= 1.0:
        fail("objective.mask_token_prob", o.mask_token_prob, "a probability in [0, 1]")
    if o.max_predictions_per_seq is None:
        o.max_predictions_per_seq = max(1, int((o.mask_prob + 0.005) * d.max_seq_length))
    if not 1 <= o.max_predictions_per_seq <= d.max_seq_length:
        fail("objective.max_predictions_per_seq", o.max_predictions_per_seq,
             f"1..{d.max_seq_length} (data.max_seq_length)")
    if o.temperature <= 0:
        fail("objective.temperature", o.temperature, "a positive number")
    if o.gen_weight < 0 or o.disc_weight < 0:
        fail("objective.gen_weight/disc_weight", (o.gen_weight, o.disc_weight),
             "non-negative numbers")

    opt = cfg.optimizer
    if opt.learning_rate <= 0:
        fail("optimizer.learning_rate", opt.learning_rate, "a positive number")
    if opt.warmup_steps < 0 or opt.weight_decay < 0 or opt.clip_norm < 0:
        fail("optimizer.warmup_steps/weight_decay/clip_norm",
             (opt.warmup_steps, opt.weight_decay, opt.clip_norm), "non-negative numbers")
    if not (0 <= opt.beta_1 < 1 and 0 <= opt.beta_2 < 1) or opt.epsilon <= 0:
        fail("optimizer.beta_1/beta_2/epsilon", (opt.beta_1, opt.beta_2, opt.epsilon),
             "betas in [0, 1) and a positive epsilon")

    t = cfg.training
    for key in ("batch_size", "train_steps", "grad_accum_steps", "steps_per_loop",
                "log_every", "checkpoint_every", "eval_steps", "max_checkpoints"):
        if getattr(t, key) < 1:
            fail(f"training.{key}", getattr(t, key), "an integer >= 1")
    if t.seed_group_size < 0:
        fail("training.seed_group_size", t.seed_group_size,
             "0 (one seed per replica batch) or a size dividing the per-replica batch")
    if t.eval_every < 0:
        fail("training.eval_every", t.eval_every, "0 (no evaluation) or a positive step count")

    r = cfg.runtime
    if r.num_gpus < 0 or r.num_cpu_devices < 0:
        fail("runtime.num_gpus/num_cpu_devices", (r.num_gpus, r.num_cpu_devices),
             "non-negative integers")
    if r.peak_tflops is not None and r.peak_tflops <= 0:
        fail("runtime.peak_tflops", r.peak_tflops, "null (measure it) or a positive number")
    return cfg


def parse_override(text: str, source: str = "override") -> tuple[list[str], Any]:
    """'section.key=value' -> (['section', 'key'], value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"{source}: '{text}' is not of the form section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def from_dict(data: dict, overrides=(), source: str = "config") -> ElectraConfig:
    """Builds and validates a config from a (partial) mapping plus overrides."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (data or {}).items()}
    for text in overrides:
        path, value = parse_override(text, f"{source} (override '{text}')")
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: override '{text}' goes through a non-section key")
        node[path[-1]] = value
    return validate(_from_dict(ElectraConfig, data, "", source), source)


def load_config(path: str, overrides=()) -> ElectraConfig:
    """Reads a YAML experiment file; keys absent from it keep the dataclass defaults."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist; pass one of configs/*.yaml")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    return from_dict(data or {}, overrides, source=path)


def save_config(cfg: ElectraConfig, path: str, *, unset: Sequence[str] = ()) -> None:
    """Writes the config as YAML atomically (`files.atomic_write`: a temporary name, then a
    rename; on a failure such as a full disk the temporary is removed and `path` is left as
    it was). Keys in `unset` ("section.key") are written as null, so that loading derives
    them again (e.g. `objective.max_predictions_per_seq` from the sequence length)."""
    from electra_tf import files

    data = cfg.to_dict()
    for dotted in unset:
        section, key = dotted.split(".")
        data[section][key] = None
    text = yaml.safe_dump(data, sort_keys=False)
    files.atomic_write_text(path, text)
