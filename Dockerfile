# syntax=docker/dockerfile:1
# model-metrics: multi-stage build on Node 22 LTS (the AWS SDK's 2027+ releases need Node 22).

FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY jobs ./jobs
COPY schemas ./schemas
COPY bin ./bin
# `npm ci` runs `prepare`, which compiles TypeScript into dist/.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/schemas ./schemas
# Non-root; works with a read-only root filesystem (nothing is written outside the datasets and /tmp).
USER node
ENTRYPOINT ["node", "--max-semi-space-size=64", "/app/bin/model-metrics.js"]
CMD ["--help"]
