#!/usr/bin/env node
// The package's `bin`: runs the operator CLI (src/cli.ts) through tsx, as `npm run cli` does.
import { register } from "tsx/esm/api";

register();
await import("../src/cli.ts");
