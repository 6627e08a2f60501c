// The HTTP side every baseline and the raw ceiling share: one axios instance with a keep-alive
// agent, the same headers our worker sends (DESIGN §4, Standard Webhooks signature), and the
// same rule for success (2xx; redirects are not followed).
import axios from 'axios';
import { createHmac } from 'node:crypto';
import http from 'node:http';

export const BENCH_SECRET = `whsec_${Buffer.from('pg-webhook-queue bench secret!!').toString('base64')}`;
const key = Buffer.from(BENCH_SECRET.slice('whsec_'.length), 'base64');

/** @param {number} maxSockets */
export function makeClient(maxSockets) {
  return axios.create({
    httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
    timeout: 10_000,
    maxRedirects: 0,
    validateStatus: () => true,
    transformRequest: [(data) => data],
    responseType: 'text',
  });
}

/**
 * POSTs one message: `body` is the stored JSON text, byte for byte.
 * @param {import('axios').AxiosInstance} client
 * @param {string} url
 * @param {{id: number|string, topic: string, partition: string, sequence: number, attempt: number, body: string}} m
 * @returns {Promise<boolean>} whether the receiver answered 2xx
 */
export async function postWebhook(client, url, m) {
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = createHmac('sha256', key)
    .update(`${m.id}.${timestamp}.${m.body}`)
    .digest('base64');
  const res = await client.post(url, m.body, {
    headers: {
      'content-type': 'application/json',
      'webhook-id': String(m.id),
      'webhook-timestamp': String(timestamp),
      'webhook-signature': `v1,${signature}`,
      'webhook-topic': m.topic,
      'webhook-partition-key': m.partition,
      'webhook-sequence': String(m.sequence),
      'webhook-attempt': String(m.attempt),
    },
  });
  return res.status >= 200 && res.status < 300;
}

/** A JSON payload of about `bytes` bytes, the same for every system. */
export function makePayload(bytes, i) {
  const base = { event: 'bench.message', i, pad: '' };
  const overhead = JSON.stringify(base).length;
  base.pad = 'x'.repeat(Math.max(0, bytes - overhead));
  return base;
}
