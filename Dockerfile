# velobase-billing: gRPC on 50051, HTTP on 8080, Prometheus metrics on 9464.

# Build: compile src/ and the committed gen/ to dist/. Generated code is not regenerated here,
# so the image needs no buf and builds offline once dependencies are fetched.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency needs its install script: native binaries (buf, esbuild) arrive as
# optionalDependencies.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY gen ./gen
COPY src ./src
# The build also copies gen/descriptors.binpb (for reflection) and the SQL migrations, which the
# server applies at start-up from dist/src/store/migrations.
RUN npm run build

# Runtime: production dependencies and dist/ only, as the unprivileged `node` user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    GRPC_PORT=50051 \
    METRICS_PORT=9464
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
# The operator's CLI (projects, keys, verify, events tail) as in the README, on the image's PATH:
#   docker compose exec billing velobase-billing keys create --project default
RUN printf '#!/bin/sh\nexec node /app/dist/src/cli.js "$@"\n' > /usr/local/bin/velobase-billing \
    && chmod 755 /usr/local/bin/velobase-billing
USER node
EXPOSE 50051 8080 9464
# GET /v1/health needs no key: 200 while the database answers, 503 otherwise (the image has no
# curl; Node 20 has fetch). Behind TLS_CERT_FILE the HTTP port speaks HTTPS: override the check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT || 8080) + '/v1/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Tracing (src/telemetry) loads before the app; it exports over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
CMD ["node", "--import", "./dist/src/telemetry/register.js", "dist/src/main.js"]
