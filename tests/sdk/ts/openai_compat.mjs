// Drives the gateway's OpenAI-compatible endpoint (/compat) with OpenAI's official TypeScript/JavaScript SDK,
// unchanged (the `openai` package pinned in package.json, installed with `npm ci`).
//
// Usage: node openai_compat.mjs INFERENCE_BASE ACCOUNT GATEWAY
// The gateway must route openai, anthropic, google-ai-studio and cohere to a mock provider (tests/mock-providers).
// Chat, streams (with include_usage), the SDK's stream helper, tools (a call and the tool-result turn, whole and
// streamed), embeddings, the Responses API (whole and streamed), the model list and errors. Exits non-zero (with
// the failing step) on any difference from what the SDK expects; prints "openai ts sdk: ok" at the end.
import assert from "node:assert/strict";
import OpenAI from "openai";

const MODELS = [
  "openai/gpt-4o-mini",
  "anthropic/claude-sonnet-4-5",
  "google-ai-studio/gemini-2.5-flash",
  "cohere/command-a-03-2025",
];

const WEATHER = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather in a city",
    parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
  },
};
const TOOL_CALL = { headers: { "x-mock-scenario": "tool_call" } };

let step = "start";

async function main() {
  const [base, account, gateway] = process.argv.slice(2);
  assert.ok(base && account && gateway, "usage: node openai_compat.mjs INFERENCE_BASE ACCOUNT GATEWAY");
  const client = new OpenAI({ apiKey: "sk-test", baseURL: `${base}/v1/${account}/${gateway}/compat`, maxRetries: 0 });

  for (const model of MODELS) {
    step = `${model}: chat`;
    const completion = await client.chat.completions.create({
      model,
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Say hello" },
      ],
    });
    assert.ok(completion.choices[0].message.content, step);
    assert.equal(completion.choices[0].finish_reason, "stop", step);
    assert.ok(completion.usage && completion.usage.total_tokens > 0, step);

    step = `${model}: stream`;
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "Say hello" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    assert.ok(text, step);
    assert.ok(
      chunks.some((c) => c.usage && c.usage.total_tokens > 0),
      step,
    );
    assert.ok(
      chunks.some((c) => c.choices[0]?.finish_reason === "stop"),
      step,
    );

    step = `${model}: stream helper`;
    const runner = client.chat.completions.stream({ model, messages: [{ role: "user", content: "Say hello" }] });
    let deltas = "";
    runner.on("content", (delta) => {
      deltas += delta;
    });
    const final = await runner.finalChatCompletion();
    assert.ok(deltas, step);
    assert.equal(final.choices[0].message.content, deltas, step);

    step = `${model}: tools`;
    const question = { role: "user", content: "Weather in Paris?" };
    const first = await client.chat.completions.create(
      { model, messages: [question], tools: [WEATHER] },
      TOOL_CALL,
    );
    assert.equal(first.choices[0].finish_reason, "tool_calls", step);
    const call = first.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, "get_weather", step);
    assert.equal(JSON.parse(call.function.arguments).location, "Paris", step);
    const second = await client.chat.completions.create({
      model,
      messages: [question, first.choices[0].message, { role: "tool", tool_call_id: call.id, content: "18 degrees" }],
      tools: [WEATHER],
    });
    assert.ok(second.choices[0].message.content, step);

    step = `${model}: streamed tools`;
    const toolStream = await client.chat.completions.create(
      { model, messages: [question], tools: [WEATHER], stream: true },
      TOOL_CALL,
    );
    const names = [];
    let args = "";
    for await (const chunk of toolStream) {
      for (const c of chunk.choices[0]?.delta?.tool_calls ?? []) {
        if (c.function?.name) names.push(c.function.name);
        args += c.function?.arguments ?? "";
      }
    }
    assert.deepEqual(names, ["get_weather"], step);
    assert.equal(JSON.parse(args).location, "Paris", step);
  }

  step = "embeddings";
  // The SDK asks for base64 and decodes it to floats itself.
  const emb = await client.embeddings.create({ model: "openai/text-embedding-3-small", input: ["hello", "world"] });
  assert.equal(emb.data.length, 2, step);
  assert.ok(emb.data[0].embedding.length > 0 && typeof emb.data[0].embedding[0] === "number", step);

  for (const model of ["anthropic/claude-sonnet-4-5", "google-ai-studio/gemini-2.5-flash"]) {
    step = `${model}: responses`;
    const resp = await client.responses.create({ model, instructions: "Be brief.", input: "Say hello" });
    assert.ok(resp.output_text, step);
    assert.equal(resp.status, "completed", step);
    assert.ok(resp.usage && resp.usage.total_tokens > 0, step);

    step = `${model}: responses stream`;
    const events = await client.responses.create({ model, input: "Say hello", stream: true });
    let deltas = "";
    let completed;
    let sequence = -1;
    for await (const event of events) {
      assert.ok(event.sequence_number > sequence, step);
      sequence = event.sequence_number;
      if (event.type === "response.output_text.delta") deltas += event.delta;
      if (event.type === "response.completed") completed = event.response;
    }
    assert.ok(deltas, step);
    assert.ok(completed, step);
    assert.equal(completed.output_text ?? textOf(completed), deltas, step);

    step = `${model}: responses stream helper`;
    const helper = client.responses.stream({ model, input: "Say hello" });
    const finalResponse = await helper.finalResponse();
    assert.equal(finalResponse.output_text, deltas, step);
  }

  step = "models";
  const listed = await client.models.list();
  assert.ok(Array.isArray(listed.data), step);

  step = "errors";
  await assert.rejects(
    client.chat.completions.create({ model: "anthropic/claude-sonnet-4-5", messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === "messages",
    step,
  );
  await assert.rejects(
    client.chat.completions.create(
      { model: "anthropic/claude-sonnet-4-5", messages: [{ role: "user", content: "x" }] },
      { headers: { "x-mock-status": "429" } },
    ),
    (e) => e instanceof OpenAI.RateLimitError && e.status === 429,
    step,
  );
  console.log("openai ts sdk: ok");
}

// The text of a Responses API answer's message items (the SDK adds `output_text` only on what it parses itself).
function textOf(response) {
  return response.output
    .filter((item) => item.type === "message")
    .flatMap((item) => item.content)
    .filter((part) => part.type === "output_text")
    .map((part) => part.text)
    .join("");
}

main().catch((e) => {
  console.error(`failed at step ${step}:`, e);
  process.exit(1);
});
