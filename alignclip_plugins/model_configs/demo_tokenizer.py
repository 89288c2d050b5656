"""The demo model's small tokenizer: every word the embedded data can write, one token each.

open_clip's default tokenizer has 49,408 tokens; a 64-wide text tower then holds a 3.2 M
parameter token embedding that AdamW updates in full every step (a sixth of a demo step's
CPU) although the embedded data uses a few hundred words. The demo model (``RN-Demo-64``)
ships this tokenizer instead, through open_clip's own ``local-dir:`` schema
(``"hf_tokenizer_name"`` in its config: open_clip then loads the directory's
``tokenizer.json`` with ``transformers``):

* lower-cased, NFC; split into runs of word characters and runs of punctuation;
* WordPiece over a fixed vocabulary: every word of :func:`demo_words` is one token, any
  other word falls back to its characters (``##``-continued), an unknown character to
  ``<unk>``;
* ``<start_of_text> ... <end_of_text>``, padded with ``<pad>`` = 0; ``<end_of_text>`` has
  the highest id, as open_clip's ``argmax`` text pooling requires.

Nothing is learned: the vocabulary is built from the generator's word tables, so the files
are the same on every machine. The shipped files are this module's output; rebuild them
after changing the generator's words with::

    python -m alignclip_plugins.model_configs.demo_tokenizer
"""

from __future__ import annotations

import json
import re
import string
import sys
from pathlib import Path

from alignclip_plugins.io.atomic import atomic_write_text

PAD, UNK, SOT, EOT = "<pad>", "<unk>", "<start_of_text>", "<end_of_text>"
CONTINUE = "##"
#: characters a word outside the vocabulary falls back to (lower case after normalising)
ALPHABET = string.ascii_lowercase + string.digits + string.punctuation
#: the pre-tokenizer's split, as ``tokenizers.pre_tokenizers.Whitespace`` does it
WORD_RE = re.compile(r"\w+|[^\w\s]+")
FILES = ("tokenizer.json", "tokenizer_config.json")


def demo_texts() -> list[str]:
    """Every fixed text of the embedded data and its evaluations: caption templates,
    distractors, number words, colour words and shape nouns, class names, visual
    descriptions and the zero-shot prompt templates."""
    from alignclip_plugins.evaluation.zeroshot import SIMPLE_TEMPLATES
    from alignclip_plugins.synthetic import captions, classes, descriptions

    texts = [
        *captions.NOISY_TEMPLATES,
        *captions.CLEAN_TEMPLATES,
        *captions.DISTRACTORS,
        *(w for words in captions.NUMBER_WORDS.values() for w in words),
        "a an one some and with",
        *(w for words in classes.COLOUR_WORDS.values() for w in words),
        *(w for nouns in classes.SHAPE_NOUNS.values() for pair in nouns for w in pair),
        *classes.CLASS_NAMES,
        *(d for ds in descriptions.visual_descriptions().values() for d in ds),
        *SIMPLE_TEMPLATES,
    ]
    return [t.replace("{objs}", " ").replace("{n}", " ").replace("{}", " ") for t in texts]


def demo_words() -> list[str]:
    """The distinct lower-cased words and punctuation runs of :func:`demo_texts`, sorted."""
    return sorted({w for t in demo_texts() for w in WORD_RE.findall(t.lower())})


def vocabulary() -> dict[str, int]:
    """Token -> id: ``<pad>`` 0, ``<unk>`` 1, the alphabet, its continuations, the demo's
    words, then ``<start_of_text>`` and ``<end_of_text>`` (the highest id)."""
    tokens = [PAD, UNK, *ALPHABET, *(CONTINUE + c for c in ALPHABET)]
    characters = set(tokens)  # a one-character word ("a", "!") is already a token
    tokens += [w for w in demo_words() if w not in characters]
    tokens += [SOT, EOT]
    return {t: i for i, t in enumerate(tokens)}


def tokenizer_json() -> dict:
    """The ``tokenizers`` serialisation of the demo tokenizer."""
    vocab = vocabulary()
    special = [(PAD, vocab[PAD]), (UNK, vocab[UNK]), (SOT, vocab[SOT]), (EOT, vocab[EOT])]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for t, i in special
        ],
        "normalizer": {
            "type": "Sequence",
            "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}],
        },
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": SOT, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": EOT, "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": SOT, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": EOT, "type_id": 0}},
            ],
            "special_tokens": {
                t: {"id": t, "ids": [i], "tokens": [t]} for t, i in [special[2], special[3]]
            },
        },
        "decoder": {"type": "WordPiece", "prefix": CONTINUE, "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": UNK,
            "continuing_subword_prefix": CONTINUE,
            "max_input_chars_per_word": 100,
            "vocab": vocab,
        },
    }


def tokenizer_config() -> dict:
    """``tokenizer_config.json``: the special tokens, for ``transformers.AutoTokenizer``."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "pad_token": PAD,
        "unk_token": UNK,
        "bos_token": SOT,
        "eos_token": EOT,
        "model_max_length": 77,
        "clean_up_tokenization_spaces": False,
    }


def write(out: Path) -> int:
    """Write the tokenizer files into ``out`` (atomically); returns the vocabulary size."""
    out.mkdir(parents=True, exist_ok=True)
    for name, content in zip(FILES, (tokenizer_json(), tokenizer_config())):
        atomic_write_text(out / name, json.dumps(content, indent=1, ensure_ascii=False) + "\n")
    return len(vocabulary())


def main(argv: list[str] | None = None) -> int:
    from alignclip_plugins.model_configs import DEMO, model_dir

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else model_dir(DEMO)
    size = write(out)
    print(f"wrote {', '.join(FILES)} to {out}: {size} tokens (set text_cfg.vocab_size to it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
