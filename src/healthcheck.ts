/**
 * The containers' healthcheck (Dockerfile HEALTHCHECK, docker-compose.yml): exits 0 when this
 * container's /health answers 200, 1 otherwise. One image runs both roles, and only the role's
 * own port listens: the API's on PORT, a worker's on METRICS_PORT (a worker with METRICS_PORT=0
 * has no healthcheck).
 */
const ports = [process.env.PORT || '8000', process.env.METRICS_PORT || '9464'];

async function answers(port: string): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/health`, {
      signal: AbortSignal.timeout(2500),
    });
    return response.ok;
  } catch {
    return false;
  }
}

const healthy = await Promise.all(ports.filter((port) => port !== '0').map(answers));
process.exit(healthy.some(Boolean) ? 0 : 1);
