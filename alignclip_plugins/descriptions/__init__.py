"""Visual (appearance) descriptions of objects and classes from an LLM: ``alignclip describe``."""

from alignclip_plugins.descriptions.generate import (
    DescribeResult,
    describe,
    load_descriptions,
    read_classnames,
    read_vocabulary_names,
    write_descriptions,
)

__all__ = [
    "DescribeResult",
    "describe",
    "load_descriptions",
    "read_classnames",
    "read_vocabulary_names",
    "write_descriptions",
]
