import { Webhook } from 'standardwebhooks';
import { signatureHeader } from './signature.js';

describe('signature', () => {
  const current = 'whsec_' + Buffer.alloc(32, 1).toString('base64');
  const previous = 'whsec_' + Buffer.alloc(32, 2).toString('base64');
  const other = 'whsec_' + Buffer.alloc(32, 3).toString('base64');
  const body = '{"event": "order.created", "n": 1}';

  function headers(signature: string, timestamp: number) {
    return {
      'webhook-id': '42',
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signature,
    };
  }

  it('verifies with the standardwebhooks package as a receiver would', () => {
    const ts = Math.floor(Date.now() / 1000);
    const signature = signatureHeader([current], '42', ts, body);
    expect(signature).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(current).verify(body, headers(signature, ts))).toEqual(JSON.parse(body));
  });

  it('signs with both secrets during a rotation, each verifying on its own', () => {
    const ts = Math.floor(Date.now() / 1000);
    const signature = signatureHeader([current, previous], '42', ts, body);
    expect(signature.split(' ')).toHaveLength(2);
    expect(() => new Webhook(current).verify(body, headers(signature, ts))).not.toThrow();
    expect(() => new Webhook(previous).verify(body, headers(signature, ts))).not.toThrow();
    expect(() => new Webhook(other).verify(body, headers(signature, ts))).toThrow();
  });

  it('fails verification when the body or the id changes', () => {
    const ts = Math.floor(Date.now() / 1000);
    const signature = signatureHeader([current], '42', ts, body);
    expect(() => new Webhook(current).verify(body + ' ', headers(signature, ts))).toThrow();
    expect(() =>
      new Webhook(current).verify(body, { ...headers(signature, ts), 'webhook-id': '43' }),
    ).toThrow();
  });
});
