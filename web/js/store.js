// store.js - what the page keeps in the browser's localStorage:
//   parallax.conversations.v1  [{id, title, created, updated, messages: [...]}]
//   parallax.current.v1        id of the open conversation
//   parallax.settings.v1       sampling settings, system prompt, API key
// Everything is validated on load (a broken or foreign value is ignored, not
// trusted); when the browser's quota is full the oldest conversations go.

const K_CONV = 'parallax.conversations.v1';
const K_CURRENT = 'parallax.current.v1';
const K_SETTINGS = 'parallax.settings.v1';

export const DEFAULT_SETTINGS = Object.freeze({
  temperature: 0.7,
  top_p: 0.95,
  max_tokens: null, // null: the rest of the context
  thinking: true,
  system: '',
  apiKey: '',
});

function read(key) {
  try {
    const v = localStorage.getItem(key);
    return v === null ? null : JSON.parse(v);
  } catch {
    return null;
  }
}

function num(v, lo, hi, dflt) {
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) && n >= lo && n <= hi ? n : dflt;
}

export function loadSettings() {
  const s = read(K_SETTINGS) || {};
  const d = DEFAULT_SETTINGS;
  const mt = s.max_tokens === null || s.max_tokens === '' || s.max_tokens === undefined ? null : num(s.max_tokens, 1, 1e7, null);
  return {
    temperature: num(s.temperature, 0, 2, d.temperature),
    top_p: num(s.top_p, 0.01, 1, d.top_p),
    max_tokens: mt === null ? null : Math.round(mt),
    thinking: typeof s.thinking === 'boolean' ? s.thinking : d.thinking,
    system: typeof s.system === 'string' ? s.system : d.system,
    apiKey: typeof s.apiKey === 'string' ? s.apiKey : d.apiKey,
  };
}

export function saveSettings(s) {
  try { localStorage.setItem(K_SETTINGS, JSON.stringify(s)); } catch { /* quota: settings are small */ }
}

const str = (v) => (typeof v === 'string' ? v : '');

function cleanMessage(m) {
  if (!m || typeof m !== 'object' || (m.role !== 'user' && m.role !== 'assistant')) return null;
  const out = { id: str(m.id) || newId(), role: m.role, content: str(m.content) };
  if (m.role === 'assistant') {
    out.reasoning = str(m.reasoning);
    out.error = typeof m.error === 'string' ? m.error : null;
    out.stopped = m.stopped === true;
    out.mode = m.mode === 'completion' ? 'completion' : 'chat';
    out.stats = m.stats && typeof m.stats === 'object' ? m.stats : null;
    // A page closed mid-answer leaves a partial answer: show it as interrupted.
    if (m.pending) { out.stopped = true; out.interrupted = true; }
  }
  return out;
}

export function loadConversations() {
  const list = read(K_CONV);
  if (!Array.isArray(list)) return [];
  const out = [];
  for (const c of list) {
    if (!c || typeof c !== 'object' || typeof c.id !== 'string') continue;
    const messages = Array.isArray(c.messages) ? c.messages.map(cleanMessage).filter(Boolean) : [];
    out.push({
      id: c.id,
      title: str(c.title) || 'New chat',
      created: num(c.created, 0, 1e15, Date.now()),
      updated: num(c.updated, 0, 1e15, Date.now()),
      messages,
    });
  }
  return out.sort((a, b) => b.updated - a.updated);
}

/** Saves the list (newest first); drops the oldest when over quota. */
export function saveConversations(list) {
  let keep = list.slice();
  for (;;) {
    try {
      localStorage.setItem(K_CONV, JSON.stringify(keep));
      return true;
    } catch {
      if (keep.length <= 1) return false;
      keep = keep.slice(0, -1);
    }
  }
}

export function loadCurrent() {
  const v = read(K_CURRENT);
  return typeof v === 'string' ? v : null;
}

export function saveCurrent(id) {
  try { localStorage.setItem(K_CURRENT, JSON.stringify(id)); } catch { /* ignore */ }
}

export function newId() {
  const a = new Uint8Array(8);
  crypto.getRandomValues(a);
  return [...a].map((b) => b.toString(16).padStart(2, '0')).join('');
}
