# velobase-billing: gRPC on 50051, Prometheus metrics on 9464.

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
USER node
EXPOSE 50051 8080 9464
# Tracing (src/telemetry) loads before the app; it exports over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
CMD ["node", "--import", "./dist/src/telemetry/register.js", "dist/src/main.js"]
