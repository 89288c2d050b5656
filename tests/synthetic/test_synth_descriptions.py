"""Visual descriptions: three distinct, class-specific descriptions per class."""

from alignclip_plugins.synthetic.classes import CLASS_NAMES
from alignclip_plugins.synthetic.descriptions import describe, visual_descriptions


def test_three_distinct_descriptions_per_class():
    descriptions = visual_descriptions()
    assert list(descriptions) == list(CLASS_NAMES)
    for name, texts in descriptions.items():
        assert len(texts) == 3 == len(set(texts))
        assert all(name in t for t in texts)
    everything = [t for texts in descriptions.values() for t in texts]
    assert len(set(everything)) == len(everything)


def test_descriptions_follow_shape_and_colour():
    texts = " ".join(describe("red circle"))
    assert "round" in texts and "red" in texts
    assert "hole" in " ".join(describe("blue ring"))
    assert "five" in " ".join(describe("green star"))


def test_wording_varies_across_classes():
    descriptions = visual_descriptions()

    def connector(name: str, text: str) -> str:  # the word right after the class name
        return text.split(name, 1)[1].split()[0]

    first = {connector(n, texts[0]) for n, texts in descriptions.items()}
    assert len(first) >= 4
    assert len({texts[0].split(n, 1)[1] for n, texts in descriptions.items()}) == 48
