"""Token counts by the model's own vocabulary: the chat-formatted prompt, and a text.

The gateway counts the tokens it bills itself — a remote worker's ``usage`` is a claim, not
a fact. Counting needs only the vocabulary and the chat template (``vocab_only``: no weights,
~0.1 s to load), and tokenizing never changes them, so it runs on the event loop's thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from decentral_chain.errors import ModelError


class Tokenizer:
    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self._formatter: Any = None
        template = llama.metadata.get("tokenizer.chat_template")
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            self._formatter = Jinja2ChatFormatter(template, eos_token="", bos_token="")

    @classmethod
    def load(cls, model_path: Path) -> Tokenizer:
        """The vocabulary and chat template of a GGUF file, without its weights."""
        from llama_cpp import Llama

        try:
            return cls(Llama(model_path=str(model_path), vocab_only=True, verbose=False))
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"cannot read the vocabulary of {model_path}: {exc}") from exc

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the chat-formatted prompt, as llama.cpp's chat completion counts them."""
        if self._formatter is not None:
            text = self._formatter(messages=messages).prompt
        else:
            text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        return len(self.llama.tokenize(text.encode(), add_bos=True, special=True))

    def count(self, text: str) -> int:
        """Tokens of a generated text (no BOS)."""
        return len(self.llama.tokenize(text.encode(), add_bos=False, special=False)) if text else 0
