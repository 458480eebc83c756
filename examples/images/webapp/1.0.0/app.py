"""webapp: a tiny HTTP app shipped as a scaleset image version (stdlib only).

GET / names the version and instance; GET /health is the application health
probe; PUT and GET /data/<name> write and read a file on the first data disk.
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = json.loads(Path("image.json").read_text())["version"]
INSTANCE = os.environ.get("SCALESET_INSTANCE_ID", "unknown")
DISKS = [d for d in os.environ.get("SCALESET_DATA_DISKS", "").split(os.pathsep) if d]


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: a load balancer's probe keeps its connection instead of opening one a probe
    # (every reply carries Content-Length, so the connection can stay open).
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/":
            page = f"<!doctype html><title>webapp {VERSION}</title>" \
                   f"<h1>webapp {VERSION}</h1><p>instance {INSTANCE}</p>\n"
            self.reply(200, page, "text/html; charset=utf-8")
        elif self.path == "/health":
            status, state = self.health()
            self.reply(status, json.dumps({"ApplicationHealthState": state}), "application/json")
        elif self.path.startswith("/data/"):
            self.data()
        else:
            self.reply(404, "not found\n")

    def do_PUT(self):
        if self.path.startswith("/data/"):
            return self.data()
        self.reply(404, "not found\n")

    def health(self):
        return 200, "Healthy"

    def data(self):
        name = self.path.removeprefix("/data/")
        if not name or "/" in name or ".." in name:
            return self.reply(400, "a data file name may not be empty or hold '/' or '..'\n")
        if not DISKS:
            return self.reply(409, "this instance has no data disk\n")
        path = Path(DISKS[0]) / name
        if self.command == "PUT":
            path.write_bytes(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.reply(201, f"stored {name}\n")
        elif path.is_file():
            self.reply(200, path.read_bytes(), "application/octet-stream")
        else:
            self.reply(404, f"no data file {name}\n")

    def reply(self, status, body, content_type="text/plain; charset=utf-8"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass  # probes arrive every few seconds: keep the console log readable


class Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    ip = os.environ.get("SCALESET_PRIVATE_IP", "127.0.0.1")
    port = int(os.environ.get("WEBAPP_PORT", "8080"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Server((ip, port), Handler) as server:
        print(f"webapp {VERSION} listening on {ip}:{port}", flush=True)
        server.serve_forever()
