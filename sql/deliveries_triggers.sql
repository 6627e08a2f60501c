-- pg-webhook-queue: the triggers on deliveries, which keep what the metrics and the attempts'
-- history read. Installed by the migrations in src/database/migrations; this file is the
-- readable copy of what they leave installed (notify_trigger.sql has the triggers on messages),
-- and a test fails if the two disagree. Every function pins its search_path to our schema
-- (public by default), then pg_temp.

-- 1. Dead deliveries per webhook, for the metrics (pgwq_webhook_dead_deliveries), counted as they
-- change so that a scrape never counts over deliveries. The triggers append +1 / -1 rows to
-- dead_delivery_counts (a webhook's count is the sum of its rows) rather than update one row per
-- webhook: workers dead-lettering at once have no row lock to queue on, and a statement that
-- moves thousands of one webhook's deliveries (a redrive, a retention batch) builds no chain of
-- row versions. The process that computes the gauges folds each webhook's rows into one.
CREATE OR REPLACE FUNCTION pgwq_count_dead_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO dead_delivery_counts (webhook_id, dead)
  VALUES (NEW.webhook_id, CASE WHEN NEW.status = 'dead' THEN 1 ELSE -1 END);
  RETURN NULL;
END;
$$;

-- Deleted dead deliveries, once per statement. When a webhook is deleted its deliveries go with
-- it (ON DELETE CASCADE) and the join skips them: the fold removes the rows of webhooks that are
-- gone. (No foreign key to webhooks: its check would lock the webhook row after the delivery
-- rows, the opposite order to a webhook's deletion, and the two could deadlock.)
CREATE OR REPLACE FUNCTION pgwq_count_dead_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO dead_delivery_counts (webhook_id, dead)
  SELECT gone.webhook_id, -count(*)
  FROM gone
  JOIN webhooks w ON w.id = gone.webhook_id
  WHERE gone.status = 'dead'
  GROUP BY gone.webhook_id;
  RETURN NULL;
END;
$$;

-- Fires only for a change into or out of dead: PostgreSQL checks the WHEN without calling the
-- function, so a delivery that succeeds or is retried pays nothing for it.
CREATE OR REPLACE TRIGGER deliveries_count_dead
  AFTER UPDATE OF status ON deliveries
  FOR EACH ROW WHEN ((OLD.status = 'dead') <> (NEW.status = 'dead'))
  EXECUTE FUNCTION pgwq_count_dead_change();

CREATE OR REPLACE TRIGGER deliveries_count_dead_deleted
  AFTER DELETE ON deliveries
  REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION pgwq_count_dead_deleted();

-- 2. Before an update that makes a delivered delivery something else (a replay, a line's rewind):
-- its successful attempt, kept on the delivery row (delivered_attempt_id and the columns beside
-- it), becomes a row of logged_attempts under the same id, so the delivery's history keeps it and
-- the next success has the row's place. The view delivery_attempts lists both kinds.
CREATE OR REPLACE FUNCTION pgwq_log_delivered_attempt() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO logged_attempts
    (id, delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
  VALUES (OLD.delivered_attempt_id, OLD.id, OLD.attempts, OLD.delivered_started_at,
          OLD.delivered_duration_ms, OLD.last_status_code, OLD.last_error,
          OLD.delivered_response_body);
  NEW.delivered_attempt_id := NULL;
  NEW.delivered_started_at := NULL;
  NEW.delivered_duration_ms := NULL;
  NEW.delivered_response_body := NULL;
  RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER deliveries_log_delivered_attempt
  BEFORE UPDATE OF status ON deliveries
  FOR EACH ROW
  WHEN (OLD.delivered_attempt_id IS NOT NULL AND NEW.status IS DISTINCT FROM 'delivered')
  EXECUTE FUNCTION pgwq_log_delivered_attempt();
