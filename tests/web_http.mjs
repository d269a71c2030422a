// web_http.mjs - the web UI as served by `parallax serve` (no browser):
// GET / and every asset under web/ answer 200 with the right Content-Type,
// an ETag, Cache-Control: no-cache and nosniff, and the bytes of the file in
// web/; HTML carries the Content-Security-Policy; If-None-Match gives 304
// without a body; HEAD has no body; POST / is 405; an unknown path is a 404
// JSON error; the API routes still work beside the UI; every local path that
// index.html and the JS modules refer to is served (nothing points outside
// the binary: no CDN, no absolute URL to another host).
//   node tests/web_http.mjs --parallax build/parallax --model ../shared/models/aidreams-260k --web web
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs, harness, startServer, request, postJson } from './server_common.mjs';

const args = parseArgs(process.argv, { web: path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'web') });
const t = harness('web_http');
const TYPES = { html: 'text/html; charset=utf-8', css: 'text/css; charset=utf-8', js: 'text/javascript; charset=utf-8', svg: 'image/svg+xml' };

function walk(dir, rel = '') {
  const out = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    if (e.name.startsWith('.') || e.name === 'node_modules') continue;
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, r));
    else out.push(r);
  }
  return out;
}

const srv = await startServer(args.parallax, ['-m', args.model, '--threads', '1']);
try {
  const files = walk(args.web).filter((f) => /\.(html|css|js|svg)$/.test(f));
  t.check(files.includes('index.html'), 'web/index.html exists');
  for (const f of files) {
    const r = await request(`${srv.url}/${f}`);
    const ext = f.split('.').pop();
    t.check(r.status === 200, `GET /${f} is 200`, r.status);
    t.check(r.headers['content-type'] === TYPES[ext], `/${f} Content-Type`, r.headers['content-type']);
    t.check(r.body === fs.readFileSync(path.join(args.web, f), 'utf8'), `/${f} body equals web/${f}`);
    t.check(/^"[0-9a-f]{16}"$/.test(r.headers.etag ?? ''), `/${f} has a strong ETag`, r.headers.etag);
    t.check(r.headers['cache-control'] === 'no-cache', `/${f} Cache-Control: no-cache`, r.headers['cache-control']);
    t.check(r.headers['x-content-type-options'] === 'nosniff', `/${f} nosniff`);
    const again = await request(`${srv.url}/${f}`, { headers: { 'If-None-Match': `W/"0000000000000000", ${r.headers.etag}` } });
    t.check(again.status === 304 && again.body === '', `/${f} If-None-Match -> 304 without a body`, again.status);
    t.check(again.headers.etag === r.headers.etag, `/${f} 304 repeats the ETag`);
    const other = await request(`${srv.url}/${f}`, { headers: { 'If-None-Match': '"0000000000000000"' } });
    t.check(other.status === 200, `/${f} with a stale ETag -> 200`, other.status);
  }

  const root = await request(`${srv.url}/`);
  t.check(root.status === 200 && root.body === fs.readFileSync(path.join(args.web, 'index.html'), 'utf8'), 'GET / is index.html');
  const csp = root.headers['content-security-policy'] ?? '';
  for (const d of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "require-trusted-types-for 'script'", "frame-ancestors 'none'"])
    t.check(csp.includes(d), `CSP has ${d}`, csp);
  t.check(!/unsafe-inline|unsafe-eval/.test(csp), 'CSP allows no inline script or eval', csp);
  t.check(root.headers['x-frame-options'] === 'DENY', 'X-Frame-Options: DENY');
  const head = await request(`${srv.url}/`, { method: 'HEAD' });
  t.check(head.status === 200 && head.body === '' && head.headers['content-type'] === TYPES.html, 'HEAD / -> 200, headers, no body', head.status);
  const post = await postJson(`${srv.url}/`, {});
  t.check(post.status === 405 && post.json?.error?.code === 'method_not_allowed', 'POST / -> 405', post.status);
  const missing = await request(`${srv.url}/js/nope.js`);
  t.check(missing.status === 404 && JSON.parse(missing.body).error.code === 'not_found', 'unknown asset -> 404 JSON', missing.status);
  const v1 = await request(`${srv.url}/v1/index.html`);
  t.check(v1.status === 404, '/v1/index.html is not the UI', v1.status);
  const dotdot = await request(`${srv.url}/js/../index.html`);
  t.check(dotdot.status === 200 || dotdot.status === 404, 'a path with .. is answered (normalised or refused), never a file outside web/', dotdot.status);

  // The API beside the UI.
  const health = await request(`${srv.url}/health`);
  t.check(health.status === 200, '/health still answers', health.status);
  const comp = await postJson(`${srv.url}/v1/completions`, { prompt: 'I dream of', max_tokens: 4, temperature: 0 });
  t.check(comp.status === 200 && typeof comp.json?.choices?.[0]?.text === 'string', '/v1/completions still answers', comp.status);
  const cs = await request(`${srv.url}/cluster/status`);
  t.check(cs.status === 404, 'serve has no /cluster/status (the UI shows the single-node view)', cs.status);

  // Every local reference resolves to an embedded file; nothing points elsewhere.
  const refs = new Set();
  const html = fs.readFileSync(path.join(args.web, 'index.html'), 'utf8');
  for (const m of html.matchAll(/\b(?:src|href)="([^"#][^"]*)"/g)) refs.add(m[1]);
  for (const f of files.filter((x) => x.endsWith('.js'))) {
    const src = fs.readFileSync(path.join(args.web, f), 'utf8');
    for (const m of src.matchAll(/\b(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]/g)) {
      refs.add(new URL(m[1] ?? m[2], `http://x/${f}`).pathname);
    }
  }
  for (const f of files.filter((x) => x.endsWith('.css'))) {
    const src = fs.readFileSync(path.join(args.web, f), 'utf8');
    for (const m of src.matchAll(/url\(\s*['"]?([^'")]+)/g)) if (!m[1].startsWith('data:')) refs.add(new URL(m[1], `http://x/${f}`).pathname);
    t.check(!/@import/.test(src), `${f} has no @import`);
  }
  t.check(refs.size >= 5, 'found the page\'s references', [...refs]);
  for (const ref of refs) {
    t.check(ref.startsWith('/'), `reference ${ref} is a local path (no CDN)`);
    if (!ref.startsWith('/')) continue;
    const r = await request(`${srv.url}${ref}`);
    t.check(r.status === 200, `referenced ${ref} is served`, r.status);
  }
  for (const f of files) {
    const src = fs.readFileSync(path.join(args.web, f), 'utf8');
    const urls = [...src.matchAll(/https?:\/\/[^\s'"`)<>]+/g)].map((m) => m[0])
      .filter((u) => !/^http:\/\/www\.w3\.org\//.test(u) && !/^http:\/\/x\//.test(u));
    // Links the page shows as text or examples are fine in comments; a fetched URL is not.
    const fetched = urls.filter((u) => new RegExp(`(src|href|fetch|import)\\s*[=(]\\s*['"]${u.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`).test(src));
    t.check(fetched.length === 0, `${f} loads nothing from another host`, fetched);
    t.check(!/\.innerHTML\s*=|\.outerHTML\s*=|insertAdjacentHTML|document\.write\s*\(|\beval\s*\(|new Function\s*\(/.test(src),
      `${f} uses no HTML-string or eval sink`);
  }
} finally {
  const r = await srv.stop();
  t.check(r.code === 0, 'server exits 0 on SIGTERM', r);
}
t.finish();
