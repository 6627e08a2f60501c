import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import pg from 'pg';
import { AppConfig } from '../config/app-config.js';
import { PG_POOL } from '../database/pg-pool.module.js';
import { urlHost, webhookHostProblem } from '../security/ssrf-guard.js';
import { createWebhookResolver } from '../security/webhook-dns.js';

/** Hosts looked up at start, at most: enough to notice, bounded for a database of thousands. */
const MAX_HOSTS = 200;
const PARALLEL_LOOKUPS = 10;

/**
 * A worker whose address policy is stricter than the API's (WEBHOOK_ALLOW_PRIVATE_NETWORKS=false
 * here, true where the webhooks were registered) refuses every attempt to those webhooks, and
 * disables each (`refused`, its backlog kept) at its first attempt. At start it looks at the
 * registered webhooks' hosts, in the background, and says so in one line, before that happens.
 */
@Injectable()
export class AddressPolicyCheck implements OnApplicationBootstrap {
  private readonly logger = new Logger(AddressPolicyCheck.name);

  constructor(
    private readonly config: AppConfig,
    @Inject(PG_POOL) private readonly pool: pg.Pool,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.webhookAllowPrivateNetworks) return;
    this.refusedWebhooks().then(
      (refused) => {
        if (refused.length === 0) return;
        const [first] = refused;
        this.logger.warn(
          `${refused.length} registered webhook(s) point at private or loopback addresses, ` +
            `which this worker refuses (WEBHOOK_ALLOW_PRIVATE_NETWORKS=false), e.g. webhook ` +
            `${first.id} (host ${first.host}); each is disabled (refused, its backlog kept) at ` +
            'its next attempt: start the workers with WEBHOOK_ALLOW_PRIVATE_NETWORKS=true, as ' +
            'the API that accepted them was, or change those URLs, then resume them ' +
            '(PATCH /webhooks/{id} {"status": "active"})',
        );
      },
      (error: Error) => this.logger.debug(`the address policy check failed: ${error.message}`),
    );
  }

  /** The active or paused webhooks whose host this worker's policy refuses. */
  private async refusedWebhooks(): Promise<{ id: number; host: string }[]> {
    const { rows } = await this.pool.query<{ id: string; url: string }>(
      `SELECT id, url FROM webhooks
       WHERE deleted_at IS NULL AND status <> 'disabled' ORDER BY id`,
    );
    const byHost = new Map<string, { url: URL; ids: number[] }>();
    for (const row of rows) {
      let url: URL;
      try {
        url = new URL(row.url);
      } catch {
        continue;
      }
      const host = urlHost(url);
      const entry = byHost.get(host);
      if (entry) entry.ids.push(Number(row.id));
      else if (byHost.size < MAX_HOSTS) byHost.set(host, { url, ids: [Number(row.id)] });
    }
    const resolve = createWebhookResolver(this.config.webhookDnsServers);
    const hosts = [...byHost.entries()];
    const refused: { id: number; host: string }[] = [];
    for (let i = 0; i < hosts.length; i += PARALLEL_LOOKUPS) {
      await Promise.all(
        hosts.slice(i, i + PARALLEL_LOOKUPS).map(async ([host, { url, ids }]) => {
          if (await webhookHostProblem(url, false, resolve)) {
            refused.push(...ids.map((id) => ({ id, host })));
          }
        }),
      );
    }
    return refused.sort((a, b) => a.id - b.id);
  }
}
