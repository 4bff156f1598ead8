// The official `openai` Node SDK (pinned in package.json) against the gateway, unpatched:
// tools (sync and streamed, assembled by the SDK's stream helper), n, json_schema, async
// tasks, idempotent retries and embeddings. Prints what it got (with receipt headers) as one JSON line;
// the Python test checks every receipt with `decentral verify`'s verifier.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const receiptHeaders = (h) =>
  Object.fromEntries(
    ["x-decentral-job-id", "x-decentral-tx-signature", "x-decentral-settlement-tx", "x-decentral-worker", "x-decentral-job-nonce", "x-decentral-cost"]
      .map((k) => [k, h.get(k)]),
  );
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const ask = [{ role: "user", content: "What is the weather in Paris?" }];
const out = {};

// tools, not streamed
{
  const { data, response } = await client.chat.completions
    .create({ model, messages: ask, tools: [weather], tool_choice: "required", max_tokens: 40 })
    .withResponse();
  const call = data.choices[0].message.tool_calls[0];
  out.tool = {
    finish: data.choices[0].finish_reason,
    name: call.function.name,
    arguments: JSON.parse(call.function.arguments),
    output: data.decentral.output,
    headers: receiptHeaders(response.headers),
  };
}

// tools, streamed: the SDK's helper assembles the delta.tool_calls
{
  const stream = client.chat.completions.stream({
    model,
    messages: ask,
    tools: [weather],
    tool_choice: { type: "function", function: { name: "get_weather" } },
    max_tokens: 40,
  });
  const chunks = [];
  stream.on("chunk", (c) => chunks.push(c));
  const final = await stream.finalChatCompletion();
  const call = final.choices[0].message.tool_calls[0];
  const last = chunks[chunks.length - 1];
  out.toolStream = {
    finish: final.choices[0].finish_reason,
    name: call.function.name,
    arguments: JSON.parse(call.function.arguments),
    decentral: last.decentral,
  };
}

// n = 2
{
  const { data, response } = await client.chat.completions
    .create({ model, messages: ask, n: 2, max_tokens: 8 })
    .withResponse();
  out.n = { texts: data.choices.map((c) => c.message.content), output: data.decentral.output, headers: receiptHeaders(response.headers) };
}

// json_schema
{
  const schema = { type: "object", properties: { city: { type: "string" }, celsius: { type: "integer" } }, required: ["city", "celsius"] };
  const { data, response } = await client.chat.completions
    .create({ model, messages: ask, max_tokens: 30, response_format: { type: "json_schema", json_schema: { name: "w", schema, strict: true } } })
    .withResponse();
  out.jsonSchema = { content: data.choices[0].message.content, headers: receiptHeaders(response.headers) };
}

// an async task, polled until it completes
{
  const { data, response } = await client.chat.completions
    .create({ model, messages: ask, max_tokens: 8, async: true })
    .withResponse();
  let task = data;
  for (let i = 0; i < 300 && task.status !== "completed" && task.status !== "failed"; i++) {
    await new Promise((r) => setTimeout(r, 50));
    task = await client.get(`/tasks/${data.id}`);
  }
  out.task = { status: response.status, accepted: data, final: task };
}

// an idempotent retry: the first answer again, charged once
{
  const key = `node-${Date.now()}`;
  const opts = { headers: { "Idempotency-Key": key } };
  const body = { model, messages: ask, max_tokens: 8 };
  const first = await client.chat.completions.create(body, opts).withResponse();
  const again = await client.chat.completions.create(body, opts).withResponse();
  out.idempotent = {
    first: { id: first.data.id, content: first.data.choices[0].message.content, headers: receiptHeaders(first.response.headers) },
    again: { id: again.data.id, content: again.data.choices[0].message.content, headers: receiptHeaders(again.response.headers) },
    replayed: again.response.headers.get("idempotent-replayed"),
  };
}

// embeddings: the SDK asks for base64 and decodes it; float asked explicitly
{
  const inputs = ["The cat sits on the mat.", "Receipts anyone can verify."];
  const { data, response } = await client.embeddings
    .create({ model: "all-minilm-l6-v2", input: inputs })
    .withResponse();
  const floats = await client.embeddings.create({ model: "all-minilm-l6-v2", input: inputs, encoding_format: "float" });
  out.embeddings = {
    vectors: data.data.map((d) => Array.from(d.embedding)),
    floats: floats.data.map((d) => d.embedding),
    usage: data.usage,
    headers: { ...receiptHeaders(response.headers), "x-decentral-result-hash": response.headers.get("x-decentral-result-hash") },
  };
}

console.log(JSON.stringify(out));
