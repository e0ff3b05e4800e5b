// The anchor for the webhook benchmark: what Truv's own Node sample code does
// per delivery, on the same body and secret:
//   crypto.createHmac('sha256', secret).update(raw).digest('hex'),
//   crypto.timingSafeEqual on the "v1=..." strings, JSON.parse(raw).
//
//   node bench/webhook.js BODY_FILE SECONDS
//
// The body is measured both as the Buffer an HTTP server hands over and as a
// string already decoded; the faster of the two is reported, so Node is never
// charged for a conversion it could avoid. Prints "node <ops per second>".
// Run by bench/webhook.sh.
'use strict';
const crypto = require('crypto');
const fs = require('fs');

const path = process.argv[2];
const seconds = Number(process.argv[3] || 2);
const SECRET = 'sandbox-8f14e45fceea167a5a36dedd4bea2543';
const raw = fs.readFileSync(path);
const header = 'v1=' + crypto.createHmac('sha256', SECRET).update(raw).digest('hex');
const headerBuf = Buffer.from(header);

function deliver(body) {
  const expected = 'v1=' + crypto.createHmac('sha256', SECRET).update(body).digest('hex');
  const a = Buffer.from(expected);
  if (a.length !== headerBuf.length || !crypto.timingSafeEqual(a, headerBuf)) {
    throw new Error('signature mismatch');
  }
  const ev = JSON.parse(body);
  if (!(ev.updated_at && ev.event_type === 'order-status-updated')) throw new Error('bad event');
  return ev.webhook_id.length;
}

function measure(body) {
  for (let i = 0; i < 2000; i++) deliver(body);   // warm up (and let V8 optimise)
  let ops = 0;
  let check = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  do {
    for (let i = 0; i < 1000; i++) check += deliver(body);
    ops += 1000;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  } while (elapsed < seconds);
  if (check <= 0) throw new Error('no work done');
  return ops / elapsed;
}

const asBuffer = measure(raw);
const asString = measure(raw.toString('utf8'));
console.log(`node ${Math.round(Math.max(asBuffer, asString))}`);
console.error(`node: Buffer body ${Math.round(asBuffer)}/s, string body ${Math.round(asString)}/s`);
