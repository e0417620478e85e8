# syntax=docker/dockerfile:1
# model-metrics container image (issue 4): multi-stage on Node 22 LTS (the AWS SDK's 2027+ releases
# need Node 22), production dependencies only, a numeric non-root user, and nothing written outside
# the mounted /tmp (TMPDIR) and the datasets, so it runs with a read-only root filesystem:
#
#   docker build -t model-metrics .
#   docker run --rm --read-only --tmpfs /tmp model-metrics run --root s3://bucket/ml --date 2026-03-02 --stage preliminary
#
# The entrypoint is the CLI, so the arguments of `docker run IMAGE …` are a model-metrics command.
ARG NODE_IMAGE=node:22-bookworm-slim

# Production dependencies alone, installed from the lockfile. --ignore-scripts: no dependency of the
# job needs an install script, and `prepare` (tsc) belongs to the build stage.
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# The compiler and its inputs; only dist/ leaves this stage.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY jobs ./jobs
RUN npx tsc -p tsconfig.json

FROM ${NODE_IMAGE}
# tini as PID 1: it forwards SIGTERM/SIGINT to node and returns node's exit code (143/130 after a
# graceful stop). Without it node would be PID 1, for which the kernel ignores a signal that has no
# handler, so the CLI's "a second signal exits at once" would not hold in a container.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    TMPDIR=/tmp
WORKDIR /app
# Owned by root and not writable by the job's user: the image content cannot change at run time.
COPY package.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY schemas ./schemas
# Numeric, so Kubernetes' runAsNonRoot can verify it (a user name cannot be checked); 1000 is the
# `node` user of the official image.
USER 1000:1000
# --max-semi-space-size=64: see bin/model-metrics.js (the shebang is bypassed here).
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--max-semi-space-size=64", "/app/bin/model-metrics.js"]
CMD ["--help"]
