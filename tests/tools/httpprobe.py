#!/usr/bin/env python3
"""HTTP test clients for sluice's mode = "http" listeners.

  httpprobe.py burst ADDR N [--ws]     N requests at once; report status codes and the
                                       Retry-After values of the 503s (JSON on stdout)
  httpprobe.py bad ADDR KIND           one malformed or slow head (KIND: oversized, slow,
                                       garbage, bare-lf, no-blank-line, nul, space-colon);
                                       prints what came back: the status or "closed"
  httpprobe.py ws-hold ADDR N [MAX_S]  N WebSocket upgrades held open; "ready" once all got
                                       101, then wait (MAX_S, default 30) for the server side
                                       to end them; report how (JSON): Close frames by code
  httpprobe.py slowloris ADDR N [INTERVAL_S [MAX_S]]
                                       N connections that each send a request head one
                                       byte per INTERVAL_S (default 1) and never finish it;
                                       report when the server closed them, in seconds from
                                       the first connect (JSON on stdout), after MAX_S
                                       (default 30) at the latest

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


async def loris(host, port, interval, until, t0, out):
    try:
        r, w = await asyncio.open_connection(host, port)
    except OSError as e:
        out.append(("connect-error", str(e)))
        return
    head = b"GET / HTTP/1.1\r\nHost: sluice.test\r\nX-Slow: " + b"a" * 100000
    sent = 0
    how = "open"
    while time.monotonic() < until:
        try:
            w.write(head[sent:sent + 1])
            await w.drain()
            sent += 1
            data = await asyncio.wait_for(r.read(4096), interval)
            how = "answered" if data else "closed"
            break
        except asyncio.TimeoutError:
            continue
        except OSError:
            how = "closed"
            break
    out.append((how, time.monotonic() - t0, sent))
    w.close()


async def slowloris(target, n, interval, max_s):
    host, port = addr(target)
    t0 = time.monotonic()
    out = []
    await asyncio.gather(*(loris(host, port, interval, t0 + max_s, t0, out) for _ in range(n)))
    closed = [o[1] for o in out if o[0] == "closed"]
    print(json.dumps({
        "n": n, "closed": len(closed), "open": sum(1 for o in out if o[0] == "open"),
        "answered": sum(1 for o in out if o[0] == "answered"),
        "connect_errors": sum(1 for o in out if o[0] == "connect-error"),
        "first_close_s": round(min(closed), 3) if closed else None,
        "last_close_s": round(max(closed), 3) if closed else None,
        "max_bytes_sent": max((o[2] for o in out if len(o) > 2), default=0),
    }))


async def ws_one(host, port, up, ready, until, out):
    try:
        r, w = await asyncio.open_connection(host, port)
        w.write(GET.encode())
        await w.drain()
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        out.append(("no-upgrade", str(e)))
        up.append(False)
        if len(up) == ready.n:
            ready.set()
        return
    ok = head.startswith(b"HTTP/1.1 101")
    up.append(ok)
    if len(up) == ready.n:
        ready.set()
    buf, how = b"", "open"
    while ok:
        left = until - time.monotonic()
        try:
            data = await asyncio.wait_for(r.read(65536), max(left, 0.01))
        except asyncio.TimeoutError:
            break
        except OSError:
            how = how if how.startswith("close-") else "reset"
            break
        if not data:
            how = how if how.startswith("close-") else "closed"
            break
        buf += data
        # server frames are unmasked: FIN/opcode, length (7, 16 or 64 bit), payload
        while len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, off = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, off = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < off + n:
                break
            if buf[0] & 0x0F == 0x8:
                how = "close-%d" % int.from_bytes(buf[off:off + 2], "big") if n >= 2 else "close"
            buf = buf[off + n:]
    out.append((how if ok else "no-upgrade",))
    w.close()


async def ws_hold(target, n, max_s):
    host, port = addr(target)
    up, out = [], []
    ready = asyncio.Event()
    ready.n = n
    until = time.monotonic() + max_s

    async def announce():
        await ready.wait()
        if all(up):
            print("ready", flush=True)
    tasks = [ws_one(host, port, up, ready, until, out) for _ in range(n)]
    await asyncio.gather(announce(), *tasks)
    print(json.dumps({"n": n, "upgraded": sum(up), "ends": collections.Counter(o[0] for o in out)}))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "ws-hold":
        asyncio.run(ws_hold(sys.argv[2], int(sys.argv[3]),
                            float(sys.argv[4]) if len(sys.argv) > 4 else 30.0))
    elif len(sys.argv) >= 4 and sys.argv[1] == "slowloris":
        interval = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
        max_s = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
        asyncio.run(slowloris(sys.argv[2], int(sys.argv[3]), interval, max_s))
    elif len(sys.argv) >= 4 and sys.argv[1] == "burst":
        asyncio.run(burst(sys.argv[2], int(sys.argv[3])))
    elif len(sys.argv) == 4 and sys.argv[1] == "bad":
        asyncio.run(bad(sys.argv[2], sys.argv[3]))
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
