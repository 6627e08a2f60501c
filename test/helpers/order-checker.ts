/**
 * Checks the ordering promise as arrivals come in: per (webhook, partition), each arrival is
 * either the last sequence again (an at-least-once repeat) or the next one. Anything else,
 * including an older sequence after a newer one, is a violation.
 */
export class OrderChecker {
  readonly violations: string[] = [];
  private readonly last = new Map<string, number>();
  arrivals = 0;

  observe(webhook: string | number, partition: string, sequence: number): void {
    this.arrivals += 1;
    const key = `${webhook}/${partition}`;
    const last = this.last.get(key) ?? 0;
    if (sequence === last || sequence === last + 1) {
      this.last.set(key, sequence);
    } else {
      this.violations.push(`${key}: sequence ${sequence} arrived after ${last}`);
    }
  }

  /** The highest sequence seen on each line. */
  highest(webhook: string | number, partition: string): number {
    return this.last.get(`${webhook}/${partition}`) ?? 0;
  }
}
