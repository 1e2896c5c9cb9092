import { compile } from "@fastify/proxy-addr";

/**
 * Whether the hop at `address` (`hop` 0 is the socket's peer) is a proxy of ours, so that the
 * address it says it forwarded for is believed. Fastify takes the same function as `trustProxy`.
 */
export type ProxyTrust = (address: string, hop: number) => boolean;

/** The client's address, worked out only when a look-up needs it (most calls never do). */
export type ClientAddress = () => string;

/** TRUSTED_PROXIES unset: every socket's peer is the client, X-Forwarded-For is never read. */
export const trustNoProxy: ProxyTrust = () => false;

/**
 * TRUSTED_PROXIES: IP addresses, CIDR ranges and proxy-addr's names (`loopback`, `linklocal`,
 * `uniquelocal`), separated by commas. Throws on an entry that is none of those.
 */
export function proxyTrustOf(list: string): ProxyTrust {
  return compile(list.split(",").map((entry) => entry.trim()));
}

/**
 * The client's address: the socket's peer, or, while that is a trusted proxy, the address it
 * forwarded for, X-Forwarded-For read from its right end (the entry the nearest proxy added) as
 * Fastify reads it for HTTP. Entries a client wrote itself sit left of any trusted proxy's, so
 * they are reached only through a proxy that is not trusted, and never believed.
 */
export function clientAddressOf(socketAddress: string, forwardedFor: readonly string[], trust: ProxyTrust): string {
  const hops = forwardedFor
    .flatMap((header) => header.split(","))
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .reverse();
  let address = socketAddress;
  for (let hop = 0; hop < hops.length && trust(address, hop); hop++) address = hops[hop] ?? address;
  return address;
}

/** A gRPC peer's address without its port: `ipv4:10.0.0.7:51234` (grpc-js) → `10.0.0.7`, `ipv6:[::1]:80` → `::1`. */
export function addressOfPeer(peer: string): string {
  const bare = peer.replace(/^ipv[46]:/, "");
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(bare);
  if (bracketed?.[1]) return bracketed[1];
  return /^[^:]+:\d+$/.test(bare) ? bare.slice(0, bare.lastIndexOf(":")) : bare;
}
