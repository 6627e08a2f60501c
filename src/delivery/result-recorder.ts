/**
 * Group commit of delivery results. Requests finish one at a time; each result goes to the
 * database at once when no record is on its way, and otherwise waits for that one and then goes
 * with every result that came in meanwhile, in one statement and one commit. Nothing waits on a
 * timer, so a lone result (a hot partition's) is recorded as soon as before, and a busy worker
 * pays one round trip and one WAL flush for many. Each caller still gets its own row only after
 * the commit that recorded it, so a line's next head is never POSTed before its result is
 * durable (DESIGN §3).
 *
 * The first result of a batch is sent in the next turn of the event loop (setImmediate), so the
 * responses that arrived in the same turn go with it.
 *
 * A batch never waits for one of its lines (DESIGN §7): `send(requests, false)` answers `busy`
 * for a line whose lock someone else holds (a producer's open transaction), recording nothing of
 * it. That result goes again on its own, `send([request], true)`, which waits for the lock, on a
 * connection of its own and beside the batches: the results of every other line keep going.
 */
export class ResultRecorder<Request, Row> {
  private waiting: Waiting<Request, Row>[] = [];
  private sending = false;

  /**
   * `send` records its requests in one statement and returns one row per request, in order;
   * `busy` tells a row whose line was not waited for (`wait` false), to be sent again alone.
   */
  constructor(
    private readonly send: (requests: Request[], wait: boolean) => Promise<Row[]>,
    private readonly busy: (row: Row) => boolean = () => false,
  ) {}

  record(request: Request): Promise<Row> {
    return new Promise<Row>((resolve, reject) => {
      this.waiting.push({ request, resolve, reject });
      if (!this.sending) {
        this.sending = true;
        setImmediate(() => void this.sendWaiting());
      }
    });
  }

  private async sendWaiting(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting;
      this.waiting = [];
      try {
        const rows = await this.sendChecked(batch.map((w) => w.request));
        batch.forEach((w, k) => this.settle(w, rows[k]));
      } catch (error) {
        if (batch.length === 1) {
          batch[0].reject(error);
        } else {
          // One bad result must not fail the others (nor keep failing them on every retry):
          // each goes again on its own, and only its own error reaches its caller.
          await Promise.all(
            batch.map((w) =>
              this.sendChecked([w.request]).then(([row]) => this.settle(w, row), w.reject),
            ),
          );
        }
      }
    }
    this.sending = false;
  }

  /** Not awaited: a busy line's wait must not hold up the next batch. */
  private settle(waiting: Waiting<Request, Row>, row: Row): void {
    if (!this.busy(row)) {
      waiting.resolve(row);
      return;
    }
    this.sendChecked([waiting.request], true).then(([alone]) => {
      if (this.busy(alone)) throw new Error('a result sent alone came back busy');
      waiting.resolve(alone);
    }, waiting.reject);
  }

  private async sendChecked(requests: Request[], wait = false): Promise<Row[]> {
    const rows = await this.send(requests, wait);
    if (rows.length !== requests.length) {
      throw new Error(`recorded ${rows.length} results for ${requests.length}`);
    }
    return rows;
  }
}

interface Waiting<Request, Row> {
  request: Request;
  resolve: (row: Row) => void;
  reject: (error: unknown) => void;
}
