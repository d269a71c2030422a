// dom.js - the only way this UI builds elements: createElement, text nodes
// and setAttribute with names chosen by our own code. No HTML string is ever
// parsed (the page's Content-Security-Policy requires Trusted Types, so an
// innerHTML assignment would throw), and event-handler attributes are refused.

/** h('div', {class: 'x', text: 'hi', on: {click: fn}}, child, ...) -> Element */
export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      else if (k === 'style') Object.assign(el.style, v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (/^on/i.test(k)) throw new Error(`dom.h: event handler attribute ${k} refused`);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, kids);
  return el;
}

/** Appends strings (as text), nodes and (nested) arrays; skips null/false. */
export function append(el, kids) {
  for (const k of kids) {
    if (k === null || k === undefined || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else if (k instanceof Node) el.appendChild(k);
    else el.appendChild(document.createTextNode(String(k)));
  }
  return el;
}

/** Replaces the children of el. */
export function replace(el, ...kids) {
  el.replaceChildren();
  return append(el, kids);
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** Copies text to the clipboard (falls back to a hidden textarea where the
 * async clipboard API is unavailable, e.g. plain http on a LAN address). */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* fall through */ }
  const ta = h('textarea', { class: 'offscreen', 'aria-hidden': 'true', readonly: true });
  ta.value = text;
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  ta.remove();
  return ok;
}

/** Briefly changes a button's label to confirm an action. */
export function flash(button, label, ms = 1200) {
  const old = button.dataset.label || button.textContent;
  button.dataset.label = old;
  button.textContent = label;
  clearTimeout(button._flashTimer);
  button._flashTimer = setTimeout(() => { button.textContent = old; }, ms);
}

export function fmtBytes(n) {
  if (!Number.isFinite(n) || n < 0) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${u[i]}`;
}

export function fmtMs(seconds) {
  if (!Number.isFinite(seconds)) return '–';
  const ms = seconds * 1000;
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}
