import Type from "typebox";
import { BillingError } from "../../errors/billing-error.js";
import type { HttpApp, HttpDependencies } from "../http-app.js";
import { responses } from "../schemas.js";

const HealthReply = Type.Object({ status: Type.Literal("ok") });

const NOT_SERVING_MESSAGES = {
  stopping: "This instance is shutting down: send calls to another one.",
  database_unreachable: "This instance cannot reach its database.",
} as const;

/** Health (no key) and the OpenAPI document generated from every route's schemas. */
export function registerServiceRoutes(app: HttpApp, deps: HttpDependencies): void {
  app.get(
    "/v1/health",
    {
      schema: {
        summary:
          "Answers ok while the database answers and the instance is not shutting down; 503 service_unavailable otherwise, details.reason saying which (stopping, database_unreachable).",
        tags: ["service"],
        security: [],
        response: responses(HealthReply),
      },
      config: { access: "public" },
    },
    async () => {
      const reason = deps.notServing();
      if (reason !== null) throw new BillingError("service_unavailable", NOT_SERVING_MESSAGES[reason], { reason });
      return { status: "ok" as const };
    },
  );
  app.get("/openapi.json", { schema: { hide: true }, config: { access: "public" } }, async () => app.swagger());
}
