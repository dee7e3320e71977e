#!/usr/bin/env python3
"""A minimal OTLP/HTTP trace receiver for benchmarks: accepts POST /v1/traces, answers 200 with an
empty ExportTraceServiceResponse, and counts requests and bytes. It does not decode spans (the
benchmark measures the service's cost of exporting, not the receiver's); the tests use a decoding
receiver. Says when it listens; stops on SIGTERM and prints its counts."""
import argparse
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"requests": 0, "bytes": 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    # Keep connections open between exports, as a collector does: with HTTP/1.0 every export
    # would open a new connection, which cost the exporting service ~3 µs of CPU per span.
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        with lock:
            counts["requests"] += 1
            counts["bytes"] += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)

    def stop(*_):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    # The scripts that start it wait for this line (scripts/bench-lib.sh, start_sink).
    print(f"otlp-sink: listening on port {args.port}", file=sys.stderr, flush=True)
    server.serve_forever()
    print(f"otlp-sink: {counts['requests']} export requests, {counts['bytes']} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
