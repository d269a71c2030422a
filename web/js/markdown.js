// markdown.js - renders model output (Markdown) into DOM nodes.
//
// Safety by construction: the input never goes through an HTML parser. Every
// piece of it becomes a text node or the value of an attribute this file
// names (href after a scheme check, class "language-x", text-align), so
// "<script>", "<img onerror=...>" or "javascript:" links in the output are
// shown as the characters they are and can never run. Raw HTML in Markdown is
// therefore not supported: it is displayed as text.
//
// Supported: paragraphs (single newlines are line breaks), ATX headings,
// fenced code blocks (``` or ~~~, language class, copy button; an unclosed
// fence runs to the end, which is what a stream shows mid-block), block
// quotes, bullet and ordered lists (nested by indentation, tight or loose),
// GFM tables (alignment), thematic breaks; inline code, **strong**, *em*,
// ~~strike~~, [links](http://...), <autolinks>, bare http(s) URLs, backslash
// escapes. Images are shown as links (nothing is fetched). Links open in a
// new tab with rel="noopener noreferrer nofollow"; only http, https and
// mailto URLs become links.

import { h, copyText, flash } from './dom.js';

/** Renders src into target (replacing its children). */
export function renderMarkdown(src, target) {
  target.replaceChildren(markdownToFragment(src));
}

/** A DocumentFragment of the rendered Markdown. */
export function markdownToFragment(src) {
  const frag = document.createDocumentFragment();
  const lines = String(src ?? '').replace(/\r\n?/g, '\n').split('\n');
  for (const node of parseBlocks(lines)) frag.appendChild(node);
  return frag;
}

/** The URL if it is an absolute http(s) or mailto URL, else null. */
export function safeHref(url) {
  if (typeof url !== 'string') return null;
  const u = url.trim();
  if (!/^(https?:\/\/|mailto:)/i.test(u)) return null;
  try {
    const parsed = new URL(u);
    if (!['http:', 'https:', 'mailto:'].includes(parsed.protocol)) return null;
    return parsed.href;
  } catch {
    return null;
  }
}

// ---- blocks ----

const RE_FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
const RE_HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RE_HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const RE_QUOTE = /^ {0,3}>[ ]?(.*)$/;
const RE_ITEM = /^( *)([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*))?$/;
const RE_TABLE_DELIM = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

const isBlank = (l) => /^\s*$/.test(l);
const indentOf = (l) => l.length - l.replace(/^ +/, '').length;

function matchItem(line) {
  const m = RE_ITEM.exec(line.replace(/\t/g, '    '));
  if (!m) return null;
  const [, lead, marker, gap = '', rest = ''] = m;
  const ordered = /\d/.test(marker);
  // More than 4 spaces after the marker: the content is indented code, one
  // space belongs to the marker.
  const wide = gap.length > 4;
  const pad = gap && !wide ? gap.length : 1;
  return {
    indent: lead.length, ordered,
    start: ordered ? parseInt(marker, 10) : 1,
    bullet: ordered ? marker.slice(-1) : marker,
    content: wide ? gap.slice(1) + rest : rest,
    col: lead.length + marker.length + pad,
  };
}

function startsBlock(line) {
  return RE_FENCE.test(line) || RE_HEADING.test(line) || RE_HR.test(line) || RE_QUOTE.test(line);
}

function isTableStart(lines, i) {
  return i + 1 < lines.length && lines[i].includes('|') && RE_TABLE_DELIM.test(lines[i + 1]) &&
    lines[i + 1].includes('-') && splitRow(lines[i]).length === splitRow(lines[i + 1]).length;
}

function parseBlocks(lines) {
  const out = [];
  let para = [];
  const flush = () => {
    if (para.length) out.push(paragraph(para));
    para = [];
  };
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) { flush(); i++; continue; }
    let m;
    if ((m = RE_FENCE.exec(line))) {
      flush();
      const fence = m[1];
      const body = [];
      const indent = indentOf(line);
      i++;
      while (i < lines.length) {
        const l = lines[i];
        const close = new RegExp(`^ {0,3}${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`);
        if (close.test(l)) { i++; break; }
        body.push(indent ? l.replace(new RegExp(`^ {0,${indent}}`), '') : l);
        i++;
      }
      out.push(codeBlock(body.join('\n'), m[2]));
      continue;
    }
    if (RE_HR.test(line) && !(para.length && /^ {0,3}-+\s*$/.test(line))) {
      flush();
      out.push(h('hr'));
      i++;
      continue;
    }
    if ((m = RE_HEADING.exec(line))) {
      flush();
      const level = m[1].length;
      out.push(h(`h${level}`, { class: 'md-h' }, parseInline(m[2] ?? '')));
      i++;
      continue;
    }
    if (RE_QUOTE.test(line)) {
      flush();
      const inner = [];
      while (i < lines.length && !isBlank(lines[i])) {
        const q = RE_QUOTE.exec(lines[i]);
        if (q) inner.push(q[1]);
        else if (startsBlock(lines[i]) || matchItem(lines[i])) break;
        else inner.push(lines[i]); // lazy continuation
        i++;
      }
      out.push(h('blockquote', null, parseBlocks(inner)));
      continue;
    }
    const item = matchItem(line);
    // A list interrupts a paragraph only when its item has content (and an
    // ordered one only when it starts at 1), as in CommonMark.
    if (item && item.indent <= 3 && (!para.length || (item.content.trim() && (!item.ordered || item.start === 1)))) {
      flush();
      i = parseList(lines, i, out);
      continue;
    }
    if (!para.length && isTableStart(lines, i)) {
      flush();
      i = parseTable(lines, i, out);
      continue;
    }
    para.push(line);
    i++;
  }
  flush();
  return out;
}

function paragraph(lines) {
  const kids = [];
  lines.forEach((l, k) => {
    if (k) kids.push(h('br'));
    kids.push(...parseInline(l.trim()));
  });
  return h('p', null, kids);
}

function codeBlock(code, lang) {
  const codeEl = h('code', lang && /^[\w+#.-]{1,32}$/.test(lang) ? { class: `language-${lang}` } : null, code);
  const copy = h('button', { type: 'button', class: 'code-copy', 'aria-label': 'Copy code', text: 'Copy' });
  copy.addEventListener('click', async () => flash(copy, (await copyText(code)) ? 'Copied' : 'Copy failed'));
  return h('div', { class: 'code-wrap' },
    h('div', { class: 'code-head' }, h('span', { class: 'code-lang', text: lang || 'text' }), copy),
    h('pre', { tabindex: '0' }, codeEl));
}

function parseList(lines, i, out) {
  const first = matchItem(lines[i]);
  const items = [];
  let loose = false;
  let cur = first;
  while (cur) {
    const body = [cur.content];
    let sawBlank = false;
    i++;
    while (i < lines.length) {
      const l = lines[i].replace(/\t/g, '    ');
      if (isBlank(l)) {
        // The item goes on when the next non-blank line is indented into it
        // (or is a sibling item: then the list is loose).
        let j = i + 1;
        while (j < lines.length && isBlank(lines[j])) j++;
        if (j < lines.length && indentOf(lines[j]) >= cur.col) {
          for (let k = i; k < j; k++) body.push('');
          sawBlank = true;
          i = j;
          continue;
        }
        const next = j < lines.length ? matchItem(lines[j]) : null;
        if (next && next.ordered === first.ordered && next.bullet === first.bullet && next.indent <= first.indent + 3 &&
            next.indent < cur.col) {
          loose = true;
          i = j;
        }
        break;
      }
      const ind = indentOf(l);
      const it = matchItem(l);
      if (ind >= cur.col || (it && ind > cur.indent)) {
        body.push(l.slice(Math.min(ind, cur.col)));
        i++;
        continue;
      }
      if (it || startsBlock(l)) break;
      body.push(l.trim()); // lazy continuation of the item's paragraph
      i++;
    }
    if (sawBlank && body.some((b, k) => k && isBlank(b) && k + 1 < body.length && !isBlank(body[k + 1]) &&
        !matchItem(body[k + 1]))) loose = true;
    items.push(body);
    const next = i < lines.length ? matchItem(lines[i]) : null;
    cur = next && next.ordered === first.ordered && next.bullet === first.bullet && next.indent <= first.indent + 3
      ? next : null;
  }
  const list = first.ordered
    ? h('ol', first.start !== 1 ? { start: String(first.start) } : null)
    : h('ul');
  for (const body of items) {
    const blocks = parseBlocks(body);
    const li = h('li');
    for (const b of blocks) {
      if (!loose && b.tagName === 'P') li.append(...b.childNodes);
      else li.appendChild(b);
    }
    list.appendChild(li);
  }
  out.push(list);
  return i;
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '';
  let inCode = false;
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    if (c === '\\' && s[k + 1] === '|') { cur += '|'; k++; continue; }
    if (c === '`') inCode = !inCode;
    if (c === '|' && !inCode) { cells.push(cur.trim()); cur = ''; continue; }
    cur += c;
  }
  cells.push(cur.trim());
  return cells;
}

function parseTable(lines, i, out) {
  const head = splitRow(lines[i]);
  const align = splitRow(lines[i + 1]).map((d) => {
    const l = d.startsWith(':'), r = d.endsWith(':');
    return l && r ? 'center' : r ? 'right' : l ? 'left' : '';
  });
  i += 2;
  const rows = [];
  while (i < lines.length && !isBlank(lines[i]) && lines[i].includes('|') && !startsBlock(lines[i])) {
    rows.push(splitRow(lines[i]));
    i++;
  }
  const cell = (tag, text, k) => h(tag, align[k] ? { style: { textAlign: align[k] } } : null, parseInline(text ?? ''));
  const table = h('table', null,
    h('thead', null, h('tr', null, head.map((t, k) => cell('th', t, k)))),
    h('tbody', null, rows.map((r) => h('tr', null, head.map((_, k) => cell('td', r[k], k))))));
  out.push(h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Table' }, table));
  return i;
}

// ---- inline ----

const PUNCT = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/;
const RE_AUTOLINK = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i;
const RE_BARE_URL = /^https?:\/\/[^\s<>]*[^\s<>.,:;"')\]!?*_~]/i;
const isWordChar = (c) => c !== undefined && /[\p{L}\p{N}]/u.test(c);
const isSpace = (c) => c === undefined || /\s/.test(c);

function link(text, url, title) {
  const href = safeHref(url);
  if (!href) return null;
  return h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow', title: title || null }, text);
}

/** [label](url "title") at s[i] === '['; returns {end, label, url, title} or null. */
function parseLinkAt(s, i) {
  let depth = 0;
  let k = i;
  for (; k < s.length; k++) {
    const c = s[k];
    if (c === '\\') { k++; continue; }
    if (c === '[') depth++;
    else if (c === ']' && --depth === 0) break;
  }
  if (k >= s.length || s[k + 1] !== '(') return null;
  const m = /^\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+("[^"]*"|'[^']*'))?\s*\)/.exec(s.slice(k + 1));
  if (!m) return null;
  let url = m[1];
  if (url.startsWith('<')) url = url.slice(1, -1);
  return { end: k + 1 + m[0].length, label: s.slice(i + 1, k), url, title: m[2] ? m[2].slice(1, -1) : '' };
}

/** Index of the closing delimiter for an emphasis run opened at `from`. */
function findClose(s, from, delim) {
  const n = delim.length;
  for (let k = from; k <= s.length - n; k++) {
    const c = s[k];
    if (c === '\\') { k++; continue; }
    if (c === '`') { // skip code spans
      const run = /^`+/.exec(s.slice(k))[0];
      const end = s.indexOf(run, k + run.length);
      if (end > 0) { k = end + run.length - 1; continue; }
    }
    if (s.startsWith(delim, k) && !isSpace(s[k - 1]) && k > from) {
      if (n === 1 && (s[k + 1] === delim || s[k - 1] === delim)) {
        if (s[k + 1] === delim) k++; // part of a double run: not ours
        continue;
      }
      if (delim[0] === '_' && isWordChar(s[k + n])) continue;
      return k;
    }
  }
  return -1;
}

/** Inline Markdown of one line or cell -> array of nodes. */
export function parseInline(s) {
  const out = [];
  let buf = '';
  const text = () => { if (buf) { out.push(document.createTextNode(buf)); buf = ''; } };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '\\' && PUNCT.test(s[i + 1] ?? '')) { buf += s[i + 1]; i += 2; continue; }
    if (c === '`') {
      const run = /^`+/.exec(s.slice(i))[0];
      const end = s.indexOf(run, i + run.length);
      if (end >= 0 && s[end + run.length] !== '`') {
        let code = s.slice(i + run.length, end);
        if (/^ .*[^ ].* $/.test(code)) code = code.slice(1, -1);
        text();
        out.push(h('code', null, code));
        i = end + run.length;
        continue;
      }
      buf += run;
      i += run.length;
      continue;
    }
    if ((c === '[' || (c === '!' && s[i + 1] === '['))) {
      const img = c === '!';
      const l = parseLinkAt(s, img ? i + 1 : i);
      if (l) {
        const kids = img ? [`🖼 ${l.label || 'image'}`] : parseInline(l.label);
        const a = link(kids, l.url, l.title);
        text();
        if (a) out.push(a);
        else out.push(...(img ? [document.createTextNode(`[image: ${l.label}]`)] : kids));
        i = l.end;
        continue;
      }
    }
    if (c === '<') {
      const m = RE_AUTOLINK.exec(s.slice(i));
      const a = m && link(m[1], m[1]);
      if (a) { text(); out.push(a); i += m[0].length; continue; }
      buf += c; // any other '<' is just a character
      i++;
      continue;
    }
    if ((c === 'h' || c === 'H') && !isWordChar(s[i - 1])) {
      const m = RE_BARE_URL.exec(s.slice(i));
      const a = m && link(m[0], m[0]);
      if (a) { text(); out.push(a); i += m[0].length; continue; }
    }
    if (c === '~' && s[i + 1] === '~' && !isSpace(s[i + 2])) {
      const end = findClose(s, i + 2, '~~');
      if (end > 0) { text(); out.push(h('del', null, parseInline(s.slice(i + 2, end)))); i = end + 2; continue; }
    }
    if (c === '*' || c === '_') {
      const dbl = s[i + 1] === c;
      const delim = dbl ? c + c : c;
      const after = s[i + delim.length];
      const leftOk = !isSpace(after) && !(c === '_' && isWordChar(s[i - 1]));
      if (leftOk) {
        const end = findClose(s, i + delim.length, delim);
        if (end > 0) {
          text();
          out.push(h(dbl ? 'strong' : 'em', null, parseInline(s.slice(i + delim.length, end))));
          i = end + delim.length;
          continue;
        }
      }
      buf += delim;
      i += delim.length;
      continue;
    }
    buf += c;
    i++;
  }
  text();
  return out;
}
