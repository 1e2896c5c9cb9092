import { Client, credentials, Metadata } from "@grpc/grpc-js";

const identity = (bytes: Buffer): Buffer => bytes;

/** A generic grpc-js client that sends request bytes exactly as given (hostile-input tests). */
export class RawClient {
  private readonly client: Client;

  private readonly metadata = new Metadata();

  /** `apiKey` is presented on every call, as `authorization: Bearer <key>`. */
  constructor(port: number, apiKey: string) {
    this.metadata.set("authorization", `Bearer ${apiKey}`);
    this.client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  }

  /** Calls `/velobase.billing.v1.BillingService/<method>` with `bytes` as the request message. */
  call(method: string, bytes: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) =>
      this.client.makeUnaryRequest(
        `/velobase.billing.v1.BillingService/${method}`,
        identity,
        identity,
        bytes,
        this.metadata,
        (error, response) => (error || response === undefined ? reject(error ?? new Error("no response")) : resolve(response)),
      ),
    );
  }

  close(): void {
    this.client.close();
  }
}
