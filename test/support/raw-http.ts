import { connect } from "node:net";

export interface RawHttpResponse {
  readonly status: number;
  /** Header names in lower case; a repeated header keeps its last value. */
  readonly headers: Record<string, string>;
  readonly body: unknown;
}

/**
 * Sends `head` (request line and headers, CRLF-separated, without the blank line) and `body`
 * as bytes exactly as given, for requests fetch refuses to send (a NUL in a header, a header
 * twice, invalid UTF-8), and reads the whole answer (the request asks to close).
 */
export function rawHttp(port: number, head: string, body: Buffer = Buffer.alloc(0)): Promise<RawHttpResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const end = text.indexOf("\r\n\r\n");
      if (end === -1) {
        reject(new Error(`no HTTP answer: ${JSON.stringify(text.slice(0, 200))}`));
        return;
      }
      const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(":");
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const rest = text.slice(end + 4);
      resolve({ status: Number(statusLine.split(" ")[1]), headers, body: rest === "" ? undefined : (JSON.parse(rest) as unknown) });
    });
    const framing = body.length > 0 ? `\r\nContent-Length: ${body.length}` : "";
    socket.write(Buffer.concat([Buffer.from(`${head}${framing}\r\nConnection: close\r\n\r\n`, "latin1"), body]));
  });
}
