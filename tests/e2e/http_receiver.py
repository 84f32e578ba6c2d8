#!/usr/bin/env python3
"""Two local endpoints for the HTTP alert sink's end-to-end test.

http_receiver.py DIR: writes DIR/ports ("COLLECTOR BLACKHOLE"), then serves until killed:
- the collector answers every POST 200 and appends its body as one line to DIR/posts;
- the black hole accepts connections into its backlog and never answers: a sink that
  waited for it would hold up whatever waited on the sink.
"""
import http.server
import os
import socket
import sys

out = sys.argv[1]


class Collector(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(os.path.join(out, "posts"), "ab") as posts:
            posts.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


black_hole = socket.socket()
black_hole.bind(("127.0.0.1", 0))
black_hole.listen(128)
server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
with open(os.path.join(out, "ports.tmp"), "w") as ports:
    ports.write(f"{server.server_port} {black_hole.getsockname()[1]}\n")
os.rename(os.path.join(out, "ports.tmp"), os.path.join(out, "ports"))
server.serve_forever()
