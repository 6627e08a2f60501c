import { Webhook } from 'standardwebhooks';
import { createHmac } from 'node:crypto';
import {
  metadataSignatureHeader,
  metadataSignedContent,
  signatureHeader,
  verifyMetadataSignature,
} from './signature.js';

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

  describe('webhook-metadata-signature', () => {
    const metadata = {
      id: '42',
      timestamp: '1700000000',
      topic: 'orders',
      partitionKey: 'user-1',
      sequence: '7',
      previousSequence: '',
      eventType: '',
    };

    it('signs the seven header values joined by newlines, keyed with the decoded secret', () => {
      const content = '42\n1700000000\norders\nuser-1\n7\n\n';
      expect(metadataSignedContent(metadata)).toBe(content);
      const expected = createHmac('sha256', Buffer.alloc(32, 1)).update(content).digest('base64');
      expect(metadataSignatureHeader([current], metadata)).toBe(`v1,${expected}`);
    });

    it('verifies with any secret of a rotation, and not once a value changes', () => {
      const header = metadataSignatureHeader([current, previous], metadata);
      expect(verifyMetadataSignature(current, metadata, header)).toBe(true);
      expect(verifyMetadataSignature(previous, metadata, header)).toBe(true);
      expect(verifyMetadataSignature(other, metadata, header)).toBe(false);
      for (const field of Object.keys(metadata) as (keyof typeof metadata)[]) {
        const forged = { ...metadata, [field]: metadata[field] + '1' };
        expect([field, verifyMetadataSignature(current, forged, header)]).toEqual([field, false]);
      }
    });
  });
});
