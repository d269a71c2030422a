// fake_hub.mjs - a Hugging Face hub stand-in on loopback for the download
// tests: it serves repos from local directories in the hub's URL layout.
//
//   GET  /api/models/ORG/NAME[/revision/REV]   {id, sha, siblings:[{rfilename}]}
//   HEAD /ORG/NAME/resolve/REV/FILE            regular files: 200 + ETag (git sha1) +
//                                              X-Repo-Commit; LFS files (*.safetensors):
//                                              302 to /cdn/SHA256 + X-Linked-Etag (sha256)
//                                              + X-Linked-Size
//   GET  the same                              the bytes (LFS: via the redirect), with
//                                              Range support (206 / 416)
//
// Test controls: hub.log (every request: method, url, range, auth), hub.cutNext
// (file name -> byte count: the next GET of that file is cut off after that
// many bytes), hub.corrupt (file names whose LFS bytes are served altered),
// hub.stall (file name -> ms: every GET of it sends half, pauses, sends the rest),
// repo options {token: required bearer token, revisions: {name: sha}}.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

function listFiles(dir, prefix = '') {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + e.name;
    if (e.isDirectory()) out.push(...listFiles(path.join(dir, e.name), rel + '/'));
    else out.push(rel);
  }
  return out.sort();
}

function gitBlobSha1(buf) {
  return crypto.createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');
}

// repos: {"org/name": {dir, token?, revisions?}}
export async function startFakeHub(repos) {
  const hub = { log: [], cutNext: {}, corrupt: new Set(), stall: {}, repos: {} };
  for (const [id, r] of Object.entries(repos)) {
    const files = {};
    for (const f of listFiles(r.dir)) {
      const data = fs.readFileSync(path.join(r.dir, f));
      const lfs = f.endsWith('.safetensors');
      files[f] = { data, lfs, etag: lfs ? crypto.createHash('sha256').update(data).digest('hex') : gitBlobSha1(data) };
    }
    const sha = crypto.createHash('sha1').update(id + JSON.stringify(Object.keys(files))).digest('hex');
    hub.repos[id] = { ...r, files, sha, revisions: { main: sha, ...(r.revisions || {}) } };
  }
  const byBlob = () => {
    const m = {};
    for (const r of Object.values(hub.repos)) for (const [name, f] of Object.entries(r.files)) m[f.etag] = { ...f, name };
    return m;
  };

  function authorized(repo, req) {
    return !repo.token || req.headers.authorization === `Bearer ${repo.token}`;
  }

  function sendBytes(req, res, file, extraHeaders) {
    let data = file.data;
    if (hub.corrupt.has(file.name)) { data = Buffer.from(data); data[0] ^= 0xff; }
    let start = 0, status = 200;
    const headers = { 'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes', ...extraHeaders };
    const m = /^bytes=(\d+)-$/.exec(req.headers.range || '');
    if (m) {
      start = Number(m[1]);
      if (start >= data.length) { res.writeHead(416, { 'Content-Range': `bytes */${data.length}` }); return res.end(); }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    }
    const body = data.subarray(start);
    headers['Content-Length'] = body.length;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return res.end();
    const cut = hub.cutNext[file.name];
    if (cut !== undefined) {
      delete hub.cutNext[file.name];
      res.write(body.subarray(0, Math.max(0, cut - start)), () => res.destroy());
      return;
    }
    const stall = hub.stall[file.name];
    if (stall !== undefined) {
      const half = body.length >> 1;
      res.write(body.subarray(0, half));
      setTimeout(() => res.end(body.subarray(half)), stall);
      return;
    }
    res.end(body);
  }

  function modelInfo(req, res, id, rev) {
    const repo = hub.repos[id];
    if (!repo) { res.writeHead(404, { 'Content-Type': 'application/json' }); return res.end('{"error":"Repository not found"}'); }
    if (!authorized(repo, req)) { res.writeHead(401, { 'Content-Type': 'application/json' }); return res.end('{"error":"Access to model is restricted"}'); }
    const sha = repo.revisions[rev] || (/^[0-9a-f]{40}$/.test(rev) ? rev : null);
    if (!sha) { res.writeHead(404); return res.end('{"error":"Revision not found"}'); }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ id, modelId: id, sha, private: false, siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })) }));
  }

  function resolve(req, res, id, rev, file) {
    const repo = hub.repos[id];
    if (!repo) { res.writeHead(404); return res.end('Repository not found'); }
    if (!authorized(repo, req)) { res.writeHead(401); return res.end('unauthorized'); }
    const sha = repo.revisions[rev] || rev;
    const f = repo.files[file];
    if (!f) { res.writeHead(404, { 'X-Error-Code': 'EntryNotFound' }); return res.end('Entry not found'); }
    const common = { 'X-Repo-Commit': sha };
    if (f.lfs) {
      res.writeHead(302, { ...common, Location: `/cdn/${f.etag}`, 'X-Linked-Etag': `"${f.etag}"`, 'X-Linked-Size': f.data.length, ETag: `"${gitBlobSha1(f.data)}"` });
      return res.end();
    }
    sendBytes(req, res, { ...f, name: file }, { ...common, ETag: `"${f.etag}"` });
  }

  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(req.url.split('?')[0]);
    hub.log.push({ method: req.method, url, range: req.headers.range || null, auth: req.headers.authorization || null });
    let m;
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)(?:\/revision\/(.+))?$/.exec(url))) return modelInfo(req, res, m[1], m[2] || 'main');
    if ((m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url))) return resolve(req, res, m[1], m[2], m[3]);
    if ((m = /^\/cdn\/([0-9a-f]{64})$/.exec(url))) {
      const f = byBlob()[m[1]];
      if (f) return sendBytes(req, res, f, { ETag: `"${m[1]}"` });
    }
    res.writeHead(404);
    res.end('not found');
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  hub.url = `http://127.0.0.1:${server.address().port}`;
  hub.close = () => new Promise((ok) => { server.closeAllConnections?.(); server.close(ok); });
  return hub;
}
