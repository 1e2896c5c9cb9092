import type { Server, Socket } from "node:net";
import { HeldCounts } from "./held-counts.js";

/** How many open connections a listener (gRPC's, HTTP's) holds at once. */
export interface ConnectionLimits {
  /** All clients together (CONNECTIONS_MAX): Node closes the next one at accept. */
  readonly max: number;
  /** One client address (CONNECTIONS_PER_ADDRESS_MAX). */
  readonly perAddressMax: number;
  /** Told of each connection closed at accept (a metric). */
  readonly refused: (why: ConnectionRefusal) => void;
}

/** Why a connection was closed at accept: the listener was full, or its address held its share. */
export type ConnectionRefusal = "instance" | "address";

/**
 * Caps the open connections of a listening server, in all and per client address. Without it an
 * idle connection costs a client nothing to keep and the instance a socket, HTTP/2 session state
 * and a file descriptor: 19,900 idle gRPC connections from one client were all kept. A refused
 * connection is closed before any byte is read, so it costs no parsing and no TLS handshake.
 *
 * The cap per address runs before every 'connection' listener the server already has (Node's
 * HTTP, HTTP/2 or TLS layer, grpc-js's own): they are moved behind a gate, so a refused socket
 * never reaches them.
 */
export function limitConnections(server: Server, limits: ConnectionLimits): void {
  const listeners = server.listeners("connection") as ((socket: Socket) => void)[];
  if (listeners.length === 0) throw new Error("the server has no connection listener to put behind the limits");
  server.maxConnections = limits.max;
  server.on("drop", () => limits.refused("instance"));
  const open = new HeldCounts();
  server.removeAllListeners("connection");
  server.on("connection", (socket: Socket) => {
    const address = remoteAddressOf(socket);
    if (open.of(address) >= limits.perAddressMax) {
      socket.destroy();
      limits.refused("address");
      return;
    }
    socket.once("close", open.hold(address));
    for (const listener of listeners) listener.call(server, socket);
  });
}

/** The socket's remote address, an IPv4 client on a dual-stack listener written as IPv4. */
function remoteAddressOf(socket: Socket): string {
  const address = socket.remoteAddress ?? "unknown";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice("::ffff:".length) : address;
}
