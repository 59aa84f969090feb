# syntax=docker/dockerfile:1

# --- Build stage: install all dependencies and compile TypeScript to dist/ ------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- Runtime stage: production dependencies and the compiled service only ------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    SERVICE_PORT=8000
WORKDIR /app
COPY --chown=node:node package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --chown=node:node --from=build /app/dist ./dist
COPY --chown=node:node migrations ./migrations
# The dashboard (/ui) is served from these files at run time (no build step).
COPY --chown=node:node src/ui ./src/ui
USER node
EXPOSE 8000
# /health/live touches no dependency; the slim image has no curl, so use node's fetch.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SERVICE_PORT || 8000) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/src/server.js"]
