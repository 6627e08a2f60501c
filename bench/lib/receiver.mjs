// The webhook receiver of `npm run bench`, run as its own process (child_process.fork) so its
// CPU is not the bench's nor a system's. Plain Node http with keep-alive. It answers 200 at
// once, or after `delayMs`, or fails a `failRate` fraction of requests at random with a 500,
// and records every arrival: webhook, partition and sequence (the URL's query string, empty for
// a run with one webhook, and the webhook-partition-key and webhook-sequence headers) and the
// time it came in.
//
// Order is judged here, at arrival, per line (webhook, partition), against DESIGN §3: an arrival
// of sequence s breaks order when s - 1 has not been answered 2xx yet on that line (it overtook
// its predecessor), or when a later sequence was already POSTed to it (a redelivery after n+1
// went out).
//
// The parent drives it over IPC: {cmd: 'reset', delayMs, failRate} → {ok, port}
// and {cmd: 'stats', wantTimes} → the counts, the order violations and, if asked, the arrival
// time of every first 2xx per "partition:sequence" (with several webhooks
// "webhook|partition:sequence"; distinctOk counts them: distinct (webhook, message) delivered).
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const now = () => performance.timeOrigin + performance.now();

let mode = { delayMs: 0, failRate: 0 };
let state;

function reset() {
  state = {
    requests: 0,
    ok: 0,
    failed: 0,
    violations: 0,
    duplicates: 0,
    firstAt: null,
    lastOkAt: null,
    // line ("webhook|partition", or the partition alone) → { acked: highest sequence with every
    // sequence up to it answered 2xx, maxPosted }
    lines: new Map(),
    // "line:sequence" → arrival time of its first 2xx
    okTimes: new Map(),
  };
}
reset();

function line(lineKey) {
  let l = state.lines.get(lineKey);
  if (!l) {
    l = { acked: 0, maxPosted: 0, done: new Set() };
    state.lines.set(lineKey, l);
  }
  return l;
}

function arrive(lineKey, sequence, t) {
  state.requests += 1;
  state.firstAt ??= t;
  if (!Number.isFinite(sequence)) return;
  const l = line(lineKey);
  if (sequence > l.acked + 1 || sequence < l.maxPosted) state.violations += 1;
  if (sequence <= l.acked) state.duplicates += 1;
  l.maxPosted = Math.max(l.maxPosted, sequence);
}

function acked(lineKey, sequence, t) {
  state.ok += 1;
  state.lastOkAt = t;
  const key = `${lineKey}:${sequence}`;
  if (!state.okTimes.has(key)) state.okTimes.set(key, t);
  if (!Number.isFinite(sequence)) return;
  const l = line(lineKey);
  l.done.add(sequence);
  while (l.done.has(l.acked + 1)) {
    l.done.delete(l.acked + 1);
    l.acked += 1;
  }
}

const server = http.createServer((req, res) => {
  const t = now();
  const webhook = req.url?.split('?')[1] ?? '';
  const partition = String(req.headers['webhook-partition-key'] ?? '');
  const lineKey = webhook ? `${webhook}|${partition}` : partition;
  const sequence = Number(req.headers['webhook-sequence']);
  arrive(lineKey, sequence, t);
  const fail = mode.failRate > 0 && Math.random() < mode.failRate;
  // Drain the body (its bytes count as received) before answering.
  req.on('data', () => undefined);
  req.on('end', () => {
    const answer = () => {
      if (fail) {
        state.failed += 1;
        res.writeHead(500, { 'content-type': 'text/plain' }).end('bench: random failure');
        return;
      }
      acked(lineKey, sequence, now());
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    };
    if (mode.delayMs > 0) setTimeout(answer, mode.delayMs);
    else answer();
  });
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;

server.listen(0, '127.0.0.1', () => {
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  process.send?.({ ready: true, port });
});

process.on('message', (msg) => {
  if (msg.cmd === 'reset') {
    mode = { delayMs: msg.delayMs ?? 0, failRate: msg.failRate ?? 0 };
    reset();
    process.send?.({ id: msg.id, ok: true });
  } else if (msg.cmd === 'stats') {
    const { lines, okTimes, ...counts } = state;
    process.send?.({
      id: msg.id,
      ...counts,
      partitions: lines.size,
      distinctOk: okTimes.size,
      okTimes: msg.wantTimes ? Object.fromEntries(okTimes) : undefined,
    });
  } else if (msg.cmd === 'exit') {
    server.close();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
