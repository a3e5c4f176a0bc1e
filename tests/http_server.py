"""A local HTTP server for download tests: serves bytes by path, 404 otherwise, and can drop a body halfway."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List


class FileServer:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1; paths in ``truncated`` send half their body, then close.

    ``requests`` lists the paths asked for. Call :meth:`stop` (idempotent) to shut it down.
    """

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.truncated: set = set()
        self.requests: List[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.truncated:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self._stopped = False

    def url(self, path: str) -> str:
        return self.base_url + path

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
