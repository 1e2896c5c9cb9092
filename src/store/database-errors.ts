/** The database is there but not ready for this build (missing, migrations pending or failed); main and the CLI say it in one line. */
export class DatabaseNotReadyError extends Error {}
