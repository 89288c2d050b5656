"""The ``pos`` parser: nouns from stanza's part-of-speech tags, compound nouns kept whole.

Per sentence, a maximal run of consecutive NOUN / PROPN words is one object; words tagged
``compound`` (when a dependency parse is present, ``--depparse``) attached to the run and
directly before it join it, whatever their tag, and so does a preceding word that forms
a known lexicalised compound with it ("hot dog", "french fries": :data:`COMPOUNDS`).
Only the head (last) word is lemmatised: "traffic lights" -> "traffic light",
"sports cars" -> "sports car". The object is then normalised like every backend's
(:func:`~alignclip_plugins.objects.normalize.normalize_object`: lower case, stop-list).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from alignclip_plugins.objects.normalize import STOP_NOUNS, normalize_object, unique
from alignclip_plugins.objects.parsing import Caption, ObjectParser

NOUN_TAGS = frozenset({"NOUN", "PROPN"})

# Compounds whose modifier stanza does not tag as a noun (adjective or verb), lemma form.
COMPOUNDS: frozenset[str] = frozenset(
    {
        "hot dog",
        "french fry",
        "hot air balloon",
        "high chair",
        "high heel",
        "living room",
        "dining table",
        "dining room",
        "stop sign",
        "potted plant",
        "wine glass",
        "cutting board",
        "swimming pool",
        "washing machine",
        "sliding door",
        "running shoe",
        "sleeping bag",
        "frying pan",
        "rolling pin",
        "stuffed animal",
        "electric guitar",
        "polar bear",
        "grand piano",
        "red carpet",
        "white house",
        "solar panel",
        "public transport",
        "cell phone",
        "mobile phone",
        "teddy bear",
        "traffic light",
        "fire hydrant",
        "parking meter",
        "ice cream",
    }
)

_HAS_LETTER = re.compile(r"[^\W\d_]")


def download_command(processors: str = "tokenize,pos,lemma", model_dir: str | None = None) -> str:
    """The shell command that downloads stanza's English models (into ``model_dir``)."""
    where = f", model_dir={str(model_dir)!r}" if model_dir else ""
    return f"python -c \"import stanza; stanza.download('en', processors='{processors}'{where})\""


class StanzaModelsMissing(RuntimeError):
    """stanza's English models are not downloaded."""


def _is_noun(word: Any) -> bool:
    return word.upos in NOUN_TAGS and bool(_HAS_LETTER.search(word.text or ""))


def _surface(word: Any) -> str:
    return (word.text or "").lower()


def _head(word: Any) -> str:
    return (word.lemma or word.text or "").lower()


def objects_from_words(
    words: Sequence[Any],
    stop_nouns: Collection[str] = STOP_NOUNS,
    compounds: Collection[str] = COMPOUNDS,
) -> list[str]:
    """Objects of one sentence's stanza words (anything with ``text``, ``lemma``, ``upos``,
    ``deprel``, ``head``, ``id``), in order, duplicates kept."""
    found: list[str] = []
    n, i = len(words), 0
    while i < n:
        if not _is_noun(words[i]):
            i += 1
            continue
        end = i
        while end + 1 < n and _is_noun(words[end + 1]):
            end += 1
        start = i
        members = {words[k].id for k in range(start, end + 1)}
        while (
            start > 0 and words[start - 1].deprel == "compound" and words[start - 1].head in members
        ):
            start -= 1
            members.add(words[start].id)
        phrase = " ".join([*(_surface(w) for w in words[start:end]), _head(words[end])])
        for k in (2, 1):  # a known compound with the one or two preceding words
            if start - k < 0 or any(w.upos == "PUNCT" for w in words[start - k : start]):
                continue
            candidate = " ".join([*(_surface(w) for w in words[start - k : start]), phrase])
            if candidate in compounds:
                phrase = candidate
                break
        found.append(normalize_object(phrase, lemmatize=False, stop_nouns=stop_nouns) or "")
        i = end + 1
    return [obj for obj in found if obj]


def objects_from_document(
    document: Any,
    stop_nouns: Collection[str] = STOP_NOUNS,
    compounds: Collection[str] = COMPOUNDS,
) -> list[str]:
    """Distinct objects of a stanza ``Document`` (all its sentences), in order."""
    objects: list[str | None] = []
    for sentence in document.sentences:
        objects.extend(objects_from_words(sentence.words, stop_nouns, compounds))
    return unique(objects)


def load_pipeline(
    batch_size: int = 256,
    device: str = "auto",
    depparse: bool = False,
    model_dir: str | os.PathLike | None = None,
) -> Any:
    """stanza's English ``tokenize,pos,lemma`` (+ ``depparse``) pipeline, never downloading.

    ``device``: ``auto`` (GPU when torch sees one), ``cpu`` or ``cuda``. Missing models
    raise :class:`StanzaModelsMissing` with the download command.
    """
    import stanza
    import torch
    from stanza.resources.common import DEFAULT_MODEL_DIR

    processors = "tokenize,pos,lemma" + (",depparse" if depparse else "")
    use_gpu = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device")
    directory = str(model_dir or DEFAULT_MODEL_DIR)
    options = {f"{p}_batch_size": batch_size for p in processors.split(",")}
    try:
        return stanza.Pipeline(
            "en",
            dir=directory,
            processors=processors,
            use_gpu=use_gpu,
            download_method=None,
            logging_level="WARN",
            **options,
        )
    except FileNotFoundError as e:  # ResourcesFileNotFoundError, LanguageNotDownloadedError
        raise StanzaModelsMissing(
            f"stanza's English models ({processors}) are not in {directory} ({e}).\n"
            "Download them once (needs the internet) with:\n"
            f"  {download_command(processors, str(model_dir) if model_dir else None)}\n"
            f"They go to stanza's default directory ({DEFAULT_MODEL_DIR}), or to "
            "$STANZA_RESOURCES_DIR when it is set (then pass nothing, or --stanza-dir DIR "
            "here). On a machine without internet, copy that directory from one that has it."
        ) from e


class PosParser(ObjectParser):
    """``--parser pos``: stanza over batches of captions (see the module doc)."""

    name = "pos"

    def __init__(
        self,
        batch_size: int = 256,
        device: str = "auto",
        depparse: bool = False,
        model_dir: str | os.PathLike | None = None,
        compounds: Iterable[str] | None = None,
        pipeline: Any = None,
    ) -> None:
        self.batch_size = batch_size
        self.depparse = depparse
        extra = {" ".join(c.lower().split()) for c in compounds or ()}
        self.compounds = COMPOUNDS | extra
        self.pipeline = pipeline or load_pipeline(batch_size, device, depparse, model_dir)

    def parse_batch(self, captions: Sequence[Caption]) -> list[list[str] | None]:
        results: list[list[str] | None] = [[] for _ in captions]
        # One caption per document: line breaks inside a caption would split documents.
        texts = [" ".join(c.text.split()) for c in captions]
        todo = [i for i, text in enumerate(texts) if text]
        if todo:
            documents = self.pipeline.bulk_process([texts[i] for i in todo])
            for i, document in zip(todo, documents, strict=True):
                results[i] = objects_from_document(document, compounds=self.compounds)
        return results

    def identity(self) -> dict[str, Any]:
        import stanza

        return {
            "parser": self.name,
            "stanza": stanza.__version__,
            "depparse": self.depparse,
            "compounds": sorted(self.compounds - COMPOUNDS),
        }
