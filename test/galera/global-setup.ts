import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../support/spawn.js";
import { GALERA_DIR } from "./cluster.js";

/** Starts the three local nodes unless they run already (scripts/galera.sh up is idempotent). */
export default function setup(): void {
  execFileSync("bash", [join(ROOT, "scripts/galera.sh"), "up", GALERA_DIR], { stdio: "inherit", timeout: 300_000 });
}
