"""Tools (function calling) and JSON schemas through llama.cpp's grammar-constrained generation.

With ``tools`` (and ``tool_choice`` other than ``none``) the model is told the functions and
its output is constrained — by a JSON schema llama.cpp turns into a grammar — to exactly
one JSON object:

* ``{"name": "<function>", "arguments": {...}}`` with arguments that match that function's
  ``parameters`` schema (``required``: any of the functions; a named function: that one);
* or, with ``auto``, ``{"content": "<text>"}`` to answer in words.

So the arguments always parse and match the schema, even on the smallest model. The gateway
turns that output into OpenAI's shape: ``message.tool_calls`` with ``finish_reason:
"tool_calls"``, or ``message.content``. The model's raw output is what the job's result hash
covers (and what the worker signed); it is returned as ``decentral.output`` beside the
answer so a client can verify the receipt with it. Earlier calls (assistant ``tool_calls``)
and ``role: "tool"`` results in follow-up turns are shown to the model as text.

``response_format: {"type": "json_schema", ...}`` constrains a plain answer to its schema the
same way (strict: the output always validates); its result hash is over the content, as usual.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from decentral_chain.gateway import errors as gw
from decentral_chain.gateway.schemas import ChatCompletionRequest, Message

ANSWER_SCHEMA = {"type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"]}


def check_schema(schema: Any, param: str) -> None:
    """A schema llama.cpp can turn into a grammar, or a 400 naming where it is."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises plain exceptions for what it cannot express
        raise gw.InvalidRequest(f"{param}: this JSON schema cannot be enforced ({exc})", param=param) from None


def validate(req: ChatCompletionRequest) -> None:
    """The tools' and schemas' checks beyond the request model: each a 400 naming the parameter."""
    if req.tool_choice is not None and not req.tools:
        raise gw.InvalidRequest("tool_choice is only allowed when tools are specified", param="tool_choice")
    names = [t.function.name for t in req.tools or []]
    if len(set(names)) != len(names):
        raise gw.InvalidRequest("tools: each function needs its own name", param="tools")
    mode = req.tool_mode
    if mode not in (None, "auto", "required") and mode not in names:
        raise gw.InvalidRequest(f"tool_choice names `{mode}`, which is not among the tools", param="tool_choice")
    if mode is not None and req.response_format is not None and req.response_format.type != "text":
        raise gw.InvalidRequest("response_format cannot be combined with tools", param="response_format")
    if mode is not None:
        check_schema(output_schema(req), "tools")
    if req.response_format is not None and req.response_format.json_schema is not None:
        check_schema(req.response_format.json_schema.schema_, "response_format.json_schema.schema")


def _call_schema(tool: Any) -> dict:
    parameters = tool.function.parameters or {"type": "object"}
    return {
        "type": "object",
        "properties": {"name": {"const": tool.function.name}, "arguments": parameters},
        "required": ["name", "arguments"],
    }


def output_schema(req: ChatCompletionRequest) -> dict:
    """The one JSON object the model may write in this tool mode."""
    mode = req.tool_mode
    tools = req.tools or []
    if mode not in ("auto", "required"):
        return _call_schema(next(t for t in tools if t.function.name == mode))
    calls = [_call_schema(t) for t in tools]
    options = calls + ([ANSWER_SCHEMA] if mode == "auto" else [])
    return options[0] if len(options) == 1 else {"anyOf": options}


def _instructions(req: ChatCompletionRequest) -> str:
    mode = req.tool_mode
    listing = "\n".join(
        json.dumps(
            {"name": t.function.name, "description": t.function.description or "", "parameters": t.function.parameters}
        )
        for t in req.tools or []
        if mode in ("auto", "required") or t.function.name == mode
    )
    reply = 'Reply with JSON only: {"name": <function name>, "arguments": <arguments object>}'
    if mode == "auto":
        reply += ' to call a function, or {"content": <your answer>} to answer without one'
    return f"You can call these functions:\n{listing}\n{reply}."


def chat_messages(req: ChatCompletionRequest) -> list[dict[str, str]]:
    """The conversation as the model sees it: developer → system; earlier tool calls and tool
    results as text; in a tool mode, the functions and the reply format in a system message."""
    out = [_as_text(m) for m in req.messages]
    if req.tool_mode is not None:
        out.insert(0, {"role": "system", "content": _instructions(req)})
    elif req.response_format is not None and req.response_format.json_schema is not None:
        schema = json.dumps(req.response_format.json_schema.schema_)
        out.insert(0, {"role": "system", "content": f"Reply with JSON matching this schema: {schema}"})
    return out


def _as_text(m: Message) -> dict[str, str]:
    if m.role == "tool":
        return {"role": "user", "content": f"Result of tool call {m.tool_call_id}: {m.text()}"}
    if m.role == "assistant" and m.tool_calls:
        calls = [{"name": c.function.name, "arguments": _loads(c.function.arguments)} for c in m.tool_calls]
        text = json.dumps(calls[0] if len(calls) == 1 else calls)
        return {"role": "assistant", "content": (m.text() + "\n" + text).strip()}
    return {"role": "system" if m.role == "developer" else m.role, "content": m.text()}


def _loads(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments


def response_format(req: ChatCompletionRequest) -> dict | None:
    """What llama.cpp is given: a JSON schema it enforces with a grammar, or plain JSON."""
    if req.tool_mode is not None:
        return {"type": "json_object", "schema": output_schema(req)}
    rf = req.response_format
    if rf is None or rf.type == "text":
        return None
    if rf.type == "json_schema":
        assert rf.json_schema is not None
        return {"type": "json_object", "schema": rf.json_schema.schema_}
    return {"type": "json_object"}


def answer(output: str, finish_reason: str | None) -> tuple[dict[str, Any], str | None]:
    """The model's constrained output as an assistant message (tool_calls or content) and the
    finish reason. An output cut short by max_tokens is returned as it is, as content."""
    try:
        data = json.loads(output)
    except json.JSONDecodeError:
        return {"role": "assistant", "content": output}, finish_reason
    if isinstance(data, dict) and "name" in data and "arguments" in data:
        call = {
            "id": "call_" + secrets.token_hex(12),
            "type": "function",
            "function": {"name": data["name"], "arguments": json.dumps(data["arguments"])},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    if isinstance(data, dict) and isinstance(data.get("content"), str):
        return {"role": "assistant", "content": data["content"]}, finish_reason
    return {"role": "assistant", "content": output}, finish_reason


def stream_chunks(base: dict[str, Any], message: dict[str, Any], finish_reason: str | None) -> list[dict]:
    """An answer as OpenAI streams it: the role, then the tool call (id, name, then its
    arguments in pieces) or the content, then the finish reason."""
    chunks = [{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}]
    if message.get("tool_calls"):
        for i, call in enumerate(message["tool_calls"]):
            head = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"]}}
            head["function"]["arguments"] = ""
            chunks.append({"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None})
            args = call["function"]["arguments"]
            for start in range(0, len(args), 16):
                piece = {"index": i, "function": {"arguments": args[start : start + 16]}}
                chunks.append({"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None})
    elif message.get("content"):
        chunks.append({"index": 0, "delta": {"content": message["content"]}, "finish_reason": None})
    chunks.append({"index": 0, "delta": {}, "finish_reason": finish_reason})
    return [base | {"choices": [c]} for c in chunks]
