/** What one accepted arrival was, seen from its partition's history. */
export type Verdict =
  | { kind: 'in-order' }
  /** Sequences between the last one and this one never arrived (DESIGN §7: a dead letter). */
  | { kind: 'gap'; missingFrom: number; missingTo: number }
  /** A sequence accepted before (at-least-once: a timeout, a killed worker, a replay). */
  | { kind: 'duplicate' }
  /** A sequence that was missing arrived after a later one (a redrive, or a broken promise). */
  | { kind: 'order-break'; after: number };

interface Partition {
  accepted: number;
  highest: number;
  duplicates: number;
  gaps: number;
  orderBreaks: number;
  /** Sequences still missing, as inclusive ranges. */
  missing: Array<[number, number]>;
}

export interface PartitionReport extends Partition {
  topic: string;
  partition: string;
}

/**
 * Follows every (topic, partition)'s `webhook-sequence` across accepted arrivals. Memory stays
 * small whatever the traffic: per partition the highest sequence and the ranges still missing.
 */
export class SequenceTracker {
  private readonly partitions = new Map<string, Partition>();

  /**
   * `previous`: the webhook-previous-sequence header (null for a line's first, undefined when not
   * sent). With it, a sequence that follows the last one accepted is in order even when numbers
   * lie between them (messages this endpoint was never meant to get: event_types filters); the
   * missing ones of a gap are from the last accepted one up to `previous`. Without it, the one
   * before is sequence − 1.
   */
  observe(
    topic: string,
    partitionKey: string,
    sequence: number,
    previous: number | null | undefined = undefined,
  ): Verdict {
    const key = JSON.stringify([topic, partitionKey]);
    let p = this.partitions.get(key);
    if (!p) {
      p = { accepted: 0, highest: 0, duplicates: 0, gaps: 0, orderBreaks: 0, missing: [] };
      this.partitions.set(key, p);
    }
    p.accepted += 1;
    const before = previous === undefined ? sequence - 1 : (previous ?? 0);
    if (sequence > p.highest && before <= p.highest) {
      p.highest = sequence;
      return { kind: 'in-order' };
    }
    if (sequence > p.highest) {
      const verdict: Verdict = { kind: 'gap', missingFrom: p.highest + 1, missingTo: before };
      p.missing.push([p.highest + 1, before]);
      p.highest = sequence;
      p.gaps += 1;
      return verdict;
    }
    const hole = p.missing.findIndex(([from, to]) => from <= sequence && sequence <= to);
    if (hole === -1) {
      p.duplicates += 1;
      return { kind: 'duplicate' };
    }
    const [from, to] = p.missing[hole];
    const rest: Array<[number, number]> = [];
    if (from < sequence) rest.push([from, sequence - 1]);
    if (sequence < to) rest.push([sequence + 1, to]);
    p.missing.splice(hole, 1, ...rest);
    p.orderBreaks += 1;
    return { kind: 'order-break', after: p.highest };
  }

  report(): PartitionReport[] {
    return [...this.partitions].map(([key, p]) => {
      const [topic, partition] = JSON.parse(key) as [string, string];
      return { topic, partition, ...p, missing: [...p.missing] };
    });
  }
}
