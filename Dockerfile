# syntax=docker/dockerfile:1
#
# kvgate container image.
#
#   docker build -t kvgate .
#   docker run -p 8080:8080 -v $PWD/my.yaml:/etc/kvgate/kvgate.yaml:ro kvgate
#
# The config is read from /etc/kvgate/kvgate.yaml (mount yours over it; the baked-in default from
# deploy/docker/kvgate.yaml listens on 0.0.0.0:8080, keeps its admin listener on 127.0.0.1:9090 and, having
# no backend, starts the built-in emulator).
# Extra `kvgate serve` flags go after the image name, e.g. `docker run kvgate --backend http://vllm:8000`.
# See docs/operations.md.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: full dependencies, compile TypeScript to dist/ ----------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run the build before the sources are copied; it runs explicitly below.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies and the compiled CLI only -------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY deploy/docker/kvgate.yaml /etc/kvgate/kvgate.yaml

# The node images ship an unprivileged `node` user (uid 1000); nothing at run time needs root.
USER node

# 8080: the OpenAI API (public). 9090: the admin listener (/metrics, /debug), on loopback in the baked-in
# config; set KVGATE_ADMIN_HOST=0.0.0.0 (or admin.host) to let a Prometheus beside the container scrape it, and
# publish 9090 only to your monitoring network.
EXPOSE 8080 9090
# /health is 200 once a backend is usable. The slim image has no curl, so Node's own fetch probes it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# kvgate drains on SIGTERM: it stops accepting, answers 503 to the queue and lets streams finish within
# server.shutdownGraceMs. Give `docker stop -t` at least that long.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js", "serve", "--config", "/etc/kvgate/kvgate.yaml"]
