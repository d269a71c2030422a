// api.js - talks to the Parallax server this page came from: JSON GETs,
// OpenAI-style SSE streams read with fetch (so they can be aborted), NDJSON
// streams (the cluster status), and errors turned into one readable line.

import { loadSettings } from './store.js';

/** An error answered by the server ({"error": {...}}) or met on the way. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, type = null, param = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.type = type;
    this.param = param;
  }

  /** "HTTP 400 · context_length_exceeded: the prompt has ..." */
  describe() {
    const head = [this.status ? `HTTP ${this.status}` : null, this.code].filter(Boolean).join(' · ');
    return head ? `${head}: ${this.message}` : this.message;
  }
}

function headers(json) {
  const hd = {};
  if (json) hd['Content-Type'] = 'application/json';
  const key = loadSettings().apiKey;
  if (key) hd.Authorization = `Bearer ${key}`;
  return hd;
}

async function errorFrom(res) {
  let text = '';
  try { text = await res.text(); } catch { /* body lost */ }
  try {
    const e = JSON.parse(text).error;
    if (e && typeof e === 'object') {
      return new ApiError(String(e.message ?? 'error'), { status: res.status, code: e.code, type: e.type, param: e.param });
    }
    if (typeof e === 'string') return new ApiError(e, { status: res.status });
  } catch { /* not JSON */ }
  return new ApiError(text.trim().slice(0, 300) || res.statusText || 'request failed', { status: res.status });
}

function networkError(e, path) {
  if (e?.name === 'AbortError') return e;
  return new ApiError(`cannot reach the server (${path}): ${e?.message ?? e}`, { code: 'network_error' });
}

/** GET path -> parsed JSON; throws ApiError (status 404 for a missing route). */
export async function getJSON(path, { signal } = {}) {
  let res;
  try {
    res = await fetch(path, { headers: headers(false), signal, cache: 'no-store' });
  } catch (e) {
    throw networkError(e, path);
  }
  if (!res.ok) throw await errorFrom(res);
  return res.json();
}

/** GET path -> text. */
export async function getText(path, { signal } = {}) {
  let res;
  try {
    res = await fetch(path, { headers: headers(false), signal, cache: 'no-store' });
  } catch (e) {
    throw networkError(e, path);
  }
  if (!res.ok) throw await errorFrom(res);
  return res.text();
}

/** POST JSON body -> parsed JSON. */
export async function postJSON(path, body, { signal } = {}) {
  let res;
  try {
    res = await fetch(path, { method: 'POST', headers: headers(true), body: JSON.stringify(body), signal });
  } catch (e) {
    throw networkError(e, path);
  }
  if (!res.ok) throw await errorFrom(res);
  const text = await res.text();
  return text ? JSON.parse(text) : {};
}

/**
 * POSTs an OpenAI request with "stream": true and calls onEvent(obj) for each
 * SSE data object until "[DONE]". Resolves when the stream is done; rejects
 * with ApiError for an HTTP error, an {"error": ...} event in the stream, or a
 * stream that ends without [DONE]; rejects with the AbortError when signal
 * aborts (the connection is closed, so the server aborts the generation).
 */
export async function streamSSE(path, body, { signal, onEvent }) {
  let res;
  try {
    res = await fetch(path, { method: 'POST', headers: headers(true), body: JSON.stringify(body), signal });
  } catch (e) {
    throw networkError(e, path);
  }
  if (!res.ok) throw await errorFrom(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw signal?.aborted ? e : networkError(e, path);
      }
      if (chunk.done) break;
      buf += chunk.value.replace(/\r\n?/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        if (!data) continue;
        if (data === '[DONE]') return;
        let obj;
        try { obj = JSON.parse(data); } catch { throw new ApiError(`the server sent a malformed event: ${data.slice(0, 120)}`); }
        if (obj && obj.error) {
          const e = obj.error;
          throw new ApiError(String(e.message ?? e), { status: res.status, code: e.code ?? 'stream_error', type: e.type });
        }
        onEvent(obj);
      }
    }
  } finally {
    reader.releaseLock?.();
  }
  throw new ApiError('the stream ended before [DONE] (the server closed the connection)', { code: 'stream_incomplete' });
}

/**
 * Reads an NDJSON stream (one JSON object per line) and calls onObject for
 * each; resolves when the server ends it.
 */
export async function streamNDJSON(path, { signal, onObject }) {
  let res;
  try {
    res = await fetch(path, { headers: headers(false), signal, cache: 'no-store' });
  } catch (e) {
    throw networkError(e, path);
  }
  if (!res.ok) throw await errorFrom(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      throw signal?.aborted ? e : networkError(e, path);
    }
    if (chunk.done) return;
    buf += chunk.value;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      let obj;
      try { obj = JSON.parse(line); } catch { continue; }
      onObject(obj);
    }
  }
}

/** Prometheus text -> Map name -> [{labels, value}]. */
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const kv of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    const v = Number(m[4]);
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: v });
  }
  return out;
}

/** The value of metric name (summed over series matching labels). */
export function metric(metrics, name, labels = {}) {
  const series = metrics.get(name);
  if (!series) return NaN;
  let sum = 0;
  let any = false;
  for (const s of series) {
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) { sum += s.value; any = true; }
  }
  return any ? sum : NaN;
}
