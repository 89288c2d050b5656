"""Classes: names, synonym tables, vocabulary, Zipf frequencies and the tail."""

import numpy as np
import pytest

from alignclip_plugins.synthetic.classes import (
    CLASS_NAMES,
    COLOUR_WORDS,
    COLOURS,
    NUM_CLASSES,
    SHAPE_NOUNS,
    SHAPES,
    class_index,
    class_parts,
    class_ranks,
    num_tail,
    surface_forms,
    tail_mask,
    vocabulary,
    zipf_probabilities,
)
from alignclip_plugins.synthetic.config import SynthConfig
from alignclip_plugins.synthetic.plan import train_counts


def test_48_classes_named_colour_shape():
    assert NUM_CLASSES == 48 == len(set(CLASS_NAMES))
    assert CLASS_NAMES[0] == "red circle"
    for i, name in enumerate(CLASS_NAMES):
        colour, shape = class_parts(i)
        assert name == f"{colour} {shape}" and class_index(name) == i
    assert set(COLOUR_WORDS) == set(COLOURS) and set(SHAPE_NOUNS) == set(SHAPES)
    with pytest.raises(KeyError, match="unknown class"):
        class_index("pink circle")


def test_synonyms_are_unique_so_every_surface_form_names_one_class():
    colour_words = [w for words in COLOUR_WORDS.values() for w in words]
    shape_nouns = [n for nouns in SHAPE_NOUNS.values() for pair in nouns for n in pair]
    assert len(colour_words) == len(set(colour_words))
    assert len(shape_nouns) == len(set(shape_nouns))
    forms = [f for fs in vocabulary().values() for f in fs]
    assert len(forms) == len(set(forms))


def test_vocabulary_lists_canonical_forms_first_with_plurals_and_synonyms():
    vocab = vocabulary()
    assert list(vocab) == list(CLASS_NAMES)
    forms = surface_forms("red circle")
    assert forms[:2] == ["red circle", "red circles"]
    assert {"crimson circle", "scarlet discs", "red dots"} <= set(forms)
    assert "blue plus signs" in vocab["blue cross"]
    assert "yellow boxes" in vocab["yellow square"]


def test_rank_shuffle_is_deterministic_per_seed_and_mixes_the_tail():
    ranks = class_ranks(0)
    assert sorted(ranks.tolist()) == list(range(NUM_CLASSES))
    assert np.array_equal(ranks, class_ranks(0))
    assert not np.array_equal(ranks, class_ranks(1))
    tail = [class_parts(c) for c in np.argsort(ranks)[-num_tail(0.3) :]]
    assert len({colour for colour, _ in tail}) > 1 and len({shape for _, shape in tail}) > 1


def test_zipf_probabilities():
    ranks = class_ranks(0)
    p = zipf_probabilities(ranks, 1.0)
    assert p.shape == (48,) and p.sum() == pytest.approx(1.0)
    by_rank = p[np.argsort(ranks)]
    assert np.all(np.diff(by_rank) < 0)
    assert by_rank[0] / by_rank[-1] == pytest.approx(48.0)
    assert np.allclose(zipf_probabilities(ranks, 0.0), 1 / 48)


def test_training_frequencies_follow_zipf_order_on_a_large_sample():
    config = SynthConfig(train_samples=20000, shard_size=1000, zipf=1.0)
    ranks = class_ranks(config.seed)
    counts = train_counts(config, zipf_probabilities(ranks, config.zipf))
    assert counts.sum() > 20000  # 1-4 objects per image
    by_rank = counts[np.argsort(ranks)]
    # Spearman correlation between rank and count (no ties in ranks).
    order = np.argsort(np.argsort(-by_rank))
    rho = np.corrcoef(np.arange(48), order)[0, 1]
    assert rho > 0.97
    assert by_rank[:5].sum() > 10 * by_rank[-5:].sum()
    assert by_rank[0] / by_rank[-1] == pytest.approx(48.0, rel=0.35)


def test_tail_is_the_least_frequent_fraction_with_ties_to_the_rarer_rank():
    assert num_tail(0.3) == 14 and num_tail(0.0) == 0 and num_tail(1.0) == 48
    ranks = np.arange(48)
    counts = np.arange(48)[::-1].copy()  # class 47 rarest
    mask = tail_mask(counts, ranks, 0.3)
    assert mask.sum() == 14 and mask[34:].all() and not mask[:34].any()
    counts[:] = 5  # all tied: the highest ranks are the tail
    assert np.array_equal(np.flatnonzero(tail_mask(counts, ranks, 0.25)), np.arange(36, 48))
