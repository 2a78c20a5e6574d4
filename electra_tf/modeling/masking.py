"""Dynamic masking for ELECTRA's generator (docs/architecture.md, "Masking"), redrawn at every step inside the model.

Follows the reference `pretrain/pretrain_helpers.py::mask`: candidates exclude [CLS],
[SEP], [MASK] and padding; `k = max(1, min(N, round(mask_prob * non_pad_tokens)))`
(float32, round half to even, as `tf.round` in the reference); each chosen position becomes
[MASK] with probability 0.85 and keeps its token otherwise (no random tokens). All
randomness is stateless from one seed, so a resumed run redraws the same masks. (XLA
lowers the stateless random ops to its own generator, so the draws for a seed differ
between `jit_compile=True` and False; a resumed run uses the same setting.)
"""

import tensorflow as tf


def scatter_max_at_positions(positions, updates, sequence_length, fill):
    """Writes per-slot values into a [B, S] tensor at `positions`; duplicates keep the max.

    Used to turn [B, N] slot values (chosen to mask, sampled ids) into [B, S] values
    without a [B, N, S] one-hot; "max" makes duplicate positions deterministic.

    Args:
        positions: int32 [B, N] positions in 0..S-1.
        updates: int32 [B, N] values; give unused slots a value <= `fill`.
        sequence_length: S.
        fill: value where no slot writes.

    Returns:
        int32 [B, S].
    """
    batch_size = tf.shape(positions)[0]
    num_slots = tf.shape(positions)[1]
    batch_index = tf.tile(tf.range(batch_size)[:, None], [1, num_slots])
    indices = tf.stack([batch_index, positions], axis=-1)
    base = tf.fill([batch_size, sequence_length], tf.constant(fill, tf.int32))
    return tf.tensor_scatter_nd_max(base, indices, tf.cast(updates, tf.int32))


def mask_tokens(token_ids, padding_mask, seed, *, mask_id, special_ids, mask_prob,
                max_predictions, mask_token_prob=0.85, with_replacement=False):
    """Chooses positions to predict and builds the generator's masked input.

    Args:
        token_ids: int [B, S] original ids.
        padding_mask: int/bool [B, S], 1 for real tokens.
        seed: int32/int64 [2] stateless seed.
        mask_id: id of [MASK].
        special_ids: ids never chosen ([CLS], [SEP], [MASK], [PAD]).
        mask_prob: fraction of non-pad tokens (specials included) to predict.
        max_predictions: N, the fixed number of slots (static shapes).
        mask_token_prob: probability that a chosen position becomes [MASK] (else kept).
        with_replacement: draw positions with replacement as the reference does
            (duplicates possible); the default draws without replacement (top-k of
            uniform scores over the candidates), so no position is predicted twice.

    Returns:
        dict with `masked_token_ids` int32 [B, S], `masked_lm_positions` int32 [B, N],
        `masked_lm_ids` int32 [B, N], `masked_lm_weights` float32 [B, N]. Unused slots
        have position 0, id 0 and weight 0. Rows with fewer candidates than k use all of
        them (without replacement) or none when there are no candidates.

    Example:

    >>> ids = tf.constant([[2, 10, 11, 12, 13, 14, 15, 3, 0, 0]])
    >>> out = mask_tokens(ids, tf.cast(ids > 0, tf.int32), tf.constant([1, 2]), mask_id=4,
    ...                   special_ids=(0, 2, 3, 4), mask_prob=0.15, max_predictions=3)
    >>> out["masked_lm_weights"].numpy().tolist()  # round(0.15 * 8 tokens) = 1 position
    [[1.0, 0.0, 0.0]]
    >>> int(out["masked_lm_positions"][0, 0]) in range(1, 7)  # never [CLS], [SEP], padding
    True
    """
    token_ids = tf.cast(token_ids, tf.int32)
    is_token = tf.cast(padding_mask, tf.bool)
    batch_size, sequence_length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
    position_seed, mask_token_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2))

    is_candidate = is_token
    for special_id in special_ids:
        is_candidate &= tf.not_equal(token_ids, special_id)
    num_candidates = tf.reduce_sum(tf.cast(is_candidate, tf.int32), axis=1)

    # Reference: k = max(1, min(N, round(non_pad_tokens * mask_prob))), in float32.
    num_tokens = tf.reduce_sum(tf.cast(is_token, tf.float32), axis=1)
    num_to_predict = tf.cast(tf.round(num_tokens * mask_prob), tf.int32)
    num_to_predict = tf.clip_by_value(num_to_predict, 1, max_predictions)

    if with_replacement:
        # Reference: tf.random.categorical over the candidates (uniform). Drawn here as
        # the floor(U * C)-th candidate, because stateless_categorical has no XLA kernel.
        candidates_first = tf.math.top_k(
            tf.where(is_candidate, sequence_length - tf.range(sequence_length), 0),
            k=sequence_length).indices
        uniform = tf.random.stateless_uniform([batch_size, max_predictions], seed=position_seed)
        rank = tf.cast(uniform * tf.cast(num_candidates, tf.float32)[:, None], tf.int32)
        rank = tf.minimum(rank, tf.maximum(num_candidates - 1, 0)[:, None])
        positions = tf.gather(candidates_first, rank, batch_dims=1)
        num_to_predict = tf.where(num_candidates > 0, num_to_predict, 0)
    else:
        # The k largest of uniform scores over the candidates: a uniform subset, no repeats.
        scores = tf.random.stateless_uniform([batch_size, sequence_length], seed=position_seed)
        scores = tf.where(is_candidate, scores, -1.0)
        _, positions = tf.math.top_k(scores, k=max_predictions)
        num_to_predict = tf.minimum(num_to_predict, num_candidates)

    is_used = tf.range(max_predictions)[None, :] < num_to_predict[:, None]
    masked_lm_positions = tf.where(is_used, positions, 0)
    masked_lm_ids = tf.where(is_used, tf.gather(token_ids, masked_lm_positions, batch_dims=1), 0)
    masked_lm_weights = tf.cast(is_used, tf.float32)

    # 85% [MASK], 15% kept: no random tokens, as in the reference code.
    use_mask_token = tf.random.stateless_uniform(
        [batch_size, max_predictions], seed=mask_token_seed) < mask_token_prob
    replace = scatter_max_at_positions(
        masked_lm_positions, tf.cast(is_used & use_mask_token, tf.int32), sequence_length, 0)
    masked_token_ids = tf.where(replace > 0, tf.constant(mask_id, tf.int32), token_ids)
    return {
        "masked_token_ids": masked_token_ids,
        "masked_lm_positions": masked_lm_positions,
        "masked_lm_ids": masked_lm_ids,
        "masked_lm_weights": masked_lm_weights,
    }
