"""The three-domain text transform: probabilities, tail-weighted draws, fallbacks, the stage."""

import logging
from collections import Counter

import pytest

from alignclip_plugins.keyed_draws import draw_uniforms
from alignclip_plugins.plugins.alignclip.options import parse_probabilities
from alignclip_plugins.plugins.alignclip.stages import (
    CAPTION,
    DESCRIPTION,
    PROMPT,
    TextDomains,
    TextDomainStage,
    pick_weighted,
)

NAMES = ["dog", "cat", "frisbee", "axolotl"]
FREQ = [1000, 100, 10, 1]
TEMPLATES = ["a photo of a {}.", "a drawing of a {}."]
DESCRIPTIONS = {0: ["a furry pet"], 2: ["a flying disc", "a plastic disc"], 3: ["a pink newt"]}
KEYS = [f"{i:08d}" for i in range(20000)]


def domains(p=(0.5, 0.25, 0.25), rho=0.0, seed=0, descriptions=DESCRIPTIONS, freq=FREQ):
    return TextDomains(
        p,
        names=NAMES,
        frequencies=freq,
        templates=TEMPLATES,
        descriptions=descriptions,
        rho=rho,
        seed=seed,
    )


def test_parse_probabilities():
    assert parse_probabilities("1,0,0") == (1.0, 0.0, 0.0)
    assert parse_probabilities(" 0.5, 0.25 ,0.25") == (0.5, 0.25, 0.25)
    for bad in ("1,0", "a,b,c", "0.5,0.5,0.5", "-0.5,1,0.5", "nan,0,1", ""):
        with pytest.raises(ValueError, match="probabilit"):
            parse_probabilities(bad)


def test_plain_captions_are_the_identity():
    d = domains(p=(1, 0, 0), descriptions=None)
    for key in KEYS[:200]:
        caption = f"Caption {key}  with odd  spacing #tag"
        draw = d.draw(caption, [2, 0, 2], key, epoch=3)
        assert draw.text is caption
        assert draw.objects == (2, 0)  # the caption's set O, each object once
        assert draw.domain == draw.requested == CAPTION


def test_domain_frequencies_follow_the_probabilities():
    d = domains(p=(0.5, 0.3, 0.2))
    used = Counter(d.draw("c", [0, 1, 2, 3], key).requested for key in KEYS)
    for domain, p in ((CAPTION, 0.5), (PROMPT, 0.3), (DESCRIPTION, 0.2)):
        assert used[domain] / len(KEYS) == pytest.approx(p, abs=0.015)


def test_rho_zero_draws_objects_uniformly():
    d = domains(p=(0, 1, 0), rho=0.0)
    drawn = Counter(d.draw("c", [0, 1, 2, 3], key).objects for key in KEYS)
    for o in range(4):
        assert drawn[(o,)] / len(KEYS) == pytest.approx(0.25, abs=0.015)


def test_draws_follow_inverse_frequency_weights():
    d = domains(p=(0, 1, 0), rho=1.0, freq=[3, 1, 1, 1])
    drawn = Counter(d.draw("c", [0, 1], key).objects for key in KEYS)
    assert drawn[(1,)] / len(KEYS) == pytest.approx(0.75, abs=0.015)  # 1/1 vs 1/3


def test_large_rho_favours_the_tail():
    d = domains(p=(0, 1, 0), rho=3.0)
    drawn = Counter(d.draw("c", [0, 1, 3], key).objects for key in KEYS)
    assert drawn[(3,)] / len(KEYS) > 0.99  # axolotl: freq 1 vs 100 and 1000
    uniform = Counter(domains(p=(0, 1, 0)).draw("c", [0, 1, 3], k).objects for k in KEYS)
    assert drawn[(3,)] > 2.5 * uniform[(3,)]


def test_prompt_and_description_texts_and_their_object_sets():
    d = domains(p=(0, 0.5, 0.5))
    seen = set()
    for key in KEYS[:400]:
        draw = d.draw("caption", [0, 1, 2, 3], key)
        assert len(draw.objects) == 1
        o = draw.objects[0]
        if draw.domain == PROMPT:
            assert draw.text in [t.format(NAMES[o]) for t in TEMPLATES]
        else:
            assert draw.domain == DESCRIPTION and o in DESCRIPTIONS  # only described objects
            assert draw.text in DESCRIPTIONS[o]
        seen.add(draw.text)
    # every template and every description gets used
    assert {t.format(n) for t in TEMPLATES for n in NAMES} | {
        t for ts in DESCRIPTIONS.values() for t in ts
    } == seen


def test_empty_object_set_keeps_the_caption():
    d = domains(p=(0, 0.5, 0.5))
    for key in KEYS[:50]:
        draw = d.draw("a caption naming nothing", [], key)
        assert (draw.text, draw.objects, draw.domain) == ("a caption naming nothing", (), CAPTION)
        assert draw.requested in (PROMPT, DESCRIPTION)


def test_description_without_described_object_becomes_a_prompt():
    d = domains(p=(0, 0, 1))
    for key in KEYS[:50]:
        draw = d.draw("cap", [1], key)  # "cat" has no description
        assert draw.domain == PROMPT and draw.requested == DESCRIPTION
        assert draw.objects == (1,) and "cat" in draw.text


def test_draws_are_deterministic_per_seed_epoch_and_key():
    a, b = domains(seed=7), domains(seed=7)
    assert [a.draw("c", [0, 1, 2], k, 2) for k in KEYS[:300]] == [
        b.draw("c", [0, 1, 2], k, 2) for k in reversed(KEYS[:300])
    ][::-1]
    same = [a.draw("c", [0, 1, 2], k, 2) for k in KEYS[:300]]
    other_epoch = [a.draw("c", [0, 1, 2], k, 3) for k in KEYS[:300]]
    other_seed = [domains(seed=8).draw("c", [0, 1, 2], k, 2) for k in KEYS[:300]]
    assert sum(x != y for x, y in zip(same, other_epoch)) > 100
    assert sum(x != y for x, y in zip(same, other_seed)) > 100
    assert draw_uniforms(1, 2, "k") == draw_uniforms(1, 2, "k")
    assert all(0 <= u < 1 for u in draw_uniforms(1, 2, "k"))


def test_pick_weighted_edges():
    assert pick_weighted([1.0], 0.999) == 0
    assert pick_weighted([1.0, 0.0, 1.0], 0.5) == 2
    assert pick_weighted([1.0, 1.0], 0.0) == 0


def test_invalid_configurations():
    with pytest.raises(ValueError, match="descriptions"):
        domains(p=(0.5, 0, 0.5), descriptions={})
    with pytest.raises(ValueError, match="rho"):
        domains(rho=-1)
    with pytest.raises(ValueError, match="'\\{\\}'"):
        TextDomains((0, 1, 0), names=NAMES, frequencies=FREQ, templates=["no slot"])
    with pytest.raises(ValueError, match="templates"):
        TextDomains((0, 1, 0), names=NAMES, frequencies=FREQ, templates=[])
    with pytest.raises(ValueError, match="frequencies must be > 0"):
        domains(freq=[1, 0, 1, 1])


class FakeEpoch:
    def __init__(self, value):
        self.value = value

    def get_value(self):
        return self.value


def test_stage_rewrites_text_adds_objects_and_logs(caplog):
    d = domains(p=(0.4, 0.3, 0.3), seed=5)
    epoch = FakeEpoch(4)
    stage = TextDomainStage(d, epoch)
    samples = [
        {"text": f"cap {k}", "image_objects": (0, 2) if i % 10 else (), "__key__": k}
        for i, k in enumerate(KEYS[:100])
    ]
    with caplog.at_level(logging.INFO, logger="alignclip_plugins.plugins.alignclip.stages"):
        out = list(stage([dict(s) for s in samples]))
    for before, after in zip(samples, out):
        expected = d.draw(before["text"], before["image_objects"], before["__key__"], 4)
        assert (after["text"], after["text_objects"]) == (expected.text, expected.objects)
    assert "epoch 4: 100 texts:" in caplog.text
    assert "-> caption (empty object set)" in caplog.text
    epoch.value = 5
    again = list(stage([dict(s) for s in samples]))
    assert [s["text"] for s in again] != [s["text"] for s in out]
