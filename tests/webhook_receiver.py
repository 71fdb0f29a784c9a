"""A webhook receiver for tests: a real HTTP server on loopback, run as its own
process so a test can kill it and start it again on the same port.

    python tests/webhook_receiver.py PORT LOG [--fail N] [--status CODE] [--delay SECONDS] [--redirect URL]
                                     [--trickle SECONDS]

Every POST is appended to LOG as one JSON line ``{"headers", "body", "status"}``
(before answering, so a receiver killed mid-answer still shows what came). The
first N POSTs (counted over every run, from LOG) are answered CODE (500); the
others 204. ``--delay`` waits before answering; ``--redirect`` answers 307 to URL;
``--trickle`` answers 200 with a body of 1,000 bytes sent one every SECONDS
(each read of the client's is quick, the whole answer slow).
"""

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("log", type=Path)
    parser.add_argument("--fail", type=int, default=0)
    parser.add_argument("--status", type=int, default=500)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--redirect")
    parser.add_argument("--trickle", type=float)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen = len(args.log.read_text().splitlines()) if args.log.exists() else 0
            status = 307 if args.redirect else 200 if args.trickle else (args.status if seen < args.fail else 204)
            with args.log.open("a") as log:
                log.write(json.dumps({"headers": dict(self.headers), "body": body.decode(), "status": status}) + "\n")
            time.sleep(args.delay)
            if args.trickle:
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(1000):
                    self.wfile.write(b".")
                    self.wfile.flush()
                    time.sleep(args.trickle)
                return
            self.send_response(status)
            if args.redirect:
                self.send_header("Location", args.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
