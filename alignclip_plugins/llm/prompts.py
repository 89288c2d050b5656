"""The two LLM prompts of the AlignCLIP supplement (§3), verbatim, and their message layout.

Layout (documented in docs/objects.md): one ``user`` message, no system message.
- Caption objects: the instruction, a newline, then the caption (its own line breaks and
  runs of whitespace collapsed to single spaces)::

      The following is a caption for an image. Please directly indicate the objects
      contained in it, separated by commas.
      a man riding a horse on the beach

- Appearance: the instruction with ``CLASS`` replaced by the object or class name, nothing
  else: "Please briefly introduce the appearance of traffic light in ordinary language".
"""

from __future__ import annotations

CAPTION_OBJECTS_PROMPT = (
    "The following is a caption for an image. "
    "Please directly indicate the objects contained in it, separated by commas."
)
APPEARANCE_PROMPT = "Please briefly introduce the appearance of CLASS in ordinary language"

Message = dict[str, str]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def caption_objects_messages(caption: str) -> list[Message]:
    """Chat messages asking for the objects of ``caption`` (instruction, newline, caption)."""
    return [{"role": "user", "content": f"{CAPTION_OBJECTS_PROMPT}\n{_one_line(caption)}"}]


def appearance_messages(name: str) -> list[Message]:
    """Chat messages asking for a visual description of ``name`` (CLASS replaced)."""
    return [{"role": "user", "content": APPEARANCE_PROMPT.replace("CLASS", _one_line(name))}]
