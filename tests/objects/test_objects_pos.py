"""Noun and compound extraction on stanza Documents built from CoNLL-U (no models needed)."""

from __future__ import annotations

import pytest

stanza = pytest.importorskip("stanza")

from alignclip_plugins.objects.parsing import Caption  # noqa: E402
from alignclip_plugins.objects.pos import (  # noqa: E402
    PosParser,
    StanzaModelsMissing,
    load_pipeline,
    objects_from_document,
)


def sentence(*words: tuple) -> list[dict]:
    """CoNLL-U dicts from (text, lemma, upos[, deprel, head]) tuples."""
    rows = []
    for i, w in enumerate(words, start=1):
        row = {"id": i, "text": w[0], "lemma": w[1], "upos": w[2]}
        if len(w) > 3:
            row["deprel"], row["head"] = w[3], w[4]
        rows.append(row)
    return rows


def doc(*sentences: list[dict]):
    return stanza.Document(list(sentences))


def test_nouns_lemmatised_and_lower_cased():
    d = doc(
        sentence(
            ("Two", "two", "NUM"),
            ("Dogs", "dog", "NOUN"),
            ("chase", "chase", "VERB"),
            ("a", "a", "DET"),
            ("ball", "ball", "NOUN"),
            ("in", "in", "ADP"),
            ("Paris", "Paris", "PROPN"),
            (".", ".", "PUNCT"),
        )
    )
    assert objects_from_document(d) == ["dog", "ball", "paris"]


def test_consecutive_nouns_are_one_object_head_lemmatised():
    d = doc(
        sentence(
            ("traffic", "traffic", "NOUN"),
            ("lights", "light", "NOUN"),
            ("near", "near", "ADP"),
            ("sports", "sport", "NOUN"),
            ("cars", "car", "NOUN"),
            ("and", "and", "CCONJ"),
            ("New", "New", "PROPN"),
            ("York", "York", "PROPN"),
            ("taxis", "taxi", "NOUN"),
        )
    )
    assert objects_from_document(d) == ["traffic light", "sports car", "new york taxi"]


def test_compound_relation_joins_a_non_noun_modifier():
    d = doc(
        sentence(
            ("a", "a", "DET", "det", 3),
            ("hot", "hot", "ADJ", "compound", 3),
            ("tubs", "tub", "NOUN", "root", 0),
            ("with", "with", "ADP", "case", 6),
            ("green", "green", "ADJ", "amod", 6),
            ("towels", "towel", "NOUN", "nmod", 3),
        )
    )
    assert objects_from_document(d) == ["hot tub", "towel"]  # amod is not a compound


def test_known_compounds_without_a_parse():
    d = doc(
        sentence(
            ("hot", "hot", "ADJ"),
            ("dogs", "dog", "NOUN"),
            ("and", "and", "CCONJ"),
            ("french", "french", "ADJ"),
            ("fries", "fry", "NOUN"),
            ("on", "on", "ADP"),
            ("a", "a", "DET"),
            ("hot", "hot", "ADJ"),
            ("plate", "plate", "NOUN"),
        )
    )
    assert objects_from_document(d) == ["hot dog", "french fry", "plate"]


def test_stop_list_and_non_words():
    d = doc(
        sentence(
            ("stock", "stock", "NOUN"),
            ("photo", "photo", "NOUN"),
            ("of", "of", "ADP"),
            ("a", "a", "DET"),
            ("city", "city", "NOUN"),
            ("view", "view", "NOUN"),
            ("in", "in", "ADP"),
            ("2020", "2020", "NOUN"),
            ("at", "at", "ADP"),
            ("night", "night", "NOUN"),
        ),
        sentence(
            ("Image", "image", "NOUN"),
            ("of", "of", "ADP"),
            ("the", "the", "DET"),
            ("city", "city", "NOUN"),
        ),
    )
    # "stock photo" vanishes, "city view" -> "city", the number is no object, duplicates merged
    assert objects_from_document(d) == ["city", "night"]


def test_punctuation_breaks_a_noun_run_and_custom_compounds():
    d = doc(
        sentence(
            ("dog", "dog", "NOUN"),
            (",", ",", "PUNCT"),
            ("cat", "cat", "NOUN"),
            ("running", "running", "VERB"),
            ("shoes", "shoe", "NOUN"),
        )
    )
    assert objects_from_document(d) == ["dog", "cat", "running shoe"]
    assert objects_from_document(d, compounds=set()) == ["dog", "cat", "shoe"]


class FakePipeline:
    """Stands in for stanza.Pipeline: returns prepared Documents, records what it got."""

    def __init__(self, documents: dict[str, object]):
        self.documents = documents
        self.calls: list[list[str]] = []

    def bulk_process(self, texts):
        self.calls.append(list(texts))
        return [self.documents[t] for t in texts]


def test_pos_parser_batches_documents_and_skips_empty_captions():
    dog = doc(sentence(("dog", "dog", "NOUN")))
    cats = doc(
        sentence(("hot", "hot", "ADJ"), ("dogs", "dog", "NOUN")), sentence(("cats", "cat", "NOUN"))
    )
    pipeline = FakePipeline({"a dog": dog, "hot dogs. cats": cats})
    parser = PosParser(pipeline=pipeline)
    captions = [
        Caption("s", "1", "a dog"),
        Caption("s", "2", "   "),
        Caption("s", "3", "hot dogs.\n\ncats"),  # line breaks would split stanza documents
    ]
    assert parser.parse_batch(captions) == [["dog"], [], ["hot dog", "cat"]]
    assert pipeline.calls == [["a dog", "hot dogs. cats"]]
    assert parser.identity()["parser"] == "pos"


def test_missing_models_error_gives_the_download_command(tmp_path, monkeypatch):
    import stanza.resources.common as common

    monkeypatch.setattr(common, "DEFAULT_MODEL_DIR", str(tmp_path / "default"))
    with pytest.raises(StanzaModelsMissing) as info:
        load_pipeline(device="cpu")
    message = str(info.value)
    assert (
        "python -c \"import stanza; stanza.download('en', processors='tokenize,pos,lemma')\""
        in message
    )
    assert "STANZA_RESOURCES_DIR" in message and str(tmp_path / "default") in message
    custom = tmp_path / "no-models"
    with pytest.raises(StanzaModelsMissing, match="depparse") as info:
        load_pipeline(device="cpu", depparse=True, model_dir=custom)
    assert f"processors='tokenize,pos,lemma,depparse', model_dir='{custom}')" in str(info.value)
