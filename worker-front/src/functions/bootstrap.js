// The worker's Node.js bootstrap for Glambdar-style functions (issue 14 §2).
// Written for this project; run as `node bootstrap.js <handler file>` with
// PORT in the environment. It loads the handler file, which exports
// `handler(req)` (sync or async) returning `{statusCode, headers, body}`,
// and serves it over HTTP/1.1 with keep-alive on 127.0.0.1:$PORT.
// `req` is {method, path, query, headers, body}: the body parsed when it is
// JSON, else the raw text. A body that is not a string is sent as JSON.
// The process ends when its stdin closes (the worker went away).
'use strict';
const http = require('http');
const path = require('path');

const entry = path.resolve(process.argv[2] || 'index.js');
const mod = require(entry);
const handler = typeof mod === 'function' ? mod
  : (mod && typeof mod.handler === 'function') ? mod.handler
  : (mod && mod.default && typeof mod.default.handler === 'function') ? mod.default.handler
  : null;
if (!handler) {
  console.error(`${process.argv[2]} does not export handler(req)`);
  process.exit(2);
}
const MAX_BODY = Number(process.env.HF_MAX_BODY_BYTES || 6 * 1024 * 1024);

function parseBody(raw) {
  if (raw.length === 0) return raw;
  try { return JSON.parse(raw); } catch (e) { return raw; }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => { size += c.length; if (size <= MAX_BODY) chunks.push(c); });
  req.on('end', async () => {
    const url = new URL(req.url, 'http://localhost');
    const event = {
      method: req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
      body: parseBody(Buffer.concat(chunks).toString('utf8')),
    };
    let out;
    try {
      out = await handler(event);
    } catch (e) {
      console.error((e && e.stack) || String(e));
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ Error: true, Message: `handler threw: ${(e && e.message) || e}` }));
      return;
    }
    if (out === undefined || out === null || typeof out !== 'object') out = { body: out };
    const status = Number.isInteger(out.statusCode) ? out.statusCode : 200;
    const headers = (out.headers && typeof out.headers === 'object') ? { ...out.headers } : {};
    let body = out.body === undefined || out.body === null ? '' : out.body;
    if (typeof body !== 'string' && !Buffer.isBuffer(body)) {
      body = JSON.stringify(body);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
        headers['content-type'] = 'application/json';
      }
    }
    try {
      res.writeHead(status, headers);
      res.end(body);
    } catch (e) {
      console.error(`bad reply from handler: ${e.message}`);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ Error: true, Message: `bad reply from handler: ${e.message}` }));
    }
  });
});
server.keepAliveTimeout = 10 * 60 * 1000;
server.headersTimeout = 11 * 60 * 1000;
server.listen(Number(process.env.PORT), '127.0.0.1');
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
