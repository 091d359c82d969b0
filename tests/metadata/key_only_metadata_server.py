#!/usr/bin/env python3
"""A key-only http metadata server following Mooncake's protocol, for tests.

It speaks only what Mooncake's http metadata server speaks (and what deployments
point engines at): GET, PUT and DELETE on one path with ?key=<k>. GET answers 200
with the value as the body or 404; PUT stores the body and answers 200; DELETE
answers 200, or 404 when the key is missing. There are no extensions: no prefix
listing and no batch endpoint, so the engine must fall back to storing each
segment as one whole value (docs/metadata.md, "http"). It is written here from
that protocol description; it is not Mooncake's code.

Any other path answers 404; other methods on the path answer 405, or, with
--post_status, every POST answers that status (frameworks differ in which of 404
and 405 an unrouted POST gets). In memory only; prints "listening on
http://HOST:PORT" once it serves, and exits 0 on SIGTERM or SIGINT.
"""

import argparse
import http.server
import signal
import sys
import threading
import urllib.parse


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}

    def get(self, key):
        with self.lock:
            return self.values.get(key)

    def put(self, key, value):
        with self.lock:
            self.values[key] = value

    def delete(self, key):
        with self.lock:
            return self.values.pop(key, None) is not None


def make_handler(store, path, post_status, log_requests):
    class Handler(http.server.BaseHTTPRequestHandler):
        # HTTP/1.1 so that "Expect: 100-continue" (curl, large bodies) is answered.
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            if log_requests:
                sys.stderr.write("%s\n" % (fmt % args))

        def answer(self, status, body=b"", extra_headers=()):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra_headers:
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(body)

        def key(self):
            """The ?key= of a request on the path; None after answering otherwise."""
            url = urllib.parse.urlsplit(self.path)
            if url.path != path:
                self.answer(404, b"not found")
                return None
            keys = urllib.parse.parse_qs(url.query, keep_blank_values=True).get("key")
            if not keys or not keys[0]:
                self.answer(400, b"missing key")
                return None
            return keys[0]

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def do_GET(self):
            key = self.key()
            if key is None:
                return
            value = store.get(key)
            if value is None:
                self.answer(404, b"metadata not found")
            else:
                self.answer(200, value)

        def do_PUT(self):
            key = self.key()
            if key is None:
                return
            store.put(key, self.body())
            self.answer(200, b"metadata updated")

        def do_DELETE(self):
            key = self.key()
            if key is None:
                return
            if store.delete(key):
                self.answer(200, b"metadata deleted")
            else:
                self.answer(404, b"metadata not found")

        def do_POST(self):
            self.body()  # read it, so the connection stays in step
            if post_status:
                self.answer(post_status, b"no such route")
            elif urllib.parse.urlsplit(self.path).path == path:
                self.answer(405, b"method not allowed", [("Allow", "GET, PUT, DELETE")])
            else:
                self.answer(404, b"not found")

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--path", default="/metadata")
    parser.add_argument("--post_status", type=int, choices=[404, 405], default=0)
    parser.add_argument("--log_requests", action="store_true")
    args = parser.parse_args()

    handler = make_handler(Store(), args.path, args.post_status, args.log_requests)
    try:
        server = http.server.ThreadingHTTPServer((args.host, args.port), handler)
    except OSError as e:
        print("cannot listen on %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 1
    server.daemon_threads = True

    def stop(_signum, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("listening on http://%s:%d" % (args.host, server.server_address[1]), flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
