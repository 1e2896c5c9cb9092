import Type from "typebox";
import { BillingError } from "../../errors/billing-error.js";
import type { HttpApp, HttpDependencies } from "../http-app.js";
import { responses } from "../schemas.js";

const HealthReply = Type.Object({ status: Type.Literal("ok") });

/** Health (no key) and the OpenAPI document generated from every route's schemas. */
export function registerServiceRoutes(app: HttpApp, deps: HttpDependencies): void {
  app.get(
    "/v1/health",
    {
      schema: {
        summary: "Answers ok while the database answers, 503 service_unavailable otherwise.",
        tags: ["service"],
        security: [],
        response: responses(HealthReply),
      },
      config: { access: "public" },
    },
    async () => {
      if (!deps.isServing()) throw new BillingError("service_unavailable");
      return { status: "ok" as const };
    },
  );
  app.get("/openapi.json", { schema: { hide: true }, config: { access: "public" } }, async () => app.swagger());
}
