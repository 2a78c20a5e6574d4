"""The canonical weight layout every conversion goes through (docs/architecture.md,
"Checkpoint conversion").

Every source is first read into one flat dict keyed by the reference TF1 variable names
(`electra/encoder/layer_0/attention/self/query/kernel`, ...), with the reference's shapes
(kernels [in, out], attention kernels [H, H]). `Architecture` is what those names and shapes
say about the model; `expected_shapes` is the complete list a model of that architecture
has; `model_entries` pairs each name with the Keras variable of our model that holds it
(reshaped: our attention kernels are [H, heads, head_dim]). HuggingFace's and keras-hub's
layouts are each one mapping to and from this one, so no pair of formats needs its own code.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

import numpy as np

# Reference name scopes.
EMBEDDINGS = "electra/embeddings"
# A generator's own embedding block: HuggingFace pairs trained with untied or GDES sharing
# (the reference's untied option, whose block is the generator's width, is not supported).
GENERATOR_EMBEDDINGS = "generator/embeddings"
DISCRIMINATOR = "electra"
GENERATOR = "generator"
DISC_HEAD = "discriminator_predictions"
GEN_HEAD = "generator_predictions"

# Names a released checkpoint may hold besides the model: the step counter and optimizer
# state, which a conversion does not need (the reference cannot resume without them;
# training here starts a fresh optimizer).
_NOT_WEIGHTS = re.compile(
    r"(^global_step$|/adam_[mv]$|/Adam(_1)?$|^beta[12]_power$|/ExponentialMovingAverage$"
    r"|^training/|/Momentum$|/LAMB(_1)?$)")


def is_optimizer_state(name: str) -> bool:
    """Whether a TF1 checkpoint key is training state rather than a model weight."""
    return bool(_NOT_WEIGHTS.search(name))


@dataclasses.dataclass
class Network:
    """One Transformer stack: width, depth, heads, feed-forward width."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int


@dataclasses.dataclass
class Architecture:
    """What a checkpoint's tensors describe.

    Attributes:
      vocab_size, embedding_size, max_position_embeddings, type_vocab_size: the embedding
        block's shapes.
      discriminator: the discriminator's Transformer sizes.
      generator: the generator's, or None (a discriminator-only source).
      discriminator_head: whether the replaced-token head is present.
      untied_generator_embeddings: the generator has its own embedding block.
    """

    vocab_size: int
    embedding_size: int
    max_position_embeddings: int
    type_vocab_size: int
    discriminator: Network
    generator: Optional[Network] = None
    discriminator_head: bool = True
    untied_generator_embeddings: bool = False


def _dense(scope: str, fan_in: int, fan_out: int) -> dict:
    return {f"{scope}/kernel": (fan_in, fan_out), f"{scope}/bias": (fan_out,)}


def _norm(scope: str, width: int) -> dict:
    return {f"{scope}/gamma": (width,), f"{scope}/beta": (width,)}


def _embedding_shapes(scope: str, arch: Architecture) -> dict:
    e = arch.embedding_size
    shapes = {f"{scope}/word_embeddings": (arch.vocab_size, e),
              f"{scope}/token_type_embeddings": (arch.type_vocab_size, e),
              f"{scope}/position_embeddings": (arch.max_position_embeddings, e)}
    shapes.update(_norm(f"{scope}/LayerNorm", e))
    return shapes


def _encoder_shapes(scope: str, net: Network, embedding_size: int) -> dict:
    h, ffn = net.hidden_size, net.intermediate_size
    shapes = {}
    if embedding_size != h:
        shapes.update(_dense(f"{scope}/embeddings_project", embedding_size, h))
    for i in range(net.num_layers):
        layer = f"{scope}/encoder/layer_{i}"
        for part in ("query", "key", "value"):
            shapes.update(_dense(f"{layer}/attention/self/{part}", h, h))
        shapes.update(_dense(f"{layer}/attention/output/dense", h, h))
        shapes.update(_norm(f"{layer}/attention/output/LayerNorm", h))
        shapes.update(_dense(f"{layer}/intermediate/dense", h, ffn))
        shapes.update(_dense(f"{layer}/output/dense", ffn, h))
        shapes.update(_norm(f"{layer}/output/LayerNorm", h))
    return shapes


def expected_shapes(arch: Architecture) -> dict[str, tuple]:
    """Every reference name a model of `arch` has, with its shape."""
    shapes = _embedding_shapes(EMBEDDINGS, arch)
    shapes.update(_encoder_shapes(DISCRIMINATOR, arch.discriminator, arch.embedding_size))
    if arch.discriminator_head:
        h = arch.discriminator.hidden_size
        shapes.update(_dense(f"{DISC_HEAD}/dense", h, h))
        shapes.update(_dense(f"{DISC_HEAD}/dense_1", h, 1))
    if arch.generator is not None:
        if arch.untied_generator_embeddings:
            shapes.update(_embedding_shapes(GENERATOR_EMBEDDINGS, arch))
        shapes.update(_encoder_shapes(GENERATOR, arch.generator, arch.embedding_size))
        shapes.update(_dense(f"{GEN_HEAD}/dense", arch.generator.hidden_size,
                             arch.embedding_size))
        shapes.update(_norm(f"{GEN_HEAD}/LayerNorm", arch.embedding_size))
        shapes[f"{GEN_HEAD}/output_bias"] = (arch.vocab_size,)
    return shapes


def default_num_heads(hidden_size: int) -> int:
    """The released models' rule: 64-wide heads (Small 4, Base 12, Large 16; generators
    max(1, hidden // 64)). Shapes cannot tell the head count; a config file can."""
    return max(1, hidden_size // 64)


def _layer_count(names, scope: str) -> int:
    pattern = re.compile(rf"^{re.escape(scope)}/encoder/layer_(\d+)/")
    found = {int(m.group(1)) for m in map(pattern.match, names) if m}
    return max(found) + 1 if found else 0


def infer_network(shapes: dict, scope: str, num_heads: Optional[int],
                  problems: list) -> Optional[Network]:
    """The sizes of the stack under `scope` from its tensor shapes, or None if absent."""
    query = shapes.get(f"{scope}/encoder/layer_0/attention/self/query/kernel")
    ffn = shapes.get(f"{scope}/encoder/layer_0/intermediate/dense/kernel")
    if query is None or ffn is None:
        if any(name.startswith(f"{scope}/encoder/") for name in shapes):
            problems.append(f"{scope}/encoder/layer_0 lacks its attention query or "
                            "intermediate kernel, so its sizes cannot be read")
        return None
    if len(query) != 2 or len(ffn) != 2:
        problems.append(f"{scope}/encoder/layer_0 kernels have shapes {query} and {ffn}, "
                        "not [in, out] matrices")
        return None
    hidden = int(query[1])
    heads = num_heads or default_num_heads(hidden)
    if hidden % heads:
        problems.append(f"{scope}: hidden size {hidden} is not divisible by {heads} heads")
    return Network(hidden, _layer_count(shapes, scope), heads, int(ffn[1]))


def infer_architecture(shapes: dict, *, num_heads: Optional[int] = None,
                       generator_num_heads: Optional[int] = None,
                       problems: list) -> Optional[Architecture]:
    """Reads an `Architecture` from reference names and shapes; appends what is wrong to
    `problems` and returns None when the shapes are not those of an ELECTRA model."""
    word = shapes.get(f"{EMBEDDINGS}/word_embeddings")
    if word is None or len(word) != 2:
        scopes = sorted({name.split("/")[0] for name in shapes})[:5]
        problems.append(f"no {EMBEDDINGS}/word_embeddings [vocab, embedding] matrix (top-level "
                        f"scopes: {', '.join(scopes) or 'none'}): this is not an ELECTRA "
                        "checkpoint of the reference code")
        return None
    position = shapes.get(f"{EMBEDDINGS}/position_embeddings", (512, word[1]))
    types = shapes.get(f"{EMBEDDINGS}/token_type_embeddings", (2, word[1]))
    disc = infer_network(shapes, DISCRIMINATOR, num_heads, problems)
    if disc is None:
        problems.append(f"no {DISCRIMINATOR}/encoder/layer_0: the discriminator's layers are "
                        "missing")
        return None
    gen = infer_network(shapes, GENERATOR, generator_num_heads, problems)
    return Architecture(
        vocab_size=int(word[0]), embedding_size=int(word[1]),
        max_position_embeddings=int(position[0]), type_vocab_size=int(types[0]),
        discriminator=disc, generator=gen,
        discriminator_head=f"{DISC_HEAD}/dense/kernel" in shapes,
        untied_generator_embeddings=f"{GENERATOR_EMBEDDINGS}/word_embeddings" in shapes)


def check_tensors(tensors: dict, arch: Architecture, where: str, problems: list,
                  *, ignored=(), display: Optional[dict] = None) -> None:
    """Appends every missing, unknown or mis-shaped tensor of `tensors` (reference names)
    against the full list for `arch`; `ignored` names are known extras to skip; `display`
    maps reference names to "WHERE: the source's own name" for the messages (shapes are
    then still the reference's: dense kernels [in, out])."""
    expected = expected_shapes(arch)
    display = display or {}
    for name, shape in expected.items():
        label = display.get(name, f"{where}: {name}")
        suffix = " (as [in, out])" if name in display and name.endswith("kernel") else ""
        if name not in tensors:
            problems.append(f"{label.replace(': ', ': missing ', 1)} {list(shape)}{suffix}")
        elif tuple(np.shape(tensors[name])) != shape:
            problems.append(f"{label} has shape {list(np.shape(tensors[name]))}, expected "
                            f"{list(shape)}{suffix}")
    for name in sorted(set(tensors) - set(expected) - set(ignored)):
        problems.append(f"{where}: unknown variable {name} {list(np.shape(tensors[name]))}")


# --- our model <-> reference names -------------------------------------------------------

def _dense_vars(scope: str, layer) -> dict:
    return {f"{scope}/kernel": layer.kernel, f"{scope}/bias": layer.bias}


def _norm_vars(scope: str, layer) -> dict:
    return {f"{scope}/gamma": layer.gamma, f"{scope}/beta": layer.beta}


def transformer_layer_entries(prefix: str, layer) -> dict:
    """Reference names of one keras-hub `TransformerEncoder` (ours and `ElectraBackbone`'s)."""
    attention = layer._self_attention_layer  # pylint: disable=protected-access
    entries = {}
    for part, dense in (("query", attention._query_dense), ("key", attention._key_dense),
                        ("value", attention._value_dense)):
        entries.update(_dense_vars(f"{prefix}/attention/self/{part}", dense))
    entries.update(_dense_vars(f"{prefix}/attention/output/dense", attention._output_dense))
    entries.update(_norm_vars(f"{prefix}/attention/output/LayerNorm",
                              layer._self_attention_layer_norm))
    entries.update(_dense_vars(f"{prefix}/intermediate/dense",
                               layer._feedforward_intermediate_dense))
    entries.update(_dense_vars(f"{prefix}/output/dense", layer._feedforward_output_dense))
    entries.update(_norm_vars(f"{prefix}/output/LayerNorm", layer._feedforward_layer_norm))
    return entries


def embedding_entries(scope: str, token, position, segment, layer_norm) -> dict:
    """Reference names of an embedding block's four parts."""
    entries = {f"{scope}/token_type_embeddings": segment.embeddings,
               f"{scope}/position_embeddings": position.position_embeddings}
    if hasattr(token, "embeddings"):  # not a GDES table (generator's + delta)
        entries[f"{scope}/word_embeddings"] = token.embeddings
    entries.update(_norm_vars(f"{scope}/LayerNorm", layer_norm))
    return entries


def encoder_entries(scope: str, encoder) -> dict:
    """Reference names of an `ElectraEncoder`'s projection and Transformer blocks."""
    entries = {}
    if encoder.embeddings_project is not None:
        entries.update(_dense_vars(f"{scope}/embeddings_project", encoder.embeddings_project))
    for i, layer in enumerate(encoder.transformer_layers):
        entries.update(transformer_layer_entries(f"{scope}/encoder/layer_{i}", layer))
    return entries


def _block_entries(scope: str, block) -> dict:
    return embedding_entries(scope, block.token_embedding, block.position_embedding,
                             block.segment_embedding, block.embeddings_layer_norm)


def model_entries(model) -> dict:
    """Reference name -> Keras variable, for an `ElectraPretrainer` or an
    `ElectraDiscriminator` built alone. The word table of a GDES model is not a single
    variable and is handled by the exporter."""
    from electra_tf.modeling.discriminator import ElectraDiscriminator
    from electra_tf.modeling.encoder import ElectraEncoder

    if isinstance(model, ElectraEncoder):  # an `mlm`-objective model loaded alone
        return {**_block_entries(EMBEDDINGS, model.embeddings),
                **encoder_entries(DISCRIMINATOR, model)}
    if isinstance(model, ElectraDiscriminator):
        discriminator, generator, mlm_head = model, None, None
        disc_block = gen_block = model.encoder.embeddings
    else:
        discriminator = model.discriminator
        generator, mlm_head = model.generator, model.masked_lm_head
        disc_block, gen_block = model.discriminator_embeddings, model.generator_embeddings
    encoder = getattr(discriminator, "encoder", discriminator)
    entries = {}
    if gen_block is not disc_block and generator is not None:
        entries.update(_block_entries(GENERATOR_EMBEDDINGS, gen_block))
    entries.update(_block_entries(EMBEDDINGS, disc_block))
    entries.update(encoder_entries(DISCRIMINATOR, encoder))
    if isinstance(discriminator, ElectraDiscriminator):
        entries.update(_dense_vars(f"{DISC_HEAD}/dense", discriminator.head.dense))
        entries.update(_dense_vars(f"{DISC_HEAD}/dense_1", discriminator.head.dense_prediction))
    if generator is not None:
        entries.update(encoder_entries(GENERATOR, generator))
        # pylint: disable=protected-access
        entries.update(_dense_vars(f"{GEN_HEAD}/dense", mlm_head._intermediate_dense))
        entries.update(_norm_vars(f"{GEN_HEAD}/LayerNorm", mlm_head._intermediate_layer_norm))
        entries[f"{GEN_HEAD}/output_bias"] = mlm_head._bias
    return entries


def assign(entries: dict, tensors: dict) -> list[str]:
    """Assigns each tensor to its variable, reshaped to the variable's layout (attention
    kernels [H, H] -> [H, heads, head_dim]); returns the names assigned."""
    for name, variable in entries.items():
        value = np.asarray(tensors[name], dtype=np.float32)
        variable.assign(value.reshape(tuple(variable.shape)))
    return list(entries)


def read(entries: dict, shapes: Optional[dict] = None) -> dict:
    """The variables' values under reference names and in reference shapes (`shapes`, e.g.
    from `expected_shapes`; without it, kernels of rank 3 are flattened to [H, H])."""
    out = {}
    for name, variable in entries.items():
        value = np.asarray(variable.numpy(), dtype=np.float32)
        if shapes is not None:
            value = value.reshape(shapes[name])
        elif value.ndim == 3:
            value = value.reshape(value.shape[0], -1) if name.endswith(
                ("query/kernel", "key/kernel", "value/kernel")) else value.reshape(
                -1, value.shape[-1])
        elif value.ndim == 2 and name.endswith(("query/bias", "key/bias", "value/bias")):
            value = value.reshape(-1)
        out[name] = value
    return out
