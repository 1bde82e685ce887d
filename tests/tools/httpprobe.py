#!/usr/bin/env python3
"""HTTP test clients for sluice's mode = "http" listeners.

  httpprobe.py burst ADDR N [--ws]     N requests at once; report status codes and the
                                       Retry-After values of the 503s (JSON on stdout)
  httpprobe.py bad ADDR KIND           one malformed or slow head (KIND: oversized, slow,
                                       garbage, bare-lf, no-blank-line, nul, space-colon);
                                       prints what came back: the status or "closed"

Only the standard library: tests ship their own peers.
"""
import asyncio
import collections
import json
import sys
import time

GET = ("GET /chat HTTP/1.1\r\nHost: sluice.test\r\nUser-Agent: httpprobe\r\n"
       "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


def addr(text):
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


async def one(host, port, timeout):
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except Exception as e:  # noqa: BLE001 - any failure to connect is reported
        return ("connect-error", str(e), None)
    try:
        w.write(GET.encode())
        await w.drain()
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
    except Exception as e:  # noqa: BLE001
        w.close()
        return ("no-response", str(e), None)
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "?"
    retry = None
    for line in lines[1:]:
        if line.lower().startswith("retry-after:"):
            retry = int(line.split(":", 1)[1].strip())
    w.close()
    return (status, None, retry)


async def burst(target, n):
    host, port = addr(target)
    t0 = time.monotonic()
    results = await asyncio.gather(*(one(host, port, 20) for _ in range(n)))
    spent = time.monotonic() - t0
    statuses = collections.Counter(r[0] for r in results)
    retries = [r[2] for r in results if r[2] is not None]
    hist = collections.Counter(retries)
    print(json.dumps({
        "n": n, "secs": round(spent, 3), "statuses": statuses,
        "retry_after": {"count": len(retries), "min": min(retries, default=None),
                        "max": max(retries, default=None),
                        "most_common": hist.most_common(1)[0] if hist else None,
                        "histogram": dict(sorted(hist.items()))},
    }))


BAD = {
    "oversized": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n",
    "garbage": bytes(range(256)) * 8,
    "bare-lf": b"GET / HTTP/1.1\nHost: x\n\n",
    "no-blank-line": b"GET / HTTP/1.1\r\nHost: x\r\n",
    "nul": b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
    "space-colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
}


async def bad(target, kind):
    host, port = addr(target)
    r, w = await asyncio.open_connection(host, port)
    if kind == "slow":
        # a slowloris: a few bytes now and then, never the whole head
        w.write(b"GET / HTTP/1.1\r\nHo")
        await w.drain()
        data = b""
        for _ in range(40):
            try:
                data = await asyncio.wait_for(r.read(4096), 0.5)
                break
            except asyncio.TimeoutError:
                try:
                    w.write(b"s")
                    await w.drain()
                except ConnectionError:
                    break
            except ConnectionError:
                break
    else:
        w.write(BAD[kind])
        try:
            await w.drain()
        except ConnectionError:
            pass
        if kind == "no-blank-line":
            # a head that never ends: sluice waits for more, then gives up
            pass
        try:
            data = await asyncio.wait_for(r.read(4096), 15)
        except (asyncio.TimeoutError, ConnectionError):
            data = b""
    w.close()
    if data.startswith(b"HTTP/1.1 "):
        print(data.split(b" ")[1].decode())
    else:
        print("closed")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "burst":
        asyncio.run(burst(sys.argv[2], int(sys.argv[3])))
    elif len(sys.argv) == 4 and sys.argv[1] == "bad":
        asyncio.run(bad(sys.argv[2], sys.argv[3]))
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
