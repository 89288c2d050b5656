"""An OpenAI-compatible chat client (over the ``openai`` package, the ``[llm]`` extra) with
this project's retry rules, a persistent answer cache, concurrent requests and the AlignCLIP
supplement's prompts; shared by ``alignclip objects parse --parser llm`` and
``alignclip describe``.
"""

from alignclip_plugins.llm.cache import ChatCache, cache_key
from alignclip_plugins.llm.client import (
    ChatClient,
    LLMError,
    LLMFatalError,
    LLMRequestError,
    MalformedResponse,
)
from alignclip_plugins.llm.prompts import (
    APPEARANCE_PROMPT,
    CAPTION_OBJECTS_PROMPT,
    appearance_messages,
    caption_objects_messages,
)
from alignclip_plugins.llm.runner import ChatRequest, ChatResult, LLMUnavailable, ask_many

__all__ = [
    "APPEARANCE_PROMPT",
    "CAPTION_OBJECTS_PROMPT",
    "ChatCache",
    "ChatClient",
    "ChatRequest",
    "ChatResult",
    "LLMError",
    "LLMFatalError",
    "LLMRequestError",
    "LLMUnavailable",
    "MalformedResponse",
    "appearance_messages",
    "ask_many",
    "cache_key",
    "caption_objects_messages",
]
