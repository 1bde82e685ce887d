// WebSocket clients that wait to be closed by the server side, and report how:
// with a Close frame and its code (1012: service restart, what sluice's drain
// sends) or without one (1006: the TCP connection just ended).
//   node drain_client.js URL N TIMEOUT_MS
// Prints "ready" once all N are open, then one JSON line when all are closed
// (or TIMEOUT_MS passes): {"opened":N,"codes":{"1012":k,...},"messages":m}.
'use strict';
const WebSocket = require('ws');

const [url, nArg, timeoutArg] = process.argv.slice(2);
const n = Number(nArg), timeoutMs = Number(timeoutArg);
if (!url || !(n > 0) || !(timeoutMs > 0)) {
  process.stderr.write('usage: node drain_client.js URL N TIMEOUT_MS\n');
  process.exit(2);
}
let opened = 0, closed = 0, messages = 0, failed = 0;
const codes = {};
function done() {
  process.stdout.write(JSON.stringify({ opened, failed, codes, messages }) + '\n');
  process.exit(opened === n ? 0 : 1);
}
setTimeout(done, timeoutMs);
for (let i = 0; i < n; i++) {
  const ws = new WebSocket(url, { handshakeTimeout: 20000 });
  ws.on('open', () => {
    if (++opened === n) process.stdout.write('ready\n');
  });
  ws.on('message', () => { messages++; });
  ws.on('error', () => { failed++; });
  ws.on('close', (code) => {
    codes[code] = (codes[code] || 0) + 1;
    if (++closed === n) done();
  });
}
