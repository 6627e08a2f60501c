import {
  BadRequestException,
  ConflictException,
  Inject,
  Injectable,
  NotFoundException,
} from '@nestjs/common';
import pg from 'pg';
import { recordAction } from '../database/action-record.js';
import { PG_POOL } from '../database/database.module.js';
import { inTransaction } from '../database/transaction.js';
import { LineDto, ListLinesDto } from './dto/line.dto.js';
import { ReplayDto } from './dto/replay.dto.js';
import { BLOCKED_HEAD, LOCK_LINE, SKIP_BLOCKED_HEAD } from '../queue/queue.sql.js';
import { listLines } from './lines.sql.js';
import { RewindService } from '../queue/rewind.service.js';

interface LineRow {
  partition_key: string;
  head_sequence: string;
  tail_sequence: string;
  pending: string;
  oldest_pending_at: Date | null;
  next_attempt_at: Date | null;
  state: LineDto['state'];
}

function toLineJson(row: LineRow): LineDto {
  const idle = row.state === 'idle';
  return {
    partition_key: row.partition_key,
    head_sequence: idle ? null : Number(row.head_sequence),
    tail_sequence: Number(row.tail_sequence),
    pending: Number(row.pending),
    oldest_pending_at: row.oldest_pending_at?.toISOString() ?? null,
    next_attempt_at: row.next_attempt_at?.toISOString() ?? null,
    state: row.state,
  };
}

/** A webhook's lines (DESIGN §7): where each stands, skip, replay. */
@Injectable()
export class LinesService {
  constructor(
    @Inject(PG_POOL) private readonly pool: pg.Pool,
    private readonly rewinds: RewindService,
  ) {}

  async list(webhookId: number, query: ListLinesDto): Promise<LineDto[]> {
    if (query.order === 'lag' && query.after !== undefined) {
      throw new BadRequestException('after pages order=partition_key only');
    }
    await this.mustExist(webhookId);
    const { rows } = await this.pool.query<LineRow>(listLines(query.order), [
      webhookId,
      query.state ?? null,
      query.after ?? '',
      query.limit,
    ]);
    return rows.map(toLineJson);
  }

  /**
   * Skips a blocked line's dead head (it stays dead); 409 when the line is not blocked. The line
   * is locked first, then its head and next head read (SKIP_BLOCKED_HEAD says why).
   */
  async skip(webhookId: number, partitionKey: string): Promise<LineDto> {
    await this.mustExist(webhookId);
    const skipped = await inTransaction(this.pool, async (client) => {
      await client.query(LOCK_LINE, [webhookId, partitionKey]);
      const { rows } = await client.query<{ head: string }>(BLOCKED_HEAD, [
        webhookId,
        partitionKey,
      ]);
      const done =
        rows.length === 1 &&
        (await client.query(SKIP_BLOCKED_HEAD, [webhookId, partitionKey, null, rows[0].head]))
          .rowCount === 1;
      if (done) await recordAction(client);
      return done;
    });
    if (!skipped) {
      await this.line(webhookId, partitionKey);
      throw new ConflictException(`line ${partitionKey} of webhook ${webhookId} is not blocked`);
    }
    return this.line(webhookId, partitionKey);
  }

  async replay(webhookId: number, input: ReplayDto): Promise<number> {
    const byPartition = input.partition_key !== undefined || input.from_sequence !== undefined;
    if (byPartition === (input.since !== undefined)) {
      throw new BadRequestException('give either partition_key and from_sequence, or since');
    }
    if (byPartition && (input.partition_key === undefined || input.from_sequence === undefined)) {
      throw new BadRequestException('partition_key and from_sequence go together');
    }
    await this.mustExist(webhookId);
    return this.rewinds.replay(
      webhookId,
      input.since !== undefined
        ? { since: input.since }
        : { partition_key: input.partition_key!, from_sequence: input.from_sequence! },
    );
  }

  /** One line; 404 when the webhook has none for this partition key. */
  private async line(webhookId: number, partitionKey: string): Promise<LineDto> {
    const { rows } = await this.pool.query<LineRow>(listLines('one'), [
      webhookId,
      null,
      partitionKey,
      1,
    ]);
    if (rows.length === 0) {
      throw new NotFoundException(`webhook ${webhookId} has no line for ${partitionKey}`);
    }
    return toLineJson(rows[0]);
  }

  private async mustExist(webhookId: number): Promise<void> {
    const { rowCount } = await this.pool.query(
      'SELECT 1 FROM webhooks WHERE id = $1 AND deleted_at IS NULL',
      [webhookId],
    );
    if (!rowCount) throw new NotFoundException(`webhook ${webhookId} does not exist`);
  }
}
