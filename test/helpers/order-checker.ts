/**
 * Checks the ordering promise as arrivals come in: per (webhook, partition), each arrival is
 * either the last sequence again (an at-least-once repeat) or the next one. Anything else,
 * including an older sequence after a newer one, is a violation.
 *
 * With `allowRewinds` (an operator redrives or replays while the test runs, DESIGN §7) a line
 * may also go back to a sequence it has sent before (the rewind), and may pass over sequences
 * that already arrived earlier (a rewound line walks past what it need not send again). What
 * stays a violation: a sequence arriving before one that never arrived.
 */
export class OrderChecker {
  readonly violations: string[] = [];
  private readonly last = new Map<string, number>();
  private readonly seen = new Map<string, Set<number>>();
  arrivals = 0;

  constructor(private readonly allowRewinds = false) {}

  observe(webhook: string | number, partition: string, sequence: number): void {
    this.arrivals += 1;
    const key = `${webhook}/${partition}`;
    const last = this.last.get(key) ?? 0;
    const seen = this.seen.get(key) ?? new Set<number>();
    this.seen.set(key, seen);
    if (sequence === last || sequence === last + 1 || this.rewindAllows(seen, last, sequence)) {
      this.last.set(key, sequence);
    } else {
      this.violations.push(`${key}: sequence ${sequence} arrived after ${last}`);
    }
    seen.add(sequence);
  }

  private rewindAllows(seen: Set<number>, last: number, sequence: number): boolean {
    if (!this.allowRewinds) return false;
    if (sequence < last) return seen.has(sequence);
    for (let s = last + 1; s < sequence; s++) if (!seen.has(s)) return false;
    return true;
  }

  /** The highest sequence seen on each line. */
  highest(webhook: string | number, partition: string): number {
    return Math.max(0, ...(this.seen.get(`${webhook}/${partition}`) ?? []));
  }
}
