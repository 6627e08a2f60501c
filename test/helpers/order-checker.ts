/**
 * Checks the ordering promise as arrivals come in: per (webhook, partition), each arrival is
 * either the last sequence again (an at-least-once repeat) or the next one. Anything else,
 * including an older sequence after a newer one, is a violation.
 *
 * With `allowRewinds` (an operator redrives or replays while the test runs, DESIGN §7) a line
 * may also go back to a sequence it has sent before (the rewind), and may pass over sequences
 * that already arrived earlier (a rewound line walks past what it need not send again). What
 * stays a violation: a sequence arriving before one that never arrived.
 *
 * With `allowRewinds = 'announced'` a line may go back only after the test announced a rewind
 * of it (expectRewind, before the replay or redrive is sent), and only to the rewind's first
 * sequence or later; each announcement allows one going back.
 */
export class OrderChecker {
  readonly violations: string[] = [];
  private readonly last = new Map<string, number>();
  private readonly seen = new Map<string, Set<number>>();
  private readonly announced = new Map<string, number[]>();
  arrivals = 0;
  /** Arrivals that went back to an announced rewind. */
  rewinds = 0;

  constructor(private readonly allowRewinds: boolean | 'announced' = false) {}

  /** A replay or redrive of this line from `from` on is about to be sent. */
  expectRewind(webhook: string | number, partition: string, from: number): void {
    const key = `${webhook}/${partition}`;
    this.announced.set(key, [...(this.announced.get(key) ?? []), from]);
  }

  observe(webhook: string | number, partition: string, sequence: number): void {
    this.arrivals += 1;
    const key = `${webhook}/${partition}`;
    const last = this.last.get(key) ?? 0;
    const seen = this.seen.get(key) ?? new Set<number>();
    this.seen.set(key, seen);
    if (
      sequence === last ||
      sequence === last + 1 ||
      this.rewindAllows(key, seen, last, sequence)
    ) {
      this.last.set(key, sequence);
    } else {
      this.violations.push(`${key}: sequence ${sequence} arrived after ${last}`);
    }
    seen.add(sequence);
  }

  private rewindAllows(key: string, seen: Set<number>, last: number, sequence: number): boolean {
    if (!this.allowRewinds) return false;
    if (sequence < last) {
      if (!seen.has(sequence)) return false;
      if (this.allowRewinds !== 'announced') return true;
      const froms = this.announced.get(key) ?? [];
      const k = froms.findIndex((from) => from <= sequence);
      if (k < 0) return false;
      froms.splice(k, 1);
      this.rewinds += 1;
      return true;
    }
    for (let s = last + 1; s < sequence; s++) if (!seen.has(s)) return false;
    return true;
  }

  /** The highest sequence seen on each line. */
  highest(webhook: string | number, partition: string): number {
    return Math.max(0, ...(this.seen.get(`${webhook}/${partition}`) ?? []));
  }
}
