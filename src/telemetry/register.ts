/**
 * Loaded with `node --import` before the app (npm start, the Dockerfile, the tests): the
 * instrumentations must hook module loading before @grpc/grpc-js, mysql2 and fastify are
 * imported. Those three are CommonJS packages, which Node loads through require even when an ES
 * module imports them, so the require hook suffices; the ES module loader hook
 * (import-in-the-middle) is left out: it made start-up five times slower under tsx.
 * OTEL_SDK_DISABLED=true leaves tracing out entirely.
 */
import { startTelemetry } from "./sdk.js";

// No signal handler here: one would keep a SIGTERM during start-up from ending the process.
// main's stop exports the spans still in the batch (shutdownTelemetry) once the app has stopped.
if (process.env.OTEL_SDK_DISABLED !== "true") startTelemetry();
