// Scale (--full): our delivery throughput and claim-query time with a backlog of pending
// deliveries built in one INSERT … SELECT generate_series through the trigger.
export async function scaleRun() {
  return null;
}
