// OpenAI's Node SDK against a GXFT server, as a Node user writes it. It prints what it saw as one JSON object;
// compat_tests/test_other_clients.py says what each value must be. Settings come from the environment.
import OpenAI from "openai";

const { GXFT_BASE_URL, QA_MODEL, QUESTION, TOOL_MODEL, TINY } = process.env;
const client = new OpenAI({ baseURL: GXFT_BASE_URL, apiKey: "sk-node", maxRetries: 0 });
const weather = {
  type: "function",
  function: {
    name: "get_weather", description: "Current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const seen = {};

const chat = await client.chat.completions.create({
  model: QA_MODEL, messages: [{ role: "user", content: QUESTION }], temperature: 0, logprobs: true, top_logprobs: 2,
  store: true, metadata: { client: "node" },
});
seen.chat = chat.choices[0].message.content;
seen.chatLogprobTokens = chat.choices[0].logprobs.content.map((entry) => entry.token).join("");
let streamed = "";
for await (const chunk of await client.chat.completions.create({
  model: QA_MODEL, messages: [{ role: "user", content: QUESTION }], temperature: 0, stream: true,
})) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
}
seen.chatStreamed = streamed;
const runner = client.chat.completions.stream({
  model: TOOL_MODEL, messages: [{ role: "user", content: "What is the weather in Paris?" }], tools: [weather],
  temperature: 0,
});
const final = await runner.finalChatCompletion();
seen.toolCall = final.choices[0].message.tool_calls?.[0]?.function ?? null;
seen.toolFinish = final.choices[0].finish_reason;
const structured = await client.chat.completions.create({
  model: TINY, messages: [{ role: "user", content: "A city" }], temperature: 1, max_tokens: 200,
  response_format: { type: "json_schema", json_schema: { name: "city", strict: true, schema: {
    type: "object", properties: { name: { type: "string", maxLength: 12 } }, required: ["name"],
    additionalProperties: false } } },
});
seen.structured = JSON.parse(structured.choices[0].message.content);

const stored = [];
for await (const completion of client.chat.completions.list({ metadata: { client: "node" } })) {
  stored.push(completion.id);
}
seen.storedIds = stored;
seen.storedChatId = chat.id;
seen.storedMessages = (await client.chat.completions.messages.list(chat.id)).data.map((m) => [m.role, m.content]);
seen.updatedMetadata = (await client.chat.completions.update(chat.id, { metadata: { client: "node", seen: "yes" } }))
  .metadata;
seen.deleted = (await client.chat.completions.delete(chat.id)).deleted;

const response = await client.responses.create({ model: QA_MODEL, input: QUESTION, temperature: 0 });
seen.response = response.output_text;
const next = await client.responses.create({
  model: QA_MODEL, previous_response_id: response.id, input: "Thanks", max_output_tokens: 16,
});
seen.chainedItems = (await client.responses.inputItems.list(next.id, { order: "asc" })).data.map((item) => item.role);
const events = [];
let deltas = "";
for await (const event of await client.responses.create({ model: QA_MODEL, input: QUESTION, temperature: 0,
  stream: true })) {
  events.push(event.type);
  if (event.type === "response.output_text.delta") deltas += event.delta;
}
seen.responseEvents = [events[0], events[events.length - 1]];
seen.responseStreamed = deltas;
const helper = client.responses.stream({ model: QA_MODEL, input: QUESTION, temperature: 0 });
seen.responseHelper = (await helper.finalResponse()).output_text;
try {
  await client.responses.create({ model: QA_MODEL, input: "Hi", tools: [{ type: "web_search" }] });
  seen.webSearch = "accepted";
} catch (error) {
  seen.webSearch = [error.status, error.param];
}
console.log(JSON.stringify(seen));
