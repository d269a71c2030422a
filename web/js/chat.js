// chat.js - the Chat view: conversations (kept in localStorage), streaming
// answers over /v1/chat/completions with Markdown rendered safely
// (markdown.js), a collapsible thinking section for reasoning_content, stop,
// regenerate, copy, per-answer TTFT and tokens/s, sampling settings.
//
// Models without a chat template (the server answers 400
// chat_template_missing) are talked to through /v1/completions: the
// conversation is sent as plain text (completionPrompt below) and the model
// continues it. A notice says so.

import { h, $, replace, copyText, flash } from './dom.js';
import { renderMarkdown } from './markdown.js';
import { ApiError, getJSON, streamSSE } from './api.js';
import { noModelYet } from './cluster.js';
import * as store from './store.js';

const state = {
  convs: [],
  current: null,     // the open conversation (null: a new, unsaved one)
  settings: store.loadSettings(),
  gen: null,         // {conv, msg, controller} while an answer streams
  model: null,       // /v1/models entry
  noTemplate: false, // the server said chat_template_missing
};
const views = new Map(); // message id -> its DOM parts
let els;
let saveTimer = 0;

// ---- prompts ----

/**
 * The plain-text prompt for a model without a chat template: the system
 * prompt (if any) and the turns in order; every user turn after the first
 * starts after a blank line, an answer follows its prompt directly (it was
 * generated as its continuation). The first message alone is sent as is.
 */
export function completionPrompt(system, history) {
  let p = system ? `${system}\n\n` : '';
  history.forEach((m, k) => {
    if (m.role === 'user' && k > 0) p += '\n\n';
    p += m.content;
  });
  return p;
}

function requestBody(conv, msg, mode) {
  const s = state.settings;
  const upto = conv.messages.indexOf(msg);
  const history = conv.messages.slice(0, upto).filter((m) => m.role === 'user' || m.content);
  const body = {
    stream: true,
    stream_options: { include_usage: true },
    temperature: s.temperature,
    top_p: s.top_p,
  };
  if (state.model?.id) body.model = state.model.id;
  if (s.max_tokens) body.max_tokens = s.max_tokens;
  if (mode === 'chat') {
    body.messages = [];
    if (s.system.trim()) body.messages.push({ role: 'system', content: s.system });
    for (const m of history) body.messages.push({ role: m.role, content: m.content });
    body.chat_template_kwargs = { enable_thinking: s.thinking };
  } else {
    body.prompt = completionPrompt(s.system.trim() ? s.system : '', history);
  }
  return body;
}

// ---- conversations ----

function persist(now = false) {
  clearTimeout(saveTimer);
  const doSave = () => {
    const list = state.convs.filter((c) => c.messages.length);
    store.saveConversations(list);
    store.saveCurrent(state.current?.id ?? null);
  };
  if (now) doSave();
  else saveTimer = setTimeout(doSave, 500);
}

function newConversation() {
  return { id: store.newId(), title: 'New chat', created: Date.now(), updated: Date.now(), messages: [] };
}

function openConversation(conv) {
  if (state.gen) stop();
  state.current = conv;
  persist(true);
  renderList();
  renderConversation();
  closeSidebar();
}

function deleteConversation(conv) {
  if (state.gen?.conv === conv) stop();
  state.convs = state.convs.filter((c) => c !== conv);
  if (state.current === conv) state.current = state.convs[0] ?? newConversation();
  persist(true);
  renderList();
  renderConversation();
}

function titleOf(text) {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 48 ? `${t.slice(0, 47)}…` : t || 'New chat';
}

// ---- sending and streaming ----

function send(text) {
  if (state.gen || !text.trim()) return;
  let conv = state.current;
  if (!conv) conv = state.current = newConversation();
  if (!state.convs.includes(conv)) state.convs.unshift(conv);
  if (!conv.messages.length) conv.title = titleOf(text);
  conv.messages.push({ id: store.newId(), role: 'user', content: text });
  const msg = { id: store.newId(), role: 'assistant', content: '', reasoning: '', error: null, stopped: false, stats: null, mode: 'chat' };
  conv.messages.push(msg);
  conv.updated = Date.now();
  state.convs.sort((a, b) => b.updated - a.updated);
  els.input.value = '';
  autosize();
  renderList();
  renderConversation();
  generate(conv, msg);
}

function regenerate(msg) {
  const conv = state.current;
  if (state.gen || !conv) return;
  const k = conv.messages.indexOf(msg);
  if (k < 0) return;
  conv.messages.splice(k + 1); // later turns were built on the old answer
  Object.assign(msg, { content: '', reasoning: '', error: null, stopped: false, interrupted: false, stats: null });
  conv.updated = Date.now();
  renderConversation();
  generate(conv, msg);
}

export function stop() {
  if (state.gen) state.gen.controller.abort();
}

async function generate(conv, msg) {
  const controller = new AbortController();
  state.gen = { conv, msg, controller };
  msg.pending = true;
  setBusy(true);
  updateMessage(msg);

  const t0 = performance.now();
  let tFirst = 0, tLast = 0, usage = null, finish = null;
  const onEvent = (ev) => {
    if (ev.usage) usage = ev.usage;
    const ch = ev.choices?.[0];
    if (!ch) return;
    let got = false;
    if (msg.mode === 'chat') {
      const d = ch.delta ?? {};
      if (d.reasoning_content) { msg.reasoning += d.reasoning_content; got = true; }
      if (d.content) { msg.content += d.content; got = true; }
    } else if (ch.text) {
      msg.content += ch.text;
      got = true;
    }
    if (ch.finish_reason) finish = ch.finish_reason;
    if (got) {
      const t = performance.now();
      if (!tFirst) tFirst = t;
      tLast = t;
      scheduleUpdate(msg);
    }
  };

  try {
    msg.mode = state.noTemplate ? 'completion' : 'chat';
    for (;;) {
      const path = msg.mode === 'chat' ? '/v1/chat/completions' : '/v1/completions';
      try {
        await streamSSE(path, requestBody(conv, msg, msg.mode), { signal: controller.signal, onEvent });
        break;
      } catch (e) {
        if (msg.mode === 'chat' && e instanceof ApiError && e.code === 'chat_template_missing') {
          state.noTemplate = true;
          msg.mode = 'completion';
          showModeNotice();
          continue;
        }
        throw e;
      }
    }
  } catch (e) {
    if (controller.signal.aborted) msg.stopped = true;
    else msg.error = e instanceof ApiError ? e.describe() : String(e?.message ?? e);
  }
  const tEnd = performance.now();
  // Token counts come from the usage chunk; a stopped or failed answer has
  // none (a chunk may carry several tokens), so it shows TTFT and time only.
  const tokens = usage?.completion_tokens ?? null;
  let tps = null;
  if (tokens > 1 && tLast - tFirst >= 1) tps = (tokens - 1) / ((tLast - tFirst) / 1000);
  else if (tokens > 0 && tEnd > t0) tps = tokens / ((tEnd - t0) / 1000);
  msg.stats = tFirst || usage ? {
    ttft_ms: tFirst ? tFirst - t0 : null,
    tokens,
    tps,
    total_ms: tEnd - t0,
    prompt_tokens: usage?.prompt_tokens ?? null,
    cached_tokens: usage?.prompt_tokens_details?.cached_tokens ?? null,
    finish: msg.stopped ? 'stopped' : finish,
  } : null;
  delete msg.pending;
  conv.updated = Date.now();
  state.gen = null;
  setBusy(false);
  updateMessage(msg, true);
  persist(true);
  if (state.current === conv) els.input.focus();
}

// ---- rendering ----

function renderList() {
  const list = els.convList;
  replace(list);
  const saved = state.convs.filter((c) => c.messages.length);
  els.convEmpty.hidden = saved.length > 0;
  for (const c of saved) {
    const cur = c === state.current;
    const open = h('button', { type: 'button', class: 'conv-open', 'aria-current': cur ? 'page' : null, title: c.title,
      on: { click: () => openConversation(c) } }, c.title);
    const del = h('button', { type: 'button', class: 'icon-btn conv-del', 'aria-label': `Delete conversation “${c.title}”`,
      title: 'Delete', on: { click: () => deleteConversation(c) } }, '✕');
    list.appendChild(h('li', { class: cur ? 'current' : null, dataset: { id: c.id } }, open, del));
  }
}

function renderConversation() {
  const conv = state.current;
  els.title.textContent = conv && conv.messages.length ? conv.title : 'New chat';
  views.clear();
  const kids = [];
  if (!conv || !conv.messages.length) kids.push(els.emptyChat);
  for (const m of conv?.messages ?? []) kids.push(messageView(m));
  replace(els.messages, kids);
  for (const m of conv?.messages ?? []) if (m.role === 'assistant') updateMessage(m, true);
  if (conv?.messages.some((m) => m.mode === 'completion')) showModeNotice();
  else if (!state.noTemplate) els.notice.hidden = true;
  scrollToEnd(true);
}

function messageView(m) {
  if (m.role === 'user') {
    const copy = h('button', { type: 'button', class: 'act', dataset: { action: 'copy' }, 'aria-label': 'Copy message' }, 'Copy');
    copy.addEventListener('click', async () => flash(copy, (await copyText(m.content)) ? 'Copied' : 'Copy failed'));
    const root = h('article', { class: 'msg user', dataset: { id: m.id }, 'aria-label': 'You' },
      h('div', { class: 'who' }, 'You'),
      h('div', { class: 'content plain' }, m.content),
      h('div', { class: 'meta' }, h('span', { class: 'actions' }, copy)));
    return root;
  }
  const thinkBody = h('div', { class: 'md think-body' });
  const summary = h('summary', null, 'Thinking');
  const think = h('details', { class: 'thinking', hidden: true }, summary, thinkBody);
  think.addEventListener('toggle', () => { if (think.open !== v.autoOpen) v.userToggled = true; });
  const body = h('div', { class: 'md content' });
  const error = h('div', { class: 'error', role: 'alert', hidden: true });
  const stats = h('span', { class: 'stats' });
  const copy = h('button', { type: 'button', class: 'act', dataset: { action: 'copy' }, 'aria-label': 'Copy answer' }, 'Copy');
  copy.addEventListener('click', async () => flash(copy, (await copyText(m.content)) ? 'Copied' : 'Copy failed'));
  const regen = h('button', { type: 'button', class: 'act', dataset: { action: 'regenerate' }, 'aria-label': 'Regenerate answer' }, 'Regenerate');
  regen.addEventListener('click', () => regenerate(m));
  const status = h('span', { class: 'status' });
  const root = h('article', { class: 'msg assistant', dataset: { id: m.id }, 'aria-label': 'Answer' },
    h('div', { class: 'who' }, 'Parallax', status),
    think, body, error,
    h('div', { class: 'meta' }, stats, h('span', { class: 'actions' }, copy, regen)));
  const v = { root, think, summary, thinkBody, body, error, stats, copy, regen, status, userToggled: false, autoOpen: false, frame: 0 };
  views.set(m.id, v);
  return root;
}

function scheduleUpdate(msg) {
  const v = views.get(msg.id);
  if (!v || v.frame) return;
  v.frame = requestAnimationFrame(() => {
    v.frame = 0;
    updateMessage(msg);
    persist(); // throttled: a reload mid-answer keeps what had arrived
  });
}

function fmtStats(st) {
  if (!st) return '';
  const parts = [];
  if (st.ttft_ms !== null && st.ttft_ms !== undefined) parts.push(`TTFT ${st.ttft_ms < 10 ? st.ttft_ms.toFixed(1) : Math.round(st.ttft_ms)} ms`);
  if (st.tokens) parts.push(`${st.tokens} tokens`);
  if (st.tps) parts.push(`${st.tps >= 100 ? Math.round(st.tps) : st.tps.toFixed(1)} tok/s`);
  if (!st.tokens && st.total_ms) parts.push(`${(st.total_ms / 1000).toFixed(1)} s`);
  if (st.finish && st.finish !== 'stop') parts.push(st.finish === 'length' ? 'hit max tokens' : st.finish);
  return parts.join(' · ');
}

function updateMessage(msg, final = false) {
  const v = views.get(msg.id);
  if (!v) return;
  const streaming = !!msg.pending;
  v.root.classList.toggle('streaming', streaming);
  v.root.setAttribute('aria-busy', streaming ? 'true' : 'false');
  // thinking
  v.think.hidden = !msg.reasoning;
  if (msg.reasoning) {
    renderMarkdown(msg.reasoning, v.thinkBody);
    const thinkingNow = streaming && !msg.content;
    v.summary.textContent = thinkingNow ? 'Thinking…' : 'Thinking';
    if (!v.userToggled) {
      v.autoOpen = thinkingNow; // open while it thinks, folded once the answer starts
      v.think.open = thinkingNow;
    }
  }
  renderMarkdown(msg.content, v.body);
  if (streaming && !msg.content && !msg.reasoning) v.body.appendChild(h('span', { class: 'typing', 'aria-label': 'waiting for the first token' }, '…'));
  if (!streaming && !msg.content && msg.reasoning && !msg.error) {
    v.body.appendChild(h('p', { class: 'muted small' }, msg.stopped ? '(stopped while thinking)' : '(the answer ended inside the thinking: raise Max tokens)'));
  }
  v.error.hidden = !msg.error;
  v.error.textContent = msg.error ? msg.error : '';
  v.status.textContent = streaming ? ' · answering' : msg.stopped ? (msg.interrupted ? ' · interrupted' : ' · stopped') : '';
  v.stats.textContent = streaming ? '' : fmtStats(msg.stats);
  v.copy.hidden = streaming || !msg.content;
  const conv = state.current;
  const last = conv && conv.messages[conv.messages.length - 1] === msg;
  v.regen.hidden = streaming || !last;
  if (msg.mode === 'completion') v.root.classList.add('completion');
  if (!final && streaming) scrollToEnd();
}

function nearBottom() {
  const m = els.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 120;
}

function scrollToEnd(force = false) {
  if (force || nearBottom()) els.messages.scrollTop = els.messages.scrollHeight;
}

function setBusy(busy) {
  els.send.hidden = busy;
  els.stop.hidden = !busy;
  els.composer.classList.toggle('busy', busy);
  // Regenerate buttons hide while streaming.
  for (const m of state.current?.messages ?? []) if (m.role === 'assistant' && views.has(m.id)) {
    views.get(m.id).regen.hidden = busy || state.current.messages[state.current.messages.length - 1] !== m || !!m.pending;
  }
}

function showModeNotice() {
  const name = state.model?.id ?? 'this model';
  replace(els.notice,
    h('strong', null, `${name} has no chat template.`), ' ',
    'Messages go to ', h('code', null, '/v1/completions'), ' as plain text and the model continues it ',
    '(system prompt, then the turns, a blank line before each new message). Thinking has no effect.');
  els.notice.hidden = false;
}

// ---- settings ----

function bindSettings() {
  const s = state.settings;
  const t = $('#set-temperature'), tp = $('#set-top-p'), mt = $('#set-max-tokens'), th = $('#set-thinking'),
    sys = $('#set-system'), key = $('#set-api-key');
  const show = () => {
    t.value = s.temperature;
    $('#out-temperature').textContent = Number(s.temperature).toFixed(2);
    tp.value = s.top_p;
    $('#out-top-p').textContent = Number(s.top_p).toFixed(2);
    mt.value = s.max_tokens ?? '';
    if (state.model?.max_model_len) mt.max = state.model.max_model_len;
    th.checked = s.thinking;
    sys.value = s.system;
    key.value = s.apiKey;
  };
  const save = () => { store.saveSettings(s); };
  t.addEventListener('input', () => { s.temperature = Number(t.value); show(); save(); });
  tp.addEventListener('input', () => { s.top_p = Number(tp.value); show(); save(); });
  mt.addEventListener('input', () => {
    const n = parseInt(mt.value, 10);
    s.max_tokens = Number.isFinite(n) && n > 0 ? n : null;
    save();
  });
  th.addEventListener('change', () => { s.thinking = th.checked; save(); });
  sys.addEventListener('input', () => { s.system = sys.value; save(); });
  key.addEventListener('input', () => { s.apiKey = key.value.trim(); save(); });
  $('#settings-reset').addEventListener('click', () => {
    Object.assign(s, store.DEFAULT_SETTINGS);
    save();
    show();
  });
  show();
  return show;
}

function toggleSettings(open) {
  const panel = $('#settings');
  const btn = $('#settings-btn');
  const want = open ?? panel.hidden;
  panel.hidden = !want;
  btn.setAttribute('aria-expanded', String(want));
  if (want) $('#set-temperature').focus();
  else btn.focus();
}

// ---- sidebar (a drawer on narrow screens) ----

function openSidebar() {
  document.body.classList.add('sidebar-open');
  $('#menu-btn').setAttribute('aria-expanded', 'true');
  $('#scrim').hidden = false;
  $('#new-chat').focus();
}

function closeSidebar() {
  if (!document.body.classList.contains('sidebar-open')) return;
  document.body.classList.remove('sidebar-open');
  $('#menu-btn').setAttribute('aria-expanded', 'false');
  $('#scrim').hidden = true;
}

function autosize() {
  const ta = els.input;
  ta.style.height = 'auto';
  ta.style.height = `${Math.min(ta.scrollHeight + 2, 220)}px`;
}

// ---- model info ----

async function loadModel(refreshSettings) {
  if (noModelYet()) { // a cluster scheduler waiting for Setup: /v1 answers 503 until then
    state.model = null;
    els.modelInfo.textContent = 'no model chosen yet';
    replace(els.notice, h('strong', null, 'No model is chosen yet.'), ' Choose one on the ', h('a', { href: '#/setup' }, 'Setup'), ' page first.');
    els.notice.dataset.kind = 'no-model';
    els.notice.hidden = false;
    refreshSettings();
    return;
  }
  if (els.notice.dataset.kind === 'no-model') {
    delete els.notice.dataset.kind;
    els.notice.hidden = true;
  }
  try {
    const r = await getJSON('/v1/models');
    state.model = r?.data?.[0] ?? null;
    if (state.model) {
      els.modelInfo.textContent = `${state.model.id}${state.model.max_model_len ? ` · context ${state.model.max_model_len} tokens` : ''}`;
    }
    refreshSettings();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      replace(els.notice, h('strong', null, 'This server needs an API key.'), ' Enter it in Settings (it stays in this browser).');
      els.notice.hidden = false;
    } else if (e instanceof ApiError && e.status === 404) {
      els.modelInfo.textContent = 'no model loaded yet';
    } else {
      els.modelInfo.textContent = '';
    }
  }
}

export function onShow() {
  els.input.focus();
  loadModel(() => {});
}

/** The server's model changed (Setup): forget what was learnt about the old one. */
export function modelChanged() {
  state.model = null;
  state.noTemplate = false;
  loadModel(() => {});
}

export function initChat() {
  els = {
    messages: $('#messages'), input: $('#input'), send: $('#send'), stop: $('#stop'), composer: $('#composer'),
    convList: $('#conv-list'), convEmpty: $('#conv-empty'), title: $('#chat-title'), notice: $('#notice'),
    modelInfo: $('#model-info'), emptyChat: $('#empty-chat'),
  };
  state.convs = store.loadConversations();
  const cur = store.loadCurrent();
  state.current = state.convs.find((c) => c.id === cur) ?? state.convs[0] ?? newConversation();

  els.composer.addEventListener('submit', (e) => { e.preventDefault(); send(els.input.value); });
  els.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      send(els.input.value);
    }
  });
  els.input.addEventListener('input', autosize);
  els.stop.addEventListener('click', stop);
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    if (state.gen) { stop(); e.preventDefault(); return; }
    if (!$('#settings').hidden) toggleSettings(false);
    else closeSidebar();
  });
  $('#new-chat').addEventListener('click', () => {
    const fresh = state.current && !state.current.messages.length ? state.current : newConversation();
    openConversation(fresh);
    els.input.focus();
  });
  $('#settings-btn').addEventListener('click', () => toggleSettings());
  $('#settings-close').addEventListener('click', () => toggleSettings(false));
  $('#menu-btn').addEventListener('click', () => (document.body.classList.contains('sidebar-open') ? closeSidebar() : openSidebar()));
  $('#scrim').addEventListener('click', closeSidebar);
  // Another tab changed the conversations: pick that up when idle.
  window.addEventListener('storage', (e) => {
    if (e.key && e.key.startsWith('parallax.conversations') && !state.gen) {
      const id = state.current?.id;
      state.convs = store.loadConversations();
      state.current = state.convs.find((c) => c.id === id) ?? state.current;
      renderList();
      renderConversation();
    }
  });
  window.addEventListener('pagehide', () => persist(true));

  const refreshSettings = bindSettings();
  renderList();
  renderConversation();
  loadModel(refreshSettings);
}
