# pgflip: one image for the proxy and the controller (docker-compose.migrations.yml).
# The PostgreSQL client (pg_dump, psql) takes rollback points and loads schemas;
# Debian bookworm ships version 15, matching the postgres:15 servers of the compose file.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/pgflip/backups && chown -R node:node /var/lib/pgflip
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY scripts ./scripts
COPY migrations ./migrations
COPY proxy/pgflip.yaml /etc/pgflip/pgflip.yaml
USER node
ENV NODE_ENV=production PGFLIP_BACKUP_DIR=/var/lib/pgflip/backups
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["--help"]
