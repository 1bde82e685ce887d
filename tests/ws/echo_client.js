// WebSocket clients that each send one message and wait for its echo.
//   node echo_client.js URL N TIMEOUT_MS
// For wss:// with a self-signed certificate, set NODE_EXTRA_CA_CERTS (or
// NODE_TLS_REJECT_UNAUTHORIZED=0). One JSON line: {"ok":k,"failed":f}; exit 0
// only if all N got their echo.
'use strict';
const WebSocket = require('ws');

const [url, nArg, timeoutArg] = process.argv.slice(2);
const n = Number(nArg), timeoutMs = Number(timeoutArg);
if (!url || !(n > 0) || !(timeoutMs > 0)) {
  process.stderr.write('usage: node echo_client.js URL N TIMEOUT_MS\n');
  process.exit(2);
}
let ok = 0, failed = 0;
function done() {
  process.stdout.write(JSON.stringify({ ok, failed }) + '\n');
  process.exit(ok === n ? 0 : 1);
}
setTimeout(done, timeoutMs);
for (let i = 0; i < n; i++) {
  const ws = new WebSocket(url, { handshakeTimeout: 20000 });
  const msg = `hello ${i} ` + 'x'.repeat(i % 300);
  let settled = false;
  ws.on('open', () => ws.send(msg));
  ws.on('message', (data) => {
    if (settled) return;
    settled = true;
    if (data.toString() === msg) ok++; else failed++;
    ws.close();
    if (ok + failed === n) done();
  });
  ws.on('error', () => {
    if (settled) return;
    settled = true;
    failed++;
    if (ok + failed === n) done();
  });
}
