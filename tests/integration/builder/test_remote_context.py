"""Remote build contexts as Kaniko takes them, each against a local server: an HTTPS tarball
(our TLS server with a test CA), S3 (moto's server), GCS (gcp-storage-emulator) and Azure Blob
(Azurite from npm)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fixtures.registry import _make_ca_and_cert, free_port

from trustbuild.builder.context import ContextError, open_context
from trustbuild.cli.main import main

REPO = Path(__file__).parents[3]
AZURITE = REPO / "tests" / "emulators" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")  # Azurite's well-known development account key


def _archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVE = _archive({"Dockerfile": b"FROM scratch\nCOPY hello.txt /hello.txt\n",
                    "hello.txt": b"hello from afar\n", "sub/inner.txt": b"inner\n"})
DIGEST = "sha256:" + hashlib.sha256(ARCHIVE).hexdigest()


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    for _ in range(300):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"emulator exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# ------------------------------------------------------------------------------ https

class _Files(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        data = self.files.get(self.path.split("?", 1)[0])
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    d = tmp_path_factory.mktemp("https")
    ca, cert, key = _make_ca_and_cert(d, cn="context")
    _Files.files = {"/ctx/app.tar.gz": ARCHIVE, "/ctx/big.tar.gz": ARCHIVE}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", ca
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_https_tarball_builds(https_server: tuple[str, Path], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    base, ca = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    url = f"{base}/ctx/app.tar.gz?X-Amz-Signature=do-not-log-me#{DIGEST}"
    rc = main(["build", "--context", url, "--no-push", "--oci-layout-path",
               str(tmp_path / "layout"), "--log-format", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    record = json.loads(out)["record"]
    assert record["context_source"] == f"{base}/ctx/app.tar.gz#{DIGEST}"
    assert "do-not-log-me" not in out + err


def test_https_tarball_checks_digest_size_and_status(https_server: tuple[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    base, ca = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    with open_context(f"{base}/ctx/app.tar.gz") as ctx:
        assert (ctx.root / "sub/inner.txt").read_bytes() == b"inner\n"
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ContextError, match=f"digest {DIGEST}, expected {wrong}"):
        open_context(f"{base}/ctx/app.tar.gz#{wrong}")
    with pytest.raises(ContextError, match="HTTP 404") as exc:
        open_context(f"{base}/ctx/missing.tar.gz?sig=secret-sig")
    assert "secret-sig" not in str(exc.value)
    monkeypatch.setenv("TRUSTBUILD_MAX_CONTEXT_BYTES", "64")
    with pytest.raises(ContextError, match="more than the 64 allowed"):
        open_context(f"{base}/ctx/big.tar.gz")


def test_https_tls_is_verified(https_server: tuple[str, Path],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ca = https_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(ContextError, match="SSLCertVerificationError: .*certificate verify failed"):
        open_context(f"{base}/ctx/app.tar.gz")


def test_https_repository_urls_stay_git() -> None:
    from trustbuild.builder.remote_context import remote_kind

    assert remote_kind("https://github.com/o/r.git#main") is None
    assert remote_kind("https://example.com/ctx.tgz") == "https"
    assert remote_kind("https://example.com/a/ctx.tar.zst?x=1") == "https"
    assert remote_kind("https://acct01.blob.core.windows.net/c/ctx.tar.gz") == "azure"


# ------------------------------------------------------------------------------ S3 (moto)

@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        _wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_s3_context(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "S3_ENDPOINT": moto_s3,
                 "S3_FORCE_PATH_STYLE": "true"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3 = boto3.client("s3", endpoint_url=moto_s3)
    s3.create_bucket(Bucket="ctx-bucket")
    s3.put_object(Bucket="ctx-bucket", Key="apps/app.tar.gz", Body=ARCHIVE)
    s3.put_object(Bucket="ctx-bucket", Key="context.tar.gz", Body=ARCHIVE)
    with open_context("s3://ctx-bucket/apps/app.tar.gz") as ctx:
        assert (ctx.root / "hello.txt").read_bytes() == b"hello from afar\n"
        assert ctx.source == "s3://ctx-bucket/apps/app.tar.gz"
    with open_context("s3://ctx-bucket", sub_path="sub") as ctx:  # Kaniko's default object
        assert (ctx.root / "inner.txt").exists()
    with pytest.raises(ContextError, match=r"s3://ctx-bucket/nothing.tar.gz: .*NoSuchKey"):
        open_context("s3://ctx-bucket/nothing.tar.gz")


# ------------------------------------------------------------------------------ GCS

@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    pytest.importorskip("google.cloud.storage")
    server_mod = pytest.importorskip("gcp_storage_emulator.server")
    port = free_port()
    server = server_mod.create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        _wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_gcs_context(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    bucket = client.create_bucket("ctx-bucket")
    bucket.blob("apps/app.tar.gz").upload_from_string(ARCHIVE)
    with open_context("gs://ctx-bucket/apps/app.tar.gz") as ctx:
        assert (ctx.root / "hello.txt").read_bytes() == b"hello from afar\n"
        assert ctx.source == "gs://ctx-bucket/apps/app.tar.gz"
    with pytest.raises(ContextError, match="no such object"):
        open_context("gs://ctx-bucket/missing.tar.gz")


# ------------------------------------------------------------------------------ Azure Blob

@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("azure.storage.blob")
    if not AZURITE.exists() or shutil.which("node") is None:
        pytest.skip("azurite not installed (npm install in tests/emulators, see .ci/setup.sh)")
    port = free_port()
    d = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen([str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                             "--location", str(d), "--silent", "--skipApiVersionCheck",
                             "--loose"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        _wait_port(port, proc)
        yield (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
               f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_azure_blob_context(azurite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.storage.blob import BlobServiceClient

    monkeypatch.delenv("AZURE_STORAGE_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    svc = BlobServiceClient.from_connection_string(azurite)
    svc.create_container("ctx")
    svc.get_blob_client("ctx", "apps/app.tar.gz").upload_blob(ARCHIVE)
    url = "https://devstoreaccount1.blob.core.windows.net/ctx/apps/app.tar.gz"
    with open_context(url) as ctx:
        assert (ctx.root / "hello.txt").read_bytes() == b"hello from afar\n"
        assert ctx.source == url
    with pytest.raises(ContextError, match="BlobNotFound|does not exist"):
        open_context("https://devstoreaccount1.blob.core.windows.net/ctx/missing.tar.gz")
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    with pytest.raises(ContextError, match="set AZURE_STORAGE_ACCESS_KEY"):
        open_context(url)


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "boto3", None)  # "import boto3" raises ImportError
    with pytest.raises(ContextError, match=r"pip install 'trustbuild\[s3\]'"):
        open_context("s3://b/ctx.tar.gz")
