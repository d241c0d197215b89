"""Remote build contexts, as Kaniko takes them: a tarball over HTTPS, in S3, GCS or Azure Blob.

``--context`` values (the archive may be tar, tar.gz, tar.bz2, tar.xz or tar.zst):

- ``https://host/path/ctx.tar.gz`` (a path ending in ``.tar``, ``.tar.gz``, ``.tgz``, ...; other
  ``https://`` URLs are git repositories). ``#sha256:HEX`` after the URL checks the download.
  TLS is verified against certifi's CA bundle, or the bundle ``REQUESTS_CA_BUNDLE`` or
  ``CURL_CA_BUNDLE`` names; ``HTTPS_PROXY``/``NO_PROXY`` apply.
- ``s3://bucket/key`` (``pip install 'trustbuild[s3]'``): AWS credentials from the environment
  as the AWS SDK finds them; ``S3_ENDPOINT`` and ``S3_FORCE_PATH_STYLE=true`` as in Kaniko.
- ``gs://bucket/object`` (``trustbuild[gcs]``): application default credentials;
  ``STORAGE_EMULATOR_HOST`` selects an emulator (anonymous).
- ``https://ACCOUNT.blob.core.windows.net/container/blob`` (``trustbuild[azure]``): a SAS token
  in the URL, else ``AZURE_STORAGE_ACCESS_KEY`` (Kaniko's), else ``AZURE_STORAGE_CONNECTION_STRING``
  for the same account (which may name another endpoint, e.g. Azurite).

A bucket URL without an object name means ``context.tar.gz`` (Kaniko's default). Downloads are
streamed to a temporary file, capped at ``TRUSTBUILD_MAX_CONTEXT_BYTES`` (default 4 GiB), then
extracted by the tar context's safe extractor and deleted. Query strings (presigned URLs, SAS
tokens) never reach messages or the build record.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from trustbuild.errors import ContextError

__all__ = ["remote_kind", "download_remote_context", "max_context_bytes", "public_url"]

DEFAULT_OBJECT = "context.tar.gz"
_ARCHIVE = re.compile(r"\.(tar|tgz|tar\.(gz|bz2|xz|zst|zstd))$", re.IGNORECASE)
_AZURE_HOST = re.compile(r"^([a-z0-9]{3,24})\.blob\.core\.(windows\.net|chinacloudapi\.cn|"
                         r"usgovcloudapi\.net|cloudapi\.de)$")
_CHUNK = 1 << 20
_TIMEOUT = (30, 300)


def max_context_bytes() -> int:
    """The download cap (``TRUSTBUILD_MAX_CONTEXT_BYTES``, default 4 GiB)."""
    raw = os.environ.get("TRUSTBUILD_MAX_CONTEXT_BYTES", "").strip()
    return int(raw) if raw.isdigit() else 4 << 30


def public_url(url: str) -> str:
    """``url`` without credentials, query (presigned signatures, SAS tokens) or fragment."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def remote_kind(spec: str) -> str | None:
    """``https``, ``s3``, ``gs``, ``azure`` or None (not a remote tarball context)."""
    if spec.startswith("s3://"):
        return "s3"
    if spec.startswith("gs://"):
        return "gs"
    if spec.startswith("https://"):
        parts = urlsplit(spec.partition("#")[0])
        if _AZURE_HOST.match(parts.hostname or ""):
            return "azure"
        if _ARCHIVE.search(parts.path):
            return "https"
    return None


def _bucket_and_object(spec: str, scheme: str) -> tuple[str, str]:
    rest = spec[len(scheme) + 3:]
    bucket, _, name = rest.partition("/")
    if not bucket:
        raise ContextError(f"build context {spec!r}: expected {scheme}://BUCKET/OBJECT")
    return bucket, name or DEFAULT_OBJECT


class _Sink:
    """Writes chunks to ``path`` with a size cap and a sha256."""

    def __init__(self, path: Path, *, what: str, limit: int) -> None:
        self.path, self.what, self.limit = path, what, limit
        self.size = 0
        self.sha256 = hashlib.sha256()
        self._f = open(path, "wb")  # noqa: SIM115 - closed in close()

    def check_size(self, announced: int | None) -> None:
        if announced is not None and announced > self.limit:
            raise ContextError(f"build context {self.what} is {announced} bytes, more than the "
                               f"{self.limit} allowed (TRUSTBUILD_MAX_CONTEXT_BYTES)")

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        if self.size > self.limit:
            raise ContextError(f"build context {self.what} is larger than the {self.limit} "
                               "bytes allowed (TRUSTBUILD_MAX_CONTEXT_BYTES)")
        self.sha256.update(chunk)
        self._f.write(chunk)
        return len(chunk)

    def write_all(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            if chunk:
                self.write(chunk)

    def close(self) -> None:
        self._f.close()


class _Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...


def _read_chunks(stream: _Readable) -> Iterator[bytes]:
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return
        yield chunk


def _fetch_https(url: str, sink: _Sink) -> None:
    from trustbuild.registry.httpclient import HTTP_ERRORS, download

    try:
        ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        with download(url, timeout=_TIMEOUT, verify=ca or True) as resp:
            if resp.status_code != 200:
                raise ContextError(f"build context {sink.what}: HTTP {resp.status_code} "
                                   f"{resp.reason}")
            length = resp.headers.get("Content-Length")
            sink.check_size(int(length) if length and length.isdigit() else None)
            sink.write_all(resp.iter_content(_CHUNK))
            if length and length.isdigit() and sink.size != int(length):
                raise ContextError(f"build context {sink.what}: got {sink.size} of {length} "
                                   "bytes (truncated download)")
    except HTTP_ERRORS as exc:
        raise ContextError(f"build context {sink.what}: {type(exc).__name__}: "
                           f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"\?[^\s'\"]*", "?...", text)  # no query strings (signatures) in messages


def _need(module: str, extra: str, scheme: str) -> ModuleType:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ContextError(f"{scheme} build contexts need {module.split('.')[0]}: "
                           f"pip install 'trustbuild[{extra}]'") from None


def _fetch_s3(spec: str, sink: _Sink) -> None:
    boto3 = _need("boto3", "s3", "s3://")
    botocore_exc = _need("botocore.exceptions", "s3", "s3://")
    bucket, key = _bucket_and_object(spec, "s3")
    kwargs: dict[str, object] = {}
    endpoint = os.environ.get("S3_ENDPOINT")
    if endpoint:
        kwargs["endpoint_url"] = endpoint
        if os.environ.get("S3_FORCE_PATH_STYLE", "").lower() == "true":
            config = _need("botocore.config", "s3", "s3://")
            kwargs["config"] = config.Config(s3={"addressing_style": "path"})
    try:
        client = boto3.client("s3", **kwargs)
        obj = client.get_object(Bucket=bucket, Key=key)
        sink.check_size(obj.get("ContentLength"))
        body = obj["Body"]
        try:
            sink.write_all(_read_chunks(body))
        finally:
            body.close()
    except (botocore_exc.BotoCoreError, botocore_exc.ClientError) as exc:
        raise ContextError(f"build context {spec}: {_first_line(exc)}") from None


def _fetch_gs(spec: str, sink: _Sink) -> None:
    storage = _need("google.cloud.storage", "gcs", "gs://")
    gexc = _need("google.api_core.exceptions", "gcs", "gs://")
    bucket_name, name = _bucket_and_object(spec, "gs")
    try:
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            gcreds = _need("google.auth.credentials", "gcs", "gs://")
            client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "emulator"),
                                    credentials=gcreds.AnonymousCredentials())
        else:
            client = storage.Client()
        blob = client.bucket(bucket_name).get_blob(name)
        if blob is None:
            raise ContextError(f"build context {spec}: no such object")
        sink.check_size(blob.size)
        blob.download_to_file(sink)
    except gexc.GoogleAPIError as exc:
        raise ContextError(f"build context {spec}: {_first_line(exc)}") from None


def _azure_connection(account: str) -> str | None:
    cs = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
    fields = dict(p.split("=", 1) for p in cs.split(";") if "=" in p)
    return cs if fields.get("AccountName") == account else None


def _fetch_azure(spec: str, sink: _Sink) -> None:
    blob_mod = _need("azure.storage.blob", "azure", "Azure Blob")
    aexc = _need("azure.core.exceptions", "azure", "Azure Blob")
    parts = urlsplit(spec)
    m = _AZURE_HOST.match(parts.hostname or "")
    assert m is not None
    account = m.group(1)
    container, _, name = parts.path.lstrip("/").partition("/")
    if not container:
        raise ContextError(f"build context {public_url(spec)}: expected "
                           "https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB")
    name = name or DEFAULT_OBJECT
    try:
        key = os.environ.get("AZURE_STORAGE_ACCESS_KEY")
        conn = _azure_connection(account)
        if parts.query:  # SAS token in the URL
            client = blob_mod.BlobClient.from_blob_url(urlunsplit(
                (parts.scheme, parts.netloc, f"/{container}/{name}", parts.query, "")))
        elif key:
            client = blob_mod.BlobClient(f"https://{parts.netloc}", container, name,
                                         credential={"account_name": account, "account_key": key})
        elif conn:
            client = blob_mod.BlobClient.from_connection_string(conn, container, name)
        else:
            raise ContextError(f"build context {public_url(spec)}: set AZURE_STORAGE_ACCESS_KEY "
                               "(or give a SAS URL)")
        stream = client.download_blob()
        sink.check_size(stream.size)
        sink.write_all(stream.chunks())
    except aexc.AzureError as exc:
        raise ContextError(f"build context {public_url(spec)}: {_first_line(exc)}") from None


def download_remote_context(spec: str, dest: Path) -> tuple[Path, str]:
    """Download the archive ``spec`` names into ``dest``; its path and the source to record."""
    kind = remote_kind(spec)
    if kind is None:
        raise ContextError(f"{public_url(spec)!r} is not a remote context")
    url, _, fragment = spec.partition("#")
    want = None
    if fragment:
        if kind != "https" or not re.fullmatch(r"sha256:[0-9a-f]{64}", fragment):
            raise ContextError(f"build context {public_url(url)}: the only fragment allowed is "
                               "#sha256:HEX (the archive's digest) on https:// tarballs")
        want = fragment
    shown = public_url(url)
    sink = _Sink(dest / "context.tar", what=shown, limit=max_context_bytes())
    try:
        {"https": lambda: _fetch_https(url, sink), "s3": lambda: _fetch_s3(url, sink),
         "gs": lambda: _fetch_gs(url, sink), "azure": lambda: _fetch_azure(url, sink)}[kind]()
    finally:
        sink.close()
    got = f"sha256:{sink.sha256.hexdigest()}"
    if want is not None and got != want:
        raise ContextError(f"build context {shown}: digest {got}, expected {want}")
    return sink.path, (f"{shown}#{got}" if kind == "https" else shown)
