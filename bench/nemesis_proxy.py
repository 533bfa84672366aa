"""What Squall's Toxiproxy server costs: round trip and throughput, direct vs proxied.

Run: python bench/nemesis_proxy.py   (no docker; 127.0.0.1 only)
Prints human figures, then ONE line of JSON with them.
"""

from __future__ import annotations

import json
import socket
import socketserver
import statistics
import threading
import time

from toxiproxy import Toxiproxy

from squall.nemesis import toxiproxy_process


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


def rtts(addr: tuple[str, int], n: int = 500) -> list[float]:
    out = []
    with socket.create_connection(addr) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            t = time.perf_counter()
            s.sendall(b"x" * 64)
            got = 0
            while got < 64:
                got += len(s.recv(65536))
            out.append(time.perf_counter() - t)
    return out


def throughput(addr: tuple[str, int], total: int = 64 << 20) -> float:
    chunk = b"y" * 65536
    with socket.create_connection(addr) as s:

        def drain() -> None:
            got = 0
            while got < total:
                got += len(s.recv(1 << 20))

        reader = threading.Thread(target=drain)
        t = time.perf_counter()
        reader.start()
        for _ in range(total // len(chunk)):
            s.sendall(chunk)
        reader.join()
        return total / (time.perf_counter() - t) / 1e6


def main() -> None:
    echo = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    echo.daemon_threads = True
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    direct = ("127.0.0.1", echo.server_address[1])
    server = toxiproxy_process.start("bench-proxy", prefer_shopify=False)
    try:
        api = Toxiproxy()
        api.update_api_consumer(server.host, server.port)
        proxy = api.create(upstream=f"127.0.0.1:{direct[1]}", name="bench")
        host, _, port = proxy.listen.rpartition(":")
        proxied = (host, int(port))
        d, p = rtts(direct), rtts(proxied)
        fig = {
            "rtt_direct_us_p50": round(statistics.median(d) * 1e6, 1),
            "rtt_proxied_us_p50": round(statistics.median(p) * 1e6, 1),
            "rtt_proxied_us_p99": round(sorted(p)[int(len(p) * 0.99)] * 1e6, 1),
            "throughput_direct_MBps": round(throughput(direct), 1),
            "throughput_proxied_MBps": round(throughput(proxied), 1),
        }
    finally:
        server.stop()
        echo.shutdown()
    print(
        f"round trip, 64 B: direct {fig['rtt_direct_us_p50']} µs, through the proxy "
        f"{fig['rtt_proxied_us_p50']} µs (p99 {fig['rtt_proxied_us_p99']} µs)"
    )
    print(
        f"throughput: direct {fig['throughput_direct_MBps']} MB/s, through the proxy "
        f"{fig['throughput_proxied_MBps']} MB/s"
    )
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
