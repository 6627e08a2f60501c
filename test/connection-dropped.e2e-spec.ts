import type { NestExpressApplication } from '@nestjs/platform-express';
import type pg from 'pg';
import request from 'supertest';
import { DataSource } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';
import { PG_POOL } from '../src/database/pg-pool.module.js';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';

/**
 * A connection the server drops (a restart, a failover, pg_terminate_backend) while the API holds
 * it between two statements must not end the process: pg reports it as an 'error' event on the
 * client, which pg-pool no longer listens to while the client is checked out. The statement after
 * fails and says so; the pool discards the connection and the API goes on.
 */
describe('a connection dropped while checked out', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url);
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  async function dropWhileCheckedOut(client: pg.ClientBase): Promise<void> {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const ended = new Promise((resolve) => client.once('end', resolve));
    await db.pool.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
    // The server's goodbye arrives while no statement is running: the 'error' event.
    await ended;
    await expect(client.query('SELECT 1')).rejects.toThrow();
  }

  it('the hand-written SQL pool: the process stays, the pool goes on', async () => {
    const pool = app.get<pg.Pool>(PG_POOL);
    const client = await pool.connect();
    try {
      await dropWhileCheckedOut(client);
    } finally {
      client.release(true);
    }
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it("TypeORM's pool: the process stays, the API answers", async () => {
    const driver = app.get(DataSource).driver as PostgresDriver;
    const [client, release] = (await driver.obtainMasterConnection()) as [
      pg.PoolClient,
      (err?: unknown) => void,
    ];
    try {
      await dropWhileCheckedOut(client);
    } finally {
      release(true);
    }
    await eventually(
      async () => (await request(app.getHttpServer()).get('/topics')).status === 200,
      {
        what: 'the API answering from the database',
      },
    );
  });
});
