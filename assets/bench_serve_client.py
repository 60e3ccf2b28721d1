"""Load generator for scripts/bench_serve.sh: sends REQUESTS OpenAI-style
embedding requests (one text each, texts from a BEIR corpus in order, cycled)
from CONCURRENCY threads, each with its own keep-alive connection, and prints
one JSON line: requests/s, p50/p90/p99 latency in ms, and failures. Only the
standard library, so the same client measures every server.

Usage: bench_serve_client.py URL PATH CORPUS REQUESTS CONCURRENCY MODEL
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse


def main():
    url, path, corpus, requests, concurrency, model = sys.argv[1:7]
    requests, concurrency = int(requests), int(concurrency)
    texts = []
    for line in open(corpus):
        p = json.loads(line)
        text = ((p.get("title") or "") + ": " + p["text"]) if p.get("title") else p["text"]
        if text.strip():
            texts.append(text)
    host = urllib.parse.urlparse(url)
    latencies, failures = [], []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker():
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=600)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body = json.dumps({"input": [texts[i % len(texts)]], "model": model})
            start = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                ok = response.status == 200 and len(json.loads(data)["data"][0]["embedding"]) > 0
            except Exception as e:  # noqa: BLE001 - any failure counts
                ok, data = False, str(e).encode()
                conn.close()
                conn = http.client.HTTPConnection(host.hostname, host.port, timeout=600)
            elapsed = time.perf_counter() - start
            with lock:
                (latencies if ok else failures).append(elapsed if ok else data[:200].decode(errors="replace"))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()

    def pct(q):
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else None

    print(json.dumps({"requests": requests, "concurrency": concurrency, "seconds": round(wall, 2),
                      "requests_per_second": round(len(latencies) / wall, 1),
                      "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
                      "failures": len(failures), "first_failure": failures[0] if failures else None}))


if __name__ == "__main__":
    main()
