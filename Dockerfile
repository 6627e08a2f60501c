# syntax=docker/dockerfile:1

# --- build: all dependencies, compile TypeScript ---
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The workspace packages' manifests: npm ci links them (npm run receiver uses packages/receiver).
COPY packages/receiver/package.json ./packages/receiver/
COPY packages/client/package.json ./packages/client/
RUN npm ci --no-audit --no-fund
COPY packages ./packages
COPY tsconfig.json nest-cli.json ./
COPY src ./src
COPY ui ./ui
RUN npm run build

# --- production dependencies only (no embedded PostgreSQL: containers use the db service) ---
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/receiver/package.json ./packages/receiver/
COPY packages/client/package.json ./packages/client/
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force

# --- runtime ---
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/packages/receiver/package.json ./packages/receiver/
COPY --from=build /app/packages/receiver/dist ./packages/receiver/dist
COPY package.json LICENSE ./
COPY sql ./sql
USER node
EXPOSE 8000 9464
# The API's /health on PORT, or a worker's on METRICS_PORT (9464): whichever this container runs.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "dist/healthcheck.js"]
# The API by default; the compose file runs the migrations (node dist/migrate.js) and the worker
# (node dist/worker.js) from this same image.
CMD ["node", "dist/main.js"]
