/** Who is calling: the API key's project and scope (null key for the sweeper and internal work). */
export interface Caller {
  readonly projectId: bigint;
  readonly apiKeyId: bigint | null;
  readonly scope: "read" | "write";
  readonly keyPrefix: string | null;
}
