"""Storage port over a local directory that plays the bucket: key ``a/b.mp4`` is ``DIR/a/b.mp4``.

Presigned URLs point at the local server's ``/files/<key>`` route, signed with an HMAC of
method, key and expiry so a URL handed out for one object and verb works for nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from vsr_api.adapters.ranged_reader import RangedReader
from vsr_api.ports import ObjectInfo
from vsr_client.api_models import UploadTarget

FILES_ROUTE = "/files/"


class DirStorage:
    def __init__(self, root: Path, base_url: str = "http://127.0.0.1", secret: bytes | None = None) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.base_url = base_url.rstrip("/")
        self.secret = secret or secrets.token_bytes(32)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise ValueError(f"key {key!r} leaves the data directory")
        return path

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def head(self, key: str) -> ObjectInfo | None:
        path = self.path(key)
        return ObjectInfo(key=key, size=path.stat().st_size) if path.is_file() else None

    def open_ranged(self, obj: ObjectInfo) -> RangedReader:
        path = self.path(obj.key)

        def fetch(start: int, end: int) -> bytes:
            with open(path, "rb") as fh:
                fh.seek(start)
                return fh.read(end - start + 1)

        return RangedReader(fetch, obj.size)

    def put_json(self, key: str, data: object) -> None:
        self.write_bytes(key, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def write_bytes(self, key: str, data: bytes) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest)

    def read_json(self, key: str) -> dict | None:
        try:
            return json.loads(self.path(key).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def read_json_under(self, prefix: str) -> list[dict]:
        folder = self.path(prefix)
        out = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):  # being rewritten; next time
                continue
        return out

    # -- presigned URLs served by the local server ---------------------------------------
    def _signature(self, method: str, key: str, expires: int) -> str:
        return hmac.new(self.secret, f"{method}\n{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, method: str, key: str, expires: int = 3600) -> str:
        until = int(time.time()) + expires
        query = urlencode({"expires": until, "signature": self._signature(method, key, until)})
        return f"{self.base_url}{FILES_ROUTE}{quote(key)}?{query}"

    def verify(self, method: str, key: str, expires: str, signature: str) -> bool:
        try:
            until = int(expires)
        except ValueError:
            return False
        good = self._signature(method, key, until)
        return until >= time.time() and hmac.compare_digest(good, signature)

    def download_url(self, key: str, expires: int = 3600) -> str:
        return self.signed_url("GET", key, expires)

    def upload_target(self, key: str, size: int | None, content_type: str, expires: int = 3600) -> UploadTarget:
        # A local file needs no multipart: one streamed PUT of any size.
        return UploadTarget(
            key=key,
            url=self.signed_url("PUT", key, expires),
            headers={"Content-Type": content_type},
            expires_in=expires,
        )
