// A plain Node HTTP server under baton: it serves every socket baton passes (LISTEN_FDS,
// fds 3.., the last being the readiness probe's), and on SIGTERM it stops accepting and closes
// its idle connections at once — a common shutdown, and one that races with clients whose
// request is still on its way (see docs/apps.md, "Steering").
'use strict';
const http = require('http');

const count = parseInt(process.env.LISTEN_FDS || '0', 10);
const generation = process.env.BATON_GENERATION || '?';

function answer(req, res) {
  const body = `pid=${process.pid} generation=${generation} path=${req.url}\n`;
  res.writeHead(200, {
    'content-type': 'text/plain',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

const servers = [];
for (let i = 0; i < count; i++) {
  const server = http.createServer(answer);
  server.listen({ fd: 3 + i });
  servers.push(server);
}

process.on('SIGTERM', () => {
  for (const server of servers) {
    server.close();
    server.closeIdleConnections();
  }
});
