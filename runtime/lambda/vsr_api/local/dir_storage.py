"""Storage port over a local directory that plays the bucket: key ``a/b.mp4`` is ``DIR/a/b.mp4``.

Presigned URLs point at the local server's ``/files/<key>`` route, on the host the request
that asked for them was sent to (``request_origin``), signed with an HMAC of method, key,
expiry and their limits, so a URL handed out for one object and verb works for nothing else.
An upload URL carries the most bytes it may receive (the declared size, else the input
limit) and a nonce that is spent by its first complete upload: it works once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlencode

from vsr_api.adapters.ranged_reader import RangedReader
from vsr_api.local.request_origin import current_origin
from vsr_api.ports import ObjectInfo
from vsr_client.api_models import UploadTarget
from vsr_client.contract import ErrorCode, VsrError

log = logging.getLogger(__name__)

FILES_ROUTE = "/files/"
SIGNATURE = "signature"


class DirStorage:
    def __init__(
        self,
        root: Path,
        base_url: str = "http://127.0.0.1",
        secret: bytes | None = None,
        max_upload_bytes: int = 20 * 1024**3,
        state_dir: Path | None = None,
    ) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.base_url = base_url.rstrip("/")
        self.secret = secret or secrets.token_bytes(32)
        self.max_upload_bytes = max_upload_bytes
        self.spent = (state_dir or self.root / ".vsr-api") / "uploads"

    def path(self, key: str) -> Path:
        """The file of ``key``; ``invalid_key`` when it resolves outside the data directory
        (a symbolic link pointing out of it)."""
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise VsrError(ErrorCode.INVALID_KEY, f"key {key!r} resolves outside the data directory", "key")
        return path

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def key_of(self, path: str) -> str | None:
        """The key of a path inside the data directory (None outside it)."""
        prefix = str(self.root) + os.sep
        return path[len(prefix) :] if path.startswith(prefix) else None

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
    def _signature(self, method: str, key: str, fields: Mapping[str, str]) -> str:
        text = "\n".join([method, key, *(f"{name}={fields[name]}" for name in sorted(fields))])
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def signed_url(self, method: str, key: str, expires: int = 3600, **limits: object) -> str:
        fields = {"expires": str(int(time.time()) + expires), **{k: str(v) for k, v in limits.items()}}
        query = urlencode({**fields, SIGNATURE: self._signature(method, key, fields)})
        return f"{current_origin(self.base_url)}{FILES_ROUTE}{quote(key)}?{query}"

    def verify(self, method: str, key: str, query: Mapping[str, str]) -> dict[str, str] | None:
        """The signed fields of a URL (expiry, limits), or None when forged, altered or expired."""
        fields = {k: v for k, v in query.items() if k != SIGNATURE}
        good = self._signature(method, key, fields)
        if not hmac.compare_digest(good, query.get(SIGNATURE, "")):
            return None
        try:
            if int(fields["expires"]) < time.time():
                return None
        except (KeyError, ValueError):
            return None
        return fields

    def download_url(self, key: str, expires: int = 3600) -> str:
        return self.signed_url("GET", key, expires)

    def upload_target(self, key: str, size: int | None, content_type: str, expires: int = 3600) -> UploadTarget:
        # A local file needs no multipart: one streamed PUT of any size, at most `max` bytes.
        limit = self.max_upload_bytes if size is None else min(size, self.max_upload_bytes)
        return UploadTarget(
            key=key,
            url=self.signed_url("PUT", key, expires, max=limit, nonce=secrets.token_urlsafe(12)),
            headers={"Content-Type": content_type},
            expires_in=expires,
        )

    # -- single use of upload URLs ------------------------------------------------------
    def _spent_path(self, fields: Mapping[str, str]) -> Path:
        return self.spent / f"{fields['expires']}-{fields['nonce']}"

    def claim_upload(self, fields: Mapping[str, str]) -> bool:
        """Take an upload URL for one PUT: False when it was spent (or is being used) already."""
        self.spent.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(self._spent_path(fields), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        return True

    def unclaim_upload(self, fields: Mapping[str, str]) -> None:
        """A PUT that did not complete leaves its URL usable (the SDK retries broken transfers)."""
        self._spent_path(fields).unlink(missing_ok=True)

    def forget_expired_uploads(self) -> int:
        """Drop the records of spent URLs that have expired anyway; how many went."""
        now = time.time()
        gone = 0
        for path in self.spent.glob("*-*") if self.spent.is_dir() else ():
            try:
                if int(path.name.split("-", 1)[0]) < now:
                    path.unlink(missing_ok=True)
                    gone += 1
            except ValueError:
                continue
        return gone
