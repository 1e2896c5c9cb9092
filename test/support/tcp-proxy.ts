import { createServer, connect, type Server, type Socket } from "node:net";

/**
 * A loopback TCP proxy the test can cut and restore, to play a database outage (connections
 * closed as they come), or freeze and
 * thaw, to play a hung host (connections stay open, nothing passes).
 */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();
  private frozen = false;
  private refusing = false;
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = "127.0.0.1",
  ) {}

  async start(port = 0): Promise<number> {
    this.server = createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const upstream = connect(this.targetPort, this.targetHost);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
        socket.on("error", () => socket.destroy());
      }
      const pair = { client, upstream };
      this.pairs.add(pair);
      if (!this.frozen) link(pair);
      client.on("close", () => {
        this.pairs.delete(pair);
        upstream.destroy();
      });
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server?.listen(port, "127.0.0.1", resolve));
    // A proxy left listening (cut as a test's last step) never keeps the test process alive.
    this.server.unref();
    const address = this.server.address();
    this.port = typeof address === "object" && address ? address.port : 0;
    return this.port;
  }

  /**
   * Kills the open connections and closes each new one at once. The port stays bound: with test
   * files running side by side, a port let go could be taken by another file before restore().
   */
  async cut(): Promise<void> {
    this.refusing = true;
    for (const socket of this.sockets) socket.destroy();
  }

  async restore(): Promise<void> {
    this.refusing = false;
  }

  /** Stops every byte both ways, on open and new connections alike, without closing any. */
  freeze(): void {
    this.frozen = true;
    for (const { client, upstream } of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  thaw(): void {
    this.frozen = false;
    for (const pair of this.pairs) link(pair);
  }
}

function link({ client, upstream }: { client: Socket; upstream: Socket }): void {
  client.pipe(upstream).pipe(client);
}
