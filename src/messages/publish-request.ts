import { BadRequestException } from '@nestjs/common';
import { scanRequestBody } from '../common/json-body.js';
import { JsonScanLimitError, ScannedValue } from '../common/json-scan.js';
import { PARTITION_KEY_PATTERN } from '../database/entities/message.entity.js';
import { EVENT_TYPE_PATTERN } from '../database/migrations/1795633464600-PublishByName.js';

/** One message to publish: the payload is the exact JSON text that was sent. */
export interface MessageToPublish {
  partitionKey: string;
  payload: string;
  /** The payload's size as PostgreSQL prints it, what receivers get (ScannedValue.printedBytes). */
  printedBytes: number;
  /** Unique per topic: a repeat publishes nothing and answers with the original. */
  idempotencyKey?: string;
  /** What happened (`order.created`): routes it to the webhooks whose event_types match. */
  eventType?: string;
}

/** The most messages one `POST /topics/{name}/messages/batch` takes. */
export const MAX_BATCH_MESSAGES = 1000;

const TOO_MANY_MESSAGES = `messages must be an array of 1 to ${MAX_BATCH_MESSAGES} messages`;

/** An idempotency key's length in characters (PostgreSQL's char_length). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

const PARTITION_KEY = new RegExp(PARTITION_KEY_PATTERN);
const EVENT_TYPE = new RegExp(EVENT_TYPE_PATTERN);
const FIELDS = new Set(['partition_key', 'payload', 'idempotency_key', 'event_type']);
/** A lone UTF-16 surrogate: it would reach PostgreSQL as U+FFFD, so two keys could collide. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A JSON string member's decoded value, or undefined when the member is not a string. */
function stringOf(body: string, value: ScannedValue | undefined): string | undefined {
  return value?.kind === 'string'
    ? (JSON.parse(body.slice(value.start, value.end)) as string)
    : undefined;
}

/**
 * Reads one message object, `{partition_key, payload, idempotency_key?, event_type?}`, of a scanned body: the
 * payload is taken as its source text, never parsed into JavaScript values (numbers stay exact,
 * keys such as `__proto__` stay keys, a 100,000-key object costs one scan). Unknown and repeated
 * fields are 400s, like everywhere in the API. `where` names the object in messages ("" for the
 * body, "messages[3]." for a batch item).
 */
export function readMessage(body: string, object: ScannedValue, where = ''): MessageToPublish {
  if (object.kind !== 'object' || !object.members) {
    throw new BadRequestException(`${where.slice(0, -1) || 'request body'} must be a JSON object`);
  }
  const fields = new Map<string, ScannedValue>();
  for (const { key, value } of object.members) {
    if (!FIELDS.has(key)) {
      throw new BadRequestException(`property ${where}${key.slice(0, 100)} should not exist`);
    }
    if (fields.has(key)) throw new BadRequestException(`${where}${key} is given twice`);
    fields.set(key, value);
  }
  const partitionKey = stringOf(body, fields.get('partition_key'));
  if (partitionKey === undefined || !PARTITION_KEY.test(partitionKey)) {
    throw new BadRequestException(
      `${where}partition_key must be 1-255 printable ASCII characters without spaces`,
    );
  }
  const payload = fields.get('payload');
  if (!payload) throw new BadRequestException(`${where}payload is required`);
  const message: MessageToPublish = {
    partitionKey,
    payload: body.slice(payload.start, payload.end),
    printedBytes: payload.printedBytes,
  };
  if (fields.has('idempotency_key')) {
    const key = stringOf(body, fields.get('idempotency_key'));
    // Counted in code points, as PostgreSQL counts characters; text cannot hold \u0000.
    const length = key === undefined ? 0 : [...key].length;
    if (
      key === undefined ||
      length < 1 ||
      length > MAX_IDEMPOTENCY_KEY_LENGTH ||
      key.includes('\0') ||
      LONE_SURROGATE.test(key)
    ) {
      throw new BadRequestException(
        `${where}idempotency_key must be a string of 1-${MAX_IDEMPOTENCY_KEY_LENGTH} Unicode characters, without \\u0000`,
      );
    }
    message.idempotencyKey = key;
  }
  if (fields.has('event_type')) {
    const eventType = stringOf(body, fields.get('event_type'));
    if (eventType === undefined || !EVENT_TYPE.test(eventType)) {
      throw new BadRequestException(
        `${where}event_type must be 1-128 characters of A-Z a-z 0-9 _ . : / -`,
      );
    }
    message.eventType = eventType;
  }
  return message;
}

/** The body of `POST /topics/{name}/messages`. */
export function readPublishRequest(body: string): MessageToPublish {
  return readMessage(body, scanRequestBody(body, 1));
}

/**
 * The body of `POST /topics/{name}/messages/batch`: `{messages: [message, …]}`, 1 to
 * MAX_BATCH_MESSAGES of them. A bad item is a 400 naming its index, before anything is written.
 */
export function readBatchRequest(body: string): MessageToPublish[] {
  // Depth 1 the body, 2 the array, 3 its items: their members are kept, payloads are spans.
  // The scan stops at the item after the limit: an 8 MiB array of a million items is not built.
  let scanned: ScannedValue;
  try {
    scanned = scanRequestBody(body, 3, MAX_BATCH_MESSAGES);
  } catch (error) {
    if (!(error instanceof JsonScanLimitError)) throw error;
    throw new BadRequestException(TOO_MANY_MESSAGES + ' (got more)');
  }
  if (scanned.kind !== 'object' || !scanned.members) {
    throw new BadRequestException('request body must be a JSON object');
  }
  let list: ScannedValue | undefined;
  for (const { key, value } of scanned.members) {
    if (key !== 'messages') {
      throw new BadRequestException(`property ${key.slice(0, 100)} should not exist`);
    }
    if (list) throw new BadRequestException('messages is given twice');
    list = value;
  }
  const items = list?.kind === 'array' ? list.items : undefined;
  if (!items || items.length < 1 || items.length > MAX_BATCH_MESSAGES) {
    throw new BadRequestException(TOO_MANY_MESSAGES + (items ? ` (got ${items.length})` : ''));
  }
  return items.map((item, index) => readMessage(body, item, `messages[${index}].`));
}
