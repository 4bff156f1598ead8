"""The official `openai` Node SDK (npm, pinned in tests/js) against the gateway: tools (sync
and streamed), n, json_schema, an async task, an idempotent retry and embeddings; every
receipt verifies."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess

import numpy as np

from decentral_chain.receipts import Receipt
from decentral_chain.verify import verify_receipt
from tests.conftest import JS
from tests.test_gateway import MODEL, stack, workers  # noqa: F401  (fixtures)


def _verified(net: dict, headers: dict, output: str) -> None:
    receipt = Receipt.from_headers({k: v for k, v in headers.items() if v is not None})
    report = asyncio.run(verify_receipt(net["rpc"], receipt, response=output.encode()))
    assert report.verified, report.to_dict()


def test_the_node_sdk_gets_tools_n_schemas_tasks_and_idempotent_retries(stack, node_modules):  # noqa: F811
    proc = subprocess.run(
        ["node", str(JS / "openai_flow.mjs"), stack["url"] + "/v1", stack["key"], MODEL],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=JS,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    tool = out["tool"]
    assert tool["finish"] == "tool_calls" and tool["name"] == "get_weather"
    assert isinstance(tool["arguments"]["city"], str)
    assert json.loads(tool["output"]) == {"name": "get_weather", "arguments": tool["arguments"]}
    _verified(stack, tool["headers"], tool["output"])
    streamed = out["toolStream"]
    assert streamed["finish"] == "tool_calls" and streamed["name"] == "get_weather"
    assert json.loads(streamed["decentral"]["output"])["arguments"] == streamed["arguments"]
    n = out["n"]
    assert len(n["texts"]) == 2 and json.loads(n["output"]) == n["texts"]
    _verified(stack, n["headers"], n["output"])
    schema = json.loads(out["jsonSchema"]["content"])
    assert isinstance(schema["city"], str) and isinstance(schema["celsius"], int)
    _verified(stack, out["jsonSchema"]["headers"], out["jsonSchema"]["content"])
    task = out["task"]
    assert task["status"] == 202 and task["accepted"]["object"] == "task"
    final = task["final"]
    assert final["status"] == "completed" and final["job_id"] == task["accepted"]["job_id"]
    receipt = final["receipt"]
    report = asyncio.run(
        verify_receipt(
            stack["rpc"],
            Receipt.parse({**receipt, "client": str(stack["g"].clients[0].pubkey)}),
            response=final["result"]["choices"][0]["message"]["content"].encode(),
        )
    )
    assert report.verified, report.to_dict()
    emb = out["embeddings"]
    vectors = np.array(emb["vectors"], dtype=np.float32)
    assert vectors.shape == (2, 384) and np.array_equal(vectors, np.array(emb["floats"], dtype=np.float32))
    packed = vectors.astype("<f4").tobytes()
    assert hashlib.sha256(packed).hexdigest() == emb["headers"]["x-decentral-result-hash"]
    receipt = Receipt.from_headers({k: v for k, v in emb["headers"].items() if v is not None})
    assert asyncio.run(verify_receipt(stack["rpc"], receipt, response=packed)).verified
    assert emb["usage"]["prompt_tokens"] > 0
    idem = out["idempotent"]
    assert idem["replayed"] == "true" and idem["again"] == idem["first"]
    _verified(stack, idem["first"]["headers"], idem["first"]["content"])
