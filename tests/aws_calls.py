"""Every AWS call the code under test makes, recorded where AWS would see it: at the endpoint.

:class:`RecordingMotoServer` is moto's ``ThreadedMotoServer`` behind a WSGI middleware that
notes, for each request, the access key that signed it (which is how AWS tells principals
apart), the service and the operation (matched against botocore's service model, the model
the SDKs are generated from), the parameters authorization depends on (bucket and key, table,
queue, job definition, job id, tags) and the status it got. Presigned URLs are recorded like
any other request: they act with the rights of the key that signed them.
"""

from __future__ import annotations

import io
import json
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qs

import botocore.session
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class AwsCall:
    key_id: str
    region: str
    service: str  # the signing name: s3, dynamodb, batch
    operation: str  # botocore's operation name
    params: dict[str, Any] = field(hash=False)
    status: int = 0


@cache
def _model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def _template(path: str) -> re.Pattern[str]:
    """``/{Bucket}/{Key+}`` -> a regex with one named group per label (``+``: may hold '/')."""
    out, pos = "", 0
    for m in re.finditer(r"\{(\w+)(\+?)\}", path):
        out += re.escape(path[pos : m.start()]) + (f"(?P<{m[1]}>.+)" if m[2] else f"(?P<{m[1]}>[^/]+)")
        pos = m.end()
    return re.compile(f"^{out}{re.escape(path[pos:])}/?$")


def rest_operation(service: str, method: str, path: str, query: dict[str, str], headers: dict[str, str]):
    """The operation of a REST request: same method and URI template, every literal query
    part and every required query/header member present; the most specific one wins."""
    model = _model(service)
    found: list[tuple[int, str, dict[str, str]]] = []
    for name in model.operation_names:
        op = model.operation_model(name)
        if op.http["method"] != method:
            continue
        uri_path, _, uri_query = op.http["requestUri"].partition("?")
        match = _template(uri_path).match(path)
        if match is None:
            continue
        literal = parse_qs(uri_query, keep_blank_values=True)
        if any(k not in query or (v[0] and query[k] != v[0]) for k, v in literal.items()):
            continue
        score, ok = len(literal), True
        for member in op.input_shape.required_members:
            ser = op.input_shape.members[member].serialization
            where, wire = ser.get("location"), ser.get("name", member)
            if where == "querystring":
                ok, score = ok and wire in query, score + 1
            elif where == "header":
                ok, score = ok and wire.lower() in headers, score + 1
        if ok:
            found.append((score, name, match.groupdict()))
    if not found:
        return f"unknown:{method} {path}", {}
    found.sort(key=lambda f: -f[0])
    if len(found) > 1 and found[0][0] == found[1][0]:
        return f"ambiguous:{found[0][1]}|{found[1][1]}", {}
    return found[0][1], found[0][2]


def _body(environ: dict) -> bytes:
    """Read the request body and put it back for the application."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    data = stream.read(length) if length else stream.read()
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    return data


def _describe(environ: dict) -> tuple[AwsCall | None, bool]:
    """The call (without status) and whether its response body is needed."""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
    credential = _CREDENTIAL.search(headers.get("authorization", "")) or _CREDENTIAL.search(
        "Credential=" + query.get("X-Amz-Credential", "")
    )
    if credential is not None:
        key_id, _, region, service = credential.groups()
    elif "AWSAccessKeyId" in query:  # a SigV2 presigned URL: S3 only, no region in it
        key_id, region, service = query["AWSAccessKeyId"], "", "s3"
    else:
        return None, False  # unsigned: moto's own API (/moto-api/reset, ...)
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    params: dict[str, Any] = {}
    protocol = _model(service).metadata["protocol"]
    if protocol == "json":
        operation = headers.get("x-amz-target", ".").split(".", 1)[1]
        params = json.loads(_body(environ) or b"{}")
    elif protocol in ("query", "ec2"):
        params = {k: v[0] for k, v in parse_qs(_body(environ).decode()).items()}
        operation = params.pop("Action", query.get("Action", "?"))
    else:
        operation, params = rest_operation(service, method, path, query, headers)
        if service == "s3" and operation == "DeleteObjects":
            root = ET.fromstring(_body(environ))
            params["Keys"] = [e.text for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Key"]
        elif _model(service).metadata["protocol"] == "rest-json":
            params.update(json.loads(_body(environ) or b"{}"))
    call = AwsCall(key_id=key_id, region=region, service=service, operation=operation, params=params)
    return call, service == "batch" and operation == "SubmitJob"


class CallRecorder:
    """WSGI middleware: records each signed request, then hands it to the application."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[AwsCall] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Any) -> Any:
        call, keep_body = _describe(environ)
        if call is None:
            return self.app(environ, start_response)
        status: list[int] = []

        def recording_start(code: str, headers: list, exc_info: Any = None) -> Any:
            status.append(int(code.split()[0]))
            return start_response(code, headers, exc_info)

        result = self.app(environ, recording_start)
        if keep_body:  # SubmitJob: the new job's ARN is in the response
            body = b"".join(result)
            result = [body]
            if status and status[0] < 300:
                call.params["response"] = json.loads(body)
        with self._lock:
            self.calls.append(AwsCall(**{**call.__dict__, "status": status[0] if status else 0}))
        return result

    def by_key(self, key_ids: set[str]) -> list[AwsCall]:
        with self._lock:
            return [c for c in self.calls if c.key_id in key_ids]


class RecordingMotoServer(ThreadedMotoServer):
    """``ThreadedMotoServer`` whose requests all pass through one :class:`CallRecorder`."""

    def __init__(self, ip_address: str, port: int) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self.recorder = CallRecorder(DomainDispatcherApplication(create_backend_app))

    def _server_entry(self) -> None:
        self._server = make_server(
            self._ip_address, self._port, self.recorder, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()
