#!/usr/bin/env node
// Baseline for `natter bench`: the classic Node.js `net` chat room that
// natter grew out of, as the seed articles write it. One process, one
// list of sockets; a newcomer is asked for a nickname, everyone else is
// told it joined, and every line is relayed to everyone else (NOT echoed
// to its sender) as `NICK: TEXT`. No limits, no rooms, no backpressure.
//
// Usage: node bench/baselines/node-chat.js [PORT]   (or PORT=… in the env)
// PORT 0 picks a free port. The bound address is printed on stdout as
// `listening on 127.0.0.1:PORT`. HOST defaults to 127.0.0.1.
//
// natter bench flags that fit it:
//   --text-setup '' --text-join '' --ready 'Welcome, {nick}' --echo false --rooms 1

'use strict';

const net = require('net');

const port = Number(process.argv[2] ?? process.env.PORT ?? 7000);
const host = process.env.HOST ?? '127.0.0.1';

const clients = [];

function broadcast(message, sender) {
  for (const client of clients) {
    if (client !== sender) client.write(message);
  }
}

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.setEncoding('utf8');
  socket.nickname = null;
  let pending = '';

  socket.write('Welcome to the chat! What is your nickname?\r\n');

  function handle(line) {
    if (socket.nickname === null) {
      const nick = line.trim();
      if (nick === '') {
        socket.write('What is your nickname?\r\n');
        return;
      }
      socket.nickname = nick;
      clients.push(socket);
      socket.write(`Welcome, ${nick}! ${clients.length} online.\r\n`);
      broadcast(`*** ${nick} joined the chat\r\n`, socket);
      return;
    }
    broadcast(`${socket.nickname}: ${line}\r\n`, socket);
  }

  socket.on('data', (data) => {
    pending += data;
    const lines = pending.split('\n');
    pending = lines.pop();
    for (const raw of lines) handle(raw.replace(/\r$/, ''));
  });

  function leave() {
    const i = clients.indexOf(socket);
    if (i !== -1) {
      clients.splice(i, 1);
      broadcast(`*** ${socket.nickname} left the chat\r\n`, socket);
    }
  }
  socket.on('end', leave);
  socket.on('close', leave);
  socket.on('error', () => {}); // 'close' follows
});

server.on('error', (err) => {
  console.error(`node-chat: ${err.message}`);
  process.exit(1);
});

server.listen(port, host, () => {
  const a = server.address();
  console.log(`listening on ${a.address}:${a.port}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
