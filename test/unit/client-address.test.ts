import type { IncomingMessage } from "node:http";
import proxyaddr from "@fastify/proxy-addr";
import { describe, expect, it } from "vitest";
import { addressOfPeer, clientAddressOf, proxyTrustOf, trustNoProxy } from "../../src/tenancy/client-address.js";

const privateProxies = proxyTrustOf("10.0.0.0/8, loopback");

describe("clientAddressOf", () => {
  it("is the socket's peer when no proxy is trusted, whatever X-Forwarded-For says", () => {
    expect(clientAddressOf("10.0.0.5", ["203.0.113.9"], trustNoProxy)).toBe("10.0.0.5");
  });

  it("reads X-Forwarded-For from its right end while the hop is a trusted proxy", () => {
    expect(clientAddressOf("10.0.0.5", ["203.0.113.9"], privateProxies)).toBe("203.0.113.9");
    expect(clientAddressOf("10.0.0.5", ["203.0.113.9, 10.0.0.7"], privateProxies)).toBe("203.0.113.9");
    expect(clientAddressOf("10.0.0.5", ["203.0.113.9", "10.0.0.7"], privateProxies)).toBe("203.0.113.9");
    // What the client wrote itself sits left of the first address no trusted proxy vouches for.
    expect(clientAddressOf("10.0.0.5", ["1.2.3.4, 203.0.113.9"], privateProxies)).toBe("203.0.113.9");
    // A socket that is no trusted proxy is the client, its header a lie.
    expect(clientAddressOf("198.51.100.1", ["1.2.3.4"], privateProxies)).toBe("198.51.100.1");
    expect(clientAddressOf("::ffff:10.0.0.5", ["203.0.113.9"], privateProxies)).toBe("203.0.113.9");
    expect(clientAddressOf("10.0.0.5", [], privateProxies)).toBe("10.0.0.5");
    expect(clientAddressOf("10.0.0.5", [" , "], privateProxies)).toBe("10.0.0.5");
  });

  it("agrees with proxy-addr, which gives Fastify's request.ip", () => {
    const cases: [string, string][] = [
      ["10.0.0.5", "203.0.113.9"],
      ["10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.7"],
      ["10.0.0.5", "10.0.0.9, 10.0.0.8"],
      ["127.0.0.1", "unknown, 203.0.113.9"],
      ["198.51.100.1", "203.0.113.9"],
      ["10.0.0.5", "2001:db8::1"],
    ];
    for (const [socket, header] of cases) {
      const request = { socket: { remoteAddress: socket }, connection: { remoteAddress: socket }, headers: { "x-forwarded-for": header } };
      expect(clientAddressOf(socket, [header], privateProxies)).toBe(proxyaddr(request as unknown as IncomingMessage, privateProxies));
    }
  });
});

describe("proxyTrustOf", () => {
  it("takes addresses, ranges and proxy-addr's names, and refuses anything else", () => {
    expect(proxyTrustOf("192.0.2.1")("192.0.2.1", 0)).toBe(true);
    expect(proxyTrustOf("192.0.2.1")("192.0.2.2", 0)).toBe(false);
    expect(proxyTrustOf("uniquelocal")("fd00::1", 0)).toBe(true);
    expect(() => proxyTrustOf("proxy.internal")).toThrow(/invalid IP address/);
    expect(() => proxyTrustOf("10.0.0.0/33")).toThrow();
  });
});

describe("addressOfPeer", () => {
  it("drops grpc-js's family prefix and the port", () => {
    expect(addressOfPeer("ipv4:10.0.0.7:51234")).toBe("10.0.0.7");
    expect(addressOfPeer("ipv6:[::1]:80")).toBe("::1");
    expect(addressOfPeer("[2001:db8::1]:443")).toBe("2001:db8::1");
    expect(addressOfPeer("unix:/tmp/s")).toBe("unix:/tmp/s");
  });
});
