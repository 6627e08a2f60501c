import { BadRequestException } from '@nestjs/common';
import { scanRequestBody } from '../common/json-body.js';
import type { ScannedValue } from '../common/json-scan.js';
import { PARTITION_KEY_PATTERN } from '../database/entities/message.entity.js';

/** One message to publish: the payload is the exact JSON text that was sent. */
export interface MessageToPublish {
  partitionKey: string;
  payload: string;
}

const PARTITION_KEY = new RegExp(PARTITION_KEY_PATTERN);

/**
 * Reads one message object, `{partition_key, payload}`, of a scanned body: the payload is taken as
 * its source text, never parsed into JavaScript values (numbers stay exact, keys such as
 * `__proto__` stay keys, a 100,000-key object costs one scan). Unknown and repeated fields are
 * 400s, like everywhere in the API. `where` names the object in messages ("" for the body).
 */
export function readMessage(body: string, object: ScannedValue, where = ''): MessageToPublish {
  if (object.kind !== 'object' || !object.members) {
    throw new BadRequestException(`${where || 'request body'} must be a JSON object`);
  }
  const fields = new Map<string, ScannedValue>();
  for (const { key, value } of object.members) {
    if (key !== 'partition_key' && key !== 'payload') {
      throw new BadRequestException(`property ${where}${key.slice(0, 100)} should not exist`);
    }
    if (fields.has(key)) throw new BadRequestException(`${where}${key} is given twice`);
    fields.set(key, value);
  }
  const key = fields.get('partition_key');
  const partitionKey =
    key?.kind === 'string' ? (JSON.parse(body.slice(key.start, key.end)) as string) : undefined;
  if (partitionKey === undefined || !PARTITION_KEY.test(partitionKey)) {
    throw new BadRequestException(
      `${where}partition_key must be 1-255 printable ASCII characters without spaces`,
    );
  }
  const payload = fields.get('payload');
  if (!payload) throw new BadRequestException(`${where}payload is required`);
  return { partitionKey, payload: body.slice(payload.start, payload.end) };
}

/** The body of `POST /topics/{name}/messages`. */
export function readPublishRequest(body: string): MessageToPublish {
  return readMessage(body, scanRequestBody(body, 1));
}
