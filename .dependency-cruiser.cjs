/**
 * The layers of docs/architecture.md, enforced by `npm run lint`:
 *   transports (grpc, http, console) → operations (operations, tenancy) → store → domain (domain, errors).
 * Nothing below a layer imports it, and nothing but the wiring (app.ts, main.ts, cli.ts,
 * console-wiring.ts) imports a transport.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-transport-imports",
      comment: "Only the wiring (app.ts, main.ts, cli.ts) and the transports themselves import a transport.",
      severity: "error",
      from: { path: "^src/", pathNot: ["^src/(app|main|cli|console-wiring)\\.ts$", "^src/grpc/", "^src/http/", "^src/console/"] },
      to: { path: "^src/(grpc|http|console)/" },
    },
    {
      name: "transports-stay-apart",
      comment: "gRPC and HTTP are two transports over the same operations; neither imports the other.",
      severity: "error",
      from: { path: "^src/grpc/" },
      to: { path: "^src/http/" },
    },
    {
      name: "transports-stay-apart-http",
      severity: "error",
      from: { path: "^src/http/" },
      to: { path: "^src/(grpc|console)/" },
    },
    {
      name: "transports-stay-apart-console",
      comment: "The console is a third transport over the same operations; the HTTP server only mounts it (app.ts wires it in).",
      severity: "error",
      from: { path: "^src/console/" },
      to: { path: "^src/(grpc|http)/" },
    },
    {
      name: "transports-call-operations",
      comment: "A transport parses, calls one operation and formats; it never reaches the store.",
      severity: "error",
      from: { path: "^src/(grpc|http|console)/" },
      to: { path: "^src/store/" },
    },
    {
      name: "store-below-operations",
      comment: "The store builds statements and maps rows for the operations; it never calls one.",
      severity: "error",
      from: { path: "^src/store/" },
      to: { path: "^src/(operations|tenancy|grpc|http|console)/" },
    },
    {
      name: "domain-is-pure",
      comment: "Domain code (and the error catalogue) depends on nothing of the service around it.",
      severity: "error",
      from: { path: "^src/(domain|errors)/" },
      to: { path: "^src/(operations|tenancy|store|grpc|http|console|client)/|^src/(app|main|cli|config|logger|metrics)\\.ts$" },
    },
    {
      name: "domain-has-no-io",
      comment: "No database, driver or transport library in pure code.",
      severity: "error",
      from: { path: "^src/domain/" },
      to: { path: "node_modules/(drizzle-orm|mysql2|@grpc|fastify|ioredis)/" },
    },
    {
      name: "errors-have-no-storage",
      comment: "The catalogue maps codes to gRPC and HTTP statuses; it knows nothing of the database.",
      severity: "error",
      from: { path: "^src/errors/" },
      to: { path: "node_modules/(drizzle-orm|mysql2|ioredis)/" },
    },
    {
      name: "operations-build-no-sql",
      comment:
        "Operations are orchestrators: load, plan and apply come from store/ and domain/. No query builder, driver or schema here.",
      severity: "error",
      from: { path: "^src/operations/" },
      to: { path: "node_modules/(drizzle-orm|mysql2)/|^src/store/schema\\.ts$" },
    },
    {
      name: "grpc-stays-in-grpc",
      comment:
        "gRPC is one transport: only grpc/, the client library and the wiring import grpc-js or gen/. The error model is transport-neutral (grpc/status-details.ts puts it on the wire).",
      severity: "error",
      from: { path: "^src/", pathNot: ["^src/grpc/", "^src/client/", "^src/(app|main|cli)\\.ts$"] },
      to: { path: "^gen/|node_modules/(@grpc|grpc-health-check)/" },
    },
    {
      name: "http-reaches-no-grpc",
      comment: "Nothing HTTP imports, directly or through other modules, is gRPC.",
      severity: "error",
      from: { path: "^src/http/" },
      to: { path: "^gen/|node_modules/(@grpc|grpc-health-check)/|^src/(grpc|client)/", reachable: true },
    },
    {
      name: "no-circular",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
  ],
  options: {
    // gen/ is kept in the graph (rules name it) but not followed into.
    doNotFollow: { path: "node_modules|^gen/" },
    exclude: { path: "^dist/|^src/store/migrations/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
