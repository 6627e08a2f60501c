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
 */
export class ResultRecorder<Request, Row> {
  private waiting: Waiting<Request, Row>[] = [];
  private sending = false;

  /** `send` records its requests in one statement and returns one row per request, in order. */
  constructor(private readonly send: (requests: Request[]) => Promise<Row[]>) {}

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
        batch.forEach((w, k) => w.resolve(rows[k]));
      } catch (error) {
        if (batch.length === 1) {
          batch[0].reject(error);
        } else {
          // One bad result must not fail the others (nor keep failing them on every retry):
          // each goes again on its own, and only its own error reaches its caller.
          await Promise.all(
            batch.map((w) =>
              this.sendChecked([w.request]).then(([row]) => w.resolve(row), w.reject),
            ),
          );
        }
      }
    }
    this.sending = false;
  }

  private async sendChecked(requests: Request[]): Promise<Row[]> {
    const rows = await this.send(requests);
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
