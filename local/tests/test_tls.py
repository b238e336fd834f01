"""The async transport's TLS files (``trust_cacerts``, ``client_cert``, ``client_key``,
``client_key_password``) against a real HTTPS server that requires a client certificate."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import pytest
import trustme
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from statefun_local import ModuleError, load_module
from statefun_local.transport import CallFailedError, HttpTransport

from statefun_core import protocol
from statefun_core.testing.endpoint import free_port

REPLY = protocol.FromFunction()
REPLY.invocation_result.outgoing_egresses.add(egress_namespace="a", egress_type="out")


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A directory with a CA, a server certificate it signed for 127.0.0.1 and a client
    certificate, its key in PKCS#8 encrypted with the password in ``password.txt``."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client = ca.issue_cert("client.example.org", common_name="client.example.org")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    (tmp_path / "client.key.p8").write_bytes(encrypted)
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    (tmp_path / "password.txt").write_text("s3cret")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca.configure_trust(server)
    server.verify_mode = ssl.CERT_REQUIRED
    pki.server = server  # type: ignore[attr-defined]
    return tmp_path


def module_file(directory: Path, url: str, tls: str) -> Path:
    path = directory / "module.yaml"
    path.write_text(
        "kind: io.statefun.endpoints.v2/http\n"
        f"spec: {{functions: a/*, urlPathTemplate: '{url}', transport: {{call: 1s, {tls}}}}}\n"
    )
    return path


async def call(
    directory: Path, tls: str, server: Optional[ssl.SSLContext] = None
) -> tuple[object, list[str]]:
    """Call a function behind mutual TLS (or behind ``server``) with the module's TLS files:
    (the reply or the error, the client certificates' subjects the server saw)."""
    clients: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = peer["subject"] if peer else ()
        clients.append(dict(entry[0] for entry in subject).get("commonName", ""))
        return web.Response(body=REPLY.SerializeToString(), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_post("/fn", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    context = server if server is not None else pki.server  # type: ignore[attr-defined]
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        module = load_module(module_file(directory, f"https://127.0.0.1:{port}/fn", tls))
        async with HttpTransport() as transport:
            try:
                return await transport.call(module.endpoints[0], "a/b", b""), clients
            except CallFailedError as error:
                return str(error), clients
    finally:
        await runner.cleanup()


MUTUAL = (
    "trust_cacerts: 'file:{dir}/ca.pem', client_cert: {dir}/client.crt, "
    "client_key: 'classpath:client.key.p8', client_key_password: password.txt"
)


def test_a_function_behind_mutual_tls_is_called_with_the_module_files(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(pki)  # a path without a scheme is the process' own, as in the runtime
    reply, clients = asyncio.run(call(pki, MUTUAL.format(dir=pki)))
    assert reply == REPLY
    assert clients == ["client.example.org"]


def test_without_the_ca_the_server_is_not_trusted_and_without_a_client_cert_not_let_in(
    pki: Path,
) -> None:
    reply, clients = asyncio.run(call(pki, "pool_size: 1"))
    assert isinstance(reply, str) and "certificate verify failed" in reply
    reply, clients = asyncio.run(call(pki, f"trust_cacerts: {pki}/ca.pem"))
    # the server trusted (no verify failure), then refused the client without a certificate
    assert isinstance(reply, str) and "certificate verify failed" not in reply
    refused = ("Connection reset", "Server disconnected", "certificate required")  # by version
    assert any(word in reply for word in refused), reply
    assert clients == []  # the function never ran


@pytest.mark.parametrize(
    ("tls", "problem"),
    [
        ("client_cert: '{dir}/client.crt'", "client_cert and client_key go together"),
        ("trust_cacerts: '{dir}/cas.pem'", "spec.transport.trust_cacerts: no file '{dir}/cas.pem'"),
        (
            "trust_cacerts: 'classpath:certs/ca.pem'",
            "no file '{dir}/certs/ca.pem' (classpath: is read beside the module file)",
        ),
        ("trust_cacerts: 'https://example.org/ca.pem'", "must be a file: a path, file: or"),
        ("trust_cacerts: 'c:ca.pem'", "must be a file: a path, file: or"),  # scheme c, to Java
        ("trust_cacerts: '~/ca.pem'", "no file '~/ca.pem' (the runtime does not expand ~)"),
        ("trust_cacerts: '{dir}/my certs/ca.pem'", "is not a URI, which the runtime reads"),
        ("trust_cacerts: '{dir}/password.txt'", "the TLS files do not load: "),
        ("trust_cacerts: '{dir}'", "spec.transport.trust_cacerts: no file '{dir}'"),
        (
            "client_cert: '{dir}/client.crt', client_key: '{dir}/client.key.p8', "
            "client_key_password: '{dir}/newline.txt'",
            "as the runtime reads it: its last line ends)",
        ),
    ],
    ids=[
        "cert without key",
        "no file",
        "classpath",
        "a URL",
        "a one-letter scheme",
        "a tilde",
        "a space",
        "not a CA",
        "a directory",
        "password's newline",
    ],
)
def test_tls_files_that_would_not_load_are_module_problems(
    pki: Path, tls: str, problem: str
) -> None:
    (pki / "newline.txt").write_text("s3cret\n")
    with pytest.raises(ModuleError) as error:
        load_module(module_file(pki, "https://127.0.0.1/fn", tls.format(dir=pki)))
    assert problem.format(dir=pki) in str(error.value)


def test_a_key_the_runtime_cannot_read_is_a_warning(pki: Path) -> None:
    """StateFun 3.3's Netty reads PBES1 keys, not PBES2 ones (tests/e2e/test_tls.py)."""
    tls = (
        f"client_cert: {pki}/client.crt, client_key: {pki}/client.key.p8, "
        f"client_key_password: {pki}/password.txt"
    )
    module = load_module(module_file(pki, "https://127.0.0.1/fn", tls))
    (warning,) = module.warnings
    assert "spec.transport.client_key: encrypted with PBES2" in warning
    pbes1 = subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES", "-in", str(pki / "client.key"),
         "-out", str(pki / "client.key.p8"), "-passout", f"file:{pki}/password.txt"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert pbes1.returncode == 0, pbes1.stderr
    assert load_module(module_file(pki, "https://127.0.0.1/fn", tls)).warnings == []


def test_tls_files_are_read_by_the_async_transport_only(pki: Path) -> None:
    module = load_module(module_file(pki, "https://127.0.0.1/fn", f"trust_cacerts: {pki}/ca.pem"))
    assert module.endpoints[0].tls is not None and module.warnings == []
    okhttp = module_file(pki, "https://127.0.0.1/fn", "type: io.statefun.transports.v1/okhttp")
    okhttp.write_text(okhttp.read_text().replace("}}", f", trust_cacerts: {pki}/ca.pem}}}}"))
    module = load_module(okhttp)
    assert module.endpoints[0].tls is None
    assert any("trust_cacerts: not a key of this kind" in w for w in module.warnings)


def _server(ca: trustme.CA, host: str) -> ssl.SSLContext:
    """A server context with a certificate ``ca`` issued for ``host``, no client cert asked."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(server)
    return server


@pytest.mark.parametrize(
    ("trusted", "host", "says"),
    [
        ("its CA", "127.0.0.1", None),
        ("another CA", "127.0.0.1", "certificate verify failed"),
        ("its CA", "localhost", None),
    ],
    ids=["trusted", "another CA", "another host"],
)
def test_the_server_is_trusted_by_trust_cacerts_only_whatever_its_host_name(
    pki: Path, trusted: str, host: str, says: Optional[str]
) -> None:
    """trust_cacerts replaces the system's CAs, not verification: a server certificate of
    another CA is refused. One for another host than the URL's is taken, as StateFun 3.3's
    Netty 4.1 client takes it (it checks no host name)."""
    ca, other = trustme.CA(), trustme.CA()
    (ca if trusted == "its CA" else other).cert_pem.write_to_path(str(pki / "trusted.pem"))
    reply, clients = asyncio.run(call(pki, f"trust_cacerts: {pki}/trusted.pem", _server(ca, host)))
    if says is None:
        assert reply == REPLY
    else:
        assert isinstance(reply, str) and says in reply, reply
        assert clients == []


def test_tls_files_of_an_http_endpoint_are_ignored_as_by_the_runtime(pki: Path) -> None:
    tls = f"trust_cacerts: {pki}/nowhere.pem, client_cert: {pki}/client.crt"
    module = load_module(module_file(pki, "http://127.0.0.1/fn", tls))
    assert module.endpoints[0].tls is None
    (warning,) = module.warnings
    ignored = "trust_cacerts, client_cert ignored, as by the runtime: the URL is not https"
    assert warning.endswith(f"spec.transport: {ignored}")


def test_an_https_endpoint_without_tls_files_has_no_tls(pki: Path) -> None:
    module = load_module(module_file(pki, "https://127.0.0.1/fn", "pool_size: 1"))
    assert module.endpoints[0].tls is None


def test_a_cert_without_its_key_is_one_problem(pki: Path) -> None:
    with pytest.raises(ModuleError) as error:
        load_module(module_file(pki, "https://127.0.0.1/fn", f"client_cert: '{pki}/client.crt'"))
    [problem] = error.value.problems
    assert "client_cert and client_key go together" in problem


def test_a_password_file_that_cannot_be_read_is_a_module_problem(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = Path.open  # read_text and read_bytes open the file (as root, chmod cannot refuse)

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.name == "password.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    monkeypatch.chdir(pki)
    with pytest.raises(ModuleError, match=r"the TLS files do not load: .*Permission denied") as e:
        load_module(module_file(pki, "https://127.0.0.1/fn", MUTUAL.format(dir=pki)))
    # and no hint about a password's last line, which could not be read
    assert e.value.problems[0].endswith("Permission denied: 'password.txt'"), e.value.problems


def test_a_password_file_not_in_utf8_is_a_module_problem(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(pki)
    (pki / "password.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(ModuleError, match="the TLS files do not load"):
        load_module(module_file(pki, "https://127.0.0.1/fn", MUTUAL.format(dir=pki)))


def test_an_encrypted_key_without_its_password_is_a_module_problem_never_a_prompt(
    pki: Path,
) -> None:
    """Without a password, OpenSSL would ask for it on the terminal and wait."""
    tls = f"client_cert: {pki}/client.crt, client_key: {pki}/client.key.p8"
    with pytest.raises(ModuleError) as error:
        load_module(module_file(pki, "https://127.0.0.1/fn", tls))
    [problem] = error.value.problems
    assert "client_key is encrypted: give its password (client_key_password)" in problem
    missing = f"{tls}, client_key_password: {pki}/nowhere.txt"
    with pytest.raises(ModuleError) as error:
        load_module(module_file(pki, "https://127.0.0.1/fn", missing))
    [problem] = error.value.problems  # the missing file, not a prompt then a second problem
    assert "client_key_password: no file" in problem


@pytest.mark.parametrize(
    ("location", "file"),
    [
        ("classpath:/ca.pem", "ca.pem"),  # the runtime's classpath:/ names the same resource
        ("CLASSPATH:ca.pem", "ca.pem"),  # a URI's scheme, in any case
        ("file://{quoted}/my%20certs/ca.pem", "my certs/ca.pem"),  # a URL's %20 is a space
        ("my%20certs/ca.pem", "my certs/ca.pem"),  # a path is a URL's too
        ("classpath.pem", "classpath.pem"),  # a path that starts with "classpath"
    ],
)
def test_a_tls_file_named_as_the_runtime_names_one(
    pki: Path, monkeypatch: pytest.MonkeyPatch, location: str, file: str
) -> None:
    (pki / "my certs").mkdir()
    for copy in ("my certs/ca.pem", "classpath.pem"):
        shutil.copy(pki / "ca.pem", pki / copy)
    monkeypatch.chdir(pki)
    monkeypatch.setenv("HOME", str(pki))
    tls = f"trust_cacerts: '{location.format(quoted=quote(str(pki)))}'"
    module = load_module(module_file(pki, "https://127.0.0.1/fn", tls))
    found = module.endpoints[0].tls
    assert found is not None and found.trust_cacerts is not None
    assert Path(found.trust_cacerts).resolve() == (pki / file).resolve()


def test_an_unencrypted_key_loads_without_a_password_or_a_warning(pki: Path) -> None:
    """(found unchecked by mutation testing of module.py)"""
    tls = f"client_cert: {pki}/client.crt, client_key: {pki}/client.key"
    module = load_module(module_file(pki, "https://127.0.0.1/fn", tls))
    assert module.warnings == []
    assert module.endpoints[0].tls is not None
    assert module.endpoints[0].tls.client_key == str(pki / "client.key")


def test_what_each_tls_problem_says(pki: Path) -> None:
    """Word for word, at its field (found unchecked by mutation testing of module.py)."""
    where = f"{pki / 'module.yaml'}: document 0 (io.statefun.endpoints.v2/http): spec.transport"
    (pki / "wrong.txt").write_text("wrong")  # the last line does not end: no hint
    (pki / "newline.txt").write_text("wrong\n")
    try:
        ssl.create_default_context().load_cert_chain(
            pki / "client.crt", pki / "client.key.p8", "wrong"
        )
    except ssl.SSLError as error:
        wrong_password = str(error)
    key = f"client_cert: {pki}/client.crt, client_key: {pki}/client.key.p8"
    cases = {
        f"{key}, client_key_password: {pki}/wrong.txt":
            f"{where}: the TLS files do not load: {wrong_password}",
        f"{key}, client_key_password: {pki}/newline.txt":
            f"{where}: the TLS files do not load: {wrong_password} (the password is the whole "
            "file, as the runtime reads it: its last line ends)",
        key: f"{where}: the TLS files do not load: client_key is encrypted: give its password "
             "(client_key_password)",
        f"client_cert: {pki}/client.crt":
            f"{where}: client_cert and client_key go together: mutual TLS needs both",
        f"trust_cacerts: {pki}/cas.pem": f"{where}.trust_cacerts: no file '{pki}/cas.pem'",
        "trust_cacerts: https://example.org/ca.pem": f"{where}.trust_cacerts: must be a file: "
            "a path, file: or classpath:, got 'https://example.org/ca.pem'",
        f"trust_cacerts: '{pki}/my certs/ca.pem'": f"{where}.trust_cacerts: is not a URI, which "
            f"the runtime reads it as: ' ' in '{pki}/my certs/ca.pem' (a space is %20, in a "
            "file: URL)",
    }  # fmt: skip
    for tls, expected in cases.items():
        with pytest.raises(ModuleError) as caught:
            load_module(module_file(pki, "https://127.0.0.1/fn", tls))
        assert caught.value.problems == [expected]
    module = load_module(module_file(pki, "http://127.0.0.1/fn", f"trust_cacerts: {pki}/ca.pem"))
    assert module.warnings == [
        f"{where}: trust_cacerts ignored, as by the runtime: the URL is not https"
    ]
    pbes2 = f"{key}, client_key_password: {pki}/password.txt"
    [warning] = load_module(module_file(pki, "https://127.0.0.1/fn", pbes2)).warnings
    assert warning.startswith(f"{where}.client_key: encrypted with PBES2 (openssl's and ")


def test_tls_files_without_a_url_are_the_missing_url_s_problem(pki: Path) -> None:
    path = pki / "module.yaml"
    spec = f"{{functions: a/*, transport: {{trust_cacerts: {pki}/ca.pem}}}}"
    path.write_text(f"kind: io.statefun.endpoints.v2/http\nspec: {spec}\n")
    with pytest.raises(ModuleError) as caught:
        load_module(path)
    [problem] = caught.value.problems
    assert problem.endswith(": spec.urlPathTemplate: is required"), problem
