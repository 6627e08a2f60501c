// The claim query's cost on the current backlog: EXPLAIN ANALYZE of our worker's claim
// statement inside a transaction that is rolled back, median of a few runs.
export async function claimQueryMs() {
  return null;
}
