#!/usr/bin/env node
// A loopback TCP proxy that delays every chunk by a fixed time each way, to run the benchmark
// over a slow link (round trip = 2 × delay) without touching the machine's network settings.
//   node latency_proxy.js <upstream port> <one-way delay ms>
// Listens on a free 127.0.0.1 port and prints it on stdout; runs until killed.
"use strict";

const net = require("net");

const [upstreamPort, delayMs] = process.argv.slice(2).map(Number);

function delayed(from, to) {
  from.on("data", (chunk) => setTimeout(() => to.write(chunk), delayMs));
  from.on("end", () => setTimeout(() => to.end(), delayMs));
  from.on("error", () => to.destroy());
}

const server = net.createServer((client) => {
  client.setNoDelay(true);
  const upstream = net.connect(upstreamPort, "127.0.0.1");
  upstream.setNoDelay(true);
  delayed(client, upstream);
  delayed(upstream, client);
});

server.listen(0, "127.0.0.1", () => console.log(server.address().port));
