"""``logprobs`` / ``top_logprobs`` as OpenAI shapes them, from llama.cpp's raw logits.

llama-cpp-python returns log-probabilities only from a model loaded with ``logits_all``
(every position's logits kept: ~200 MB more per instance here, and slower prompts). Instead,
for the requests that ask, a logits processor (first in the sampler chain, so it sees the
model's raw distribution) takes each step's log-softmax, and the sampled token is read as
it is drawn. Each generated token becomes ``{"token", "logprob", "bytes", "top_logprobs":
[{"token", "logprob", "bytes"}, ...]}`` in ``choices[i].logprobs.content`` — the
distribution before temperature, penalties and grammar, as OpenAI reports it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

MAX_TOP_LOGPROBS = 20


class LogprobRecorder:
    def __init__(self, llama: Any, top: int) -> None:
        self.llama = llama
        self.top = top
        self.eos = llama.token_eos()
        self._logits: np.ndarray | None = None
        self._lse = 0.0
        self.entries: list[dict[str, Any]] = []
        self.taken = 0  # entries already handed out (streams)

    def processor(self, input_ids: Any, logits: np.ndarray) -> np.ndarray:
        peak = float(logits.max())
        self._lse = peak + float(np.log(np.exp(logits - peak).sum()))
        self._logits = np.array(logits, copy=True)
        return logits

    def sampled(self, token: int) -> None:
        if self._logits is None or token == self.eos:
            return
        logits, lse = self._logits, self._lse
        entry = self._item(token, float(logits[token]) - lse)
        top: list[dict[str, Any]] = []
        if self.top:
            ids = np.argpartition(-logits, self.top)[: self.top]
            ids = ids[np.argsort(-logits[ids])]
            top = [self._item(int(i), float(logits[i]) - lse) for i in ids]
        entry["top_logprobs"] = top
        self.entries.append(entry)

    def _item(self, token: int, logprob: float) -> dict[str, Any]:
        raw = self.llama.detokenize([token])
        return {"token": raw.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(raw)}

    def content(self, text: str) -> list[dict[str, Any]]:
        """The entries that make up ``text`` (an answer cut at a stop sequence drops the rest)."""
        limit, used, out = len(text.encode()), 0, []
        for entry in self.entries:
            if used >= limit:
                break
            out.append(entry)
            used += len(entry["bytes"])
        return out

    def new(self) -> list[dict[str, Any]]:
        """The entries since the last call (a stream's next chunk)."""
        out = self.entries[self.taken :]
        self.taken = len(self.entries)
        return out


@contextlib.contextmanager
def recording(llama: Any, kwargs: dict[str, Any]) -> Iterator[tuple[dict[str, Any], LogprobRecorder | None]]:
    """``kwargs`` without logprobs / top_logprobs (llama-cpp-python would refuse them) and a
    recorder wired into this llama's sampling while the block runs; (kwargs, None) when the
    request did not ask."""
    wanted = bool(kwargs.get("logprobs"))
    rest = {k: v for k, v in kwargs.items() if k not in ("logprobs", "top_logprobs")}
    if not wanted:
        yield rest, None
        return
    from llama_cpp import LogitsProcessorList

    recorder = LogprobRecorder(llama, int(kwargs.get("top_logprobs") or 0))
    original = type(llama).sample

    def sample(*args: Any, **kw: Any) -> int:
        token = original(llama, *args, **kw)
        recorder.sampled(int(token))
        return token

    llama.sample = sample
    try:
        yield rest | {"logits_processor": LogitsProcessorList([recorder.processor])}, recorder
    finally:
        del llama.sample


def shape(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"content": entries, "refusal": None}
