"""Dynamic masking (docs/architecture.md, "Masking"): counts, candidates, [MASK] rate, uniformity, determinism."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.modeling import mask_tokens

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIALS = (PAD, CLS, SEP, MASK)
VOCAB = 40


def _batch(rows, seq_len, rng, min_len=4):
    """Rows `[CLS] a.. [SEP] b.. [SEP] pad..` of random lengths; some [UNK] and [MASK]."""
    token_ids = rng.integers(5, VOCAB, size=(rows, seq_len)).astype("int32")
    token_ids[rng.random((rows, seq_len)) < 0.05] = UNK
    token_ids[rng.random((rows, seq_len)) < 0.03] = MASK  # a literal [MASK] in the data
    lengths = rng.integers(min_len, seq_len + 1, size=rows)
    padding_mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype("int32")
    token_ids[:, 0] = CLS
    for row, n in enumerate(lengths):
        token_ids[row, n - 1] = SEP
        token_ids[row, n // 2] = SEP
        token_ids[row, n:] = PAD
    return token_ids, padding_mask


def _mask(token_ids, padding_mask, seed, **kwargs):
    kwargs.setdefault("mask_prob", 0.15)
    kwargs.setdefault("max_predictions", 10)
    out = mask_tokens(token_ids, padding_mask, tf.constant(seed), mask_id=MASK,
                      special_ids=SPECIALS, **kwargs)
    return {k: v.numpy() for k, v in out.items()}


def _expected_counts(token_ids, padding_mask, mask_prob, max_predictions):
    """k = max(1, min(N, round_half_even(float32(mask_prob) * non_pad))), capped by candidates."""
    non_pad = padding_mask.sum(1).astype(np.float32)
    k = np.round(np.float32(mask_prob) * non_pad).astype(np.int64)  # numpy rounds half to even
    k = np.clip(k, 1, max_predictions)
    candidates = ((padding_mask > 0) & ~np.isin(token_ids, SPECIALS)).sum(1)
    return np.minimum(k, candidates), candidates


@pytest.mark.parametrize("with_replacement", [False, True])
def test_counts_candidates_and_outputs(with_replacement):
    rng = np.random.default_rng(0)
    token_ids, padding_mask = _batch(3000, 48, rng)
    out = _mask(token_ids, padding_mask, [3, 4], with_replacement=with_replacement)
    expected, candidates = _expected_counts(token_ids, padding_mask, 0.15, 10)
    assert (candidates == 0).any() and (expected < 10).any()  # the edge cases occur
    weights = out["masked_lm_weights"]
    # Exactly k slots used per row, and they come first.
    np.testing.assert_array_equal(weights.sum(1), expected)
    np.testing.assert_array_equal(weights, (np.arange(10)[None, :] < expected[:, None]))
    positions = out["masked_lm_positions"]
    used = weights > 0
    chosen_tokens = np.take_along_axis(token_ids, positions, axis=1)
    # Never a special token or padding; [UNK] is allowed and does get chosen.
    assert not np.isin(chosen_tokens[used], SPECIALS).any()
    assert np.take_along_axis(padding_mask, positions, axis=1)[used].all()
    assert (chosen_tokens[used] == UNK).any()
    # masked_lm_ids are the originals; unused slots are (position 0, id 0, weight 0).
    np.testing.assert_array_equal(out["masked_lm_ids"][used], chosen_tokens[used])
    assert (positions[~used] == 0).all() and (out["masked_lm_ids"][~used] == 0).all()
    # Only chosen positions change, and only to [MASK].
    changed = out["masked_token_ids"] != token_ids
    chosen = np.zeros_like(changed)
    rows = np.repeat(np.arange(len(token_ids)), 10)
    chosen[rows[used.ravel()], positions[used]] = True
    assert not (changed & ~chosen).any()
    assert (out["masked_token_ids"][changed] == MASK).all()
    if not with_replacement:
        for row in range(len(token_ids)):
            picked = positions[row][used[row]]
            assert len(set(picked.tolist())) == len(picked)


def test_mask_token_rate_within_binomial_bounds():
    rng = np.random.default_rng(1)
    token_ids, padding_mask = _batch(4000, 64, rng, min_len=32)
    out = _mask(token_ids, padding_mask, [7, 8])
    used = out["masked_lm_weights"] > 0
    at_positions = np.take_along_axis(out["masked_token_ids"], out["masked_lm_positions"], 1)
    became_mask = at_positions[used] == MASK
    kept = ~became_mask
    # Kept positions keep their original token: no random-token replacement.
    np.testing.assert_array_equal(at_positions[used][kept], out["masked_lm_ids"][used][kept])
    total = used.sum()
    rate = became_mask.mean()
    bound = 4.5 * np.sqrt(0.85 * 0.15 / total)
    assert total > 20000
    assert abs(rate - 0.85) < bound, (rate, bound)


def test_mask_token_prob_is_configurable():
    rng = np.random.default_rng(2)
    token_ids, padding_mask = _batch(2000, 64, rng, min_len=32)
    out = _mask(token_ids, padding_mask, [1, 1], mask_token_prob=0.5)
    used = out["masked_lm_weights"] > 0
    at_positions = np.take_along_axis(out["masked_token_ids"], out["masked_lm_positions"], 1)
    rate = (at_positions[used] == MASK).mean()
    assert abs(rate - 0.5) < 4.5 * np.sqrt(0.25 / used.sum())


@pytest.mark.parametrize("with_replacement", [False, True])
def test_positions_uniform_over_candidates(with_replacement):
    # One fixed row repeated: every candidate must be chosen equally often.
    token_ids = np.array([[CLS] + list(range(5, 25)) + [SEP, MASK, UNK, SEP] + [PAD] * 7],
                         dtype="int32")
    padding_mask = (token_ids != PAD).astype("int32")
    draws = 6000
    out = _mask(np.repeat(token_ids, draws, 0), np.repeat(padding_mask, draws, 0), [9, 9],
                mask_prob=0.2, max_predictions=6)
    candidates = [i for i in range(token_ids.shape[1])
                  if padding_mask[0, i] and token_ids[0, i] not in SPECIALS]
    assert len(candidates) == 21  # 20 words and [UNK]
    used = out["masked_lm_weights"] > 0
    k = int(np.round(np.float32(0.2) * 25))
    assert (used.sum(1) == k).all()
    counts = np.bincount(out["masked_lm_positions"][used], minlength=token_ids.shape[1])
    assert counts[[i for i in range(token_ids.shape[1]) if i not in candidates]].sum() == 0
    observed = counts[candidates]
    expected = draws * k / len(candidates)
    chi2 = ((observed - expected) ** 2 / expected).sum()
    dof = len(candidates) - 1
    # Far above the 99.9% quantile of chi2(20) (~45) only if positions are not uniform.
    assert chi2 < 50, (chi2, observed)
    assert dof == 20


def test_with_replacement_duplicates_are_rare_like_the_reference():
    rng = np.random.default_rng(3)
    token_ids, padding_mask = _batch(2000, 128, rng, min_len=100)
    out = _mask(token_ids, padding_mask, [4, 2], max_predictions=19, with_replacement=True)
    used = out["masked_lm_weights"] > 0
    duplicates = sum(used[r].sum() - len(set(out["masked_lm_positions"][r][used[r]].tolist()))
                     for r in range(len(token_ids)))
    fraction = duplicates / used.sum()
    assert 0 < fraction < 0.15  # ~k/(2C) per position: a few percent at 15% of ~110 tokens


def test_edge_rows_without_enough_candidates():
    token_ids = np.array([
        [CLS, SEP, PAD, PAD, PAD, PAD],  # no candidate at all
        [CLS, 9, SEP, PAD, PAD, PAD],  # one candidate, k = max(1, round(0.45)) = 1
        [CLS, 9, 10, MASK, SEP, SEP],  # two candidates, k = round(0.6*6)=4 -> capped at 2
    ], dtype="int32")
    padding_mask = (token_ids != PAD).astype("int32")
    for with_replacement in (False, True):
        out = _mask(token_ids, padding_mask, [0, 5], mask_prob=0.6, max_predictions=4,
                    with_replacement=with_replacement)
        weights = out["masked_lm_weights"]
        assert weights[0].sum() == 0
        np.testing.assert_array_equal(out["masked_token_ids"][0], token_ids[0])
        if with_replacement:
            # k = 2 draws, both necessarily the only candidate (the reference's duplicates).
            assert weights[1].sum() == 2 and (out["masked_lm_positions"][1, :2] == 1).all()
        else:
            assert weights[1].sum() == 1 and out["masked_lm_positions"][1, 0] == 1
            assert weights[2].sum() == 2
            assert sorted(out["masked_lm_positions"][2, :2].tolist()) == [1, 2]


def test_round_half_to_even_in_float32():
    # float32(0.5) * n is exact: n = 5 -> 2.5 -> 2, n = 7 -> 3.5 -> 4, n = 9 -> 4.5 -> 4.
    rows = []
    for n in (5, 7, 9):
        row = [CLS] + list(range(10, 10 + n - 2)) + [SEP] + [PAD] * (9 - n)
        rows.append(row)
    token_ids = np.array(rows, dtype="int32")
    padding_mask = (token_ids != PAD).astype("int32")
    out = _mask(token_ids, padding_mask, [1, 2], mask_prob=0.5, max_predictions=8)
    np.testing.assert_array_equal(out["masked_lm_weights"].sum(1), [2, 4, 4])


def test_stateless_and_deterministic_also_under_xla():
    rng = np.random.default_rng(4)
    token_ids, padding_mask = _batch(16, 32, rng)
    first = _mask(token_ids, padding_mask, [11, 12])
    again = _mask(token_ids, padding_mask, [11, 12])
    other = _mask(token_ids, padding_mask, [11, 13])
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert (first["masked_lm_positions"] != other["masked_lm_positions"]).any()

    @tf.function(jit_compile=True)
    def compiled(ids, mask, seed, with_replacement):
        return mask_tokens(ids, mask, seed, mask_id=MASK, special_ids=SPECIALS,
                           mask_prob=0.15, max_predictions=10,
                           with_replacement=with_replacement)

    # XLA has its own generator for stateless ops (draws differ from the TF kernels), but
    # it is as deterministic, and the counts and candidates rules hold the same.
    expected, _ = _expected_counts(token_ids, padding_mask, 0.15, 10)
    for with_replacement in (False, True):
        args = (tf.constant(token_ids), tf.constant(padding_mask), tf.constant([11, 12]),
                with_replacement)
        xla, xla_again = compiled(*args), compiled(*args)
        for key in first:
            np.testing.assert_array_equal(xla[key].numpy(), xla_again[key].numpy())
        np.testing.assert_array_equal(xla["masked_lm_weights"].numpy().sum(1), expected)
        chosen = np.take_along_axis(token_ids, xla["masked_lm_positions"].numpy(), 1)
        assert not np.isin(chosen[xla["masked_lm_weights"].numpy() > 0], SPECIALS).any()
