"""The system checks, through ``call_command("check")`` as ``manage.py check`` runs them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings
from django.urls import include, path, re_path
from statefun_django import conf
from statefun_django.views import AsyncStatefunView, StatefunView

from statefun_core.testing import wire
from statefun_core.testing.endpoint import GREETER, NEW


def check(statefun: Any) -> str:
    """What ``manage.py check`` says with ``STATEFUN = statefun`` (``...`` for no setting)."""
    out = io.StringIO()
    settings = {} if statefun is ... else {"STATEFUN": statefun}
    with override_settings(**settings):
        if statefun is ...:
            from django.conf import settings as django_settings

            del django_settings.STATEFUN
        try:
            call_command("check", stdout=out, stderr=out)
        except SystemCheckError as error:
            return str(error)
    return out.getvalue()


def test_the_app_is_labelled_statefun_and_tags_its_checks() -> None:
    from django.apps import apps
    from django.core.checks import registry

    assert apps.get_app_config("statefun").name == "statefun_django"
    assert "statefun" in registry.registry.tags_available()


def test_a_correct_setting_passes() -> None:
    assert "no issues" in check({"FUNCTIONS": "tests.functions.functions"})


@pytest.mark.parametrize(
    "statefun", [..., {}, {"FUNCTIONS": None}, {"FUNCTIONS": []}, "tests.functions.functions"]
)
def test_missing_functions_is_e001(statefun: Any) -> None:
    assert "statefun.E001" in check(statefun)


def test_a_check_says_what_is_wrong_in_its_own_words() -> None:
    report = check("tests.functions.functions")
    assert "?: (statefun.E001) STATEFUN must be a dict, not a str\n" in report
    assert "statefun.W001" not in report  # a str's letters are not unknown keys


@pytest.mark.parametrize("path", ["tests.nowhere.functions", "tests.functions.nothing", "nodots"])
def test_unimportable_path_is_e002(path: str) -> None:
    report = check({"FUNCTIONS": path})
    assert "statefun.E002" in report
    assert path in report


def test_a_module_named_instead_of_its_functions_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "__init__.py").write_text("")
    (tmp_path / "proj" / "fns.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("proj.fns", "tests.functions"):  # not imported yet (E002), imported (E003)
        report = check({"FUNCTIONS": module})
        hint = f"name the StatefulFunctions in the module, such as '{module}.functions'"
        assert hint in report, report


def test_a_path_with_a_colon_is_told_to_use_a_dot() -> None:
    """``module:attribute``, as gunicorn, Flask (statefun-flask's ``STATEFUN_FUNCTIONS``) and
    entry points write it: Django's import_string alone says the module has no attribute."""
    report = check({"FUNCTIONS": "tests.functions:functions"})
    assert "statefun.E002" in report
    assert "write it with dots: 'tests.functions.functions'" in report, report


@pytest.mark.parametrize(
    "path", ["tests.nowhere.functions", "tests.functions.nothing", "tests.functions.not_functions"]
)
def test_only_a_module_gets_the_module_hint(path: str) -> None:
    """A path that imports nothing, or names a value that is not a module, is not told to
    name the StatefulFunctions in a module."""
    report = check({"FUNCTIONS": path})
    assert "statefun.E00" in report and "name the StatefulFunctions" not in report, report


def test_not_a_stateful_functions_is_e003() -> None:
    report = check({"FUNCTIONS": "tests.functions.not_functions"})
    assert "statefun.E003" in report
    assert "dict" in report


def test_a_typename_in_two_collections_is_e004() -> None:
    report = check({"FUNCTIONS": ["tests.functions.functions", "tests.functions.duplicate"]})
    assert "statefun.E004" in report
    assert "com.example.fns/greeter" in report


def test_each_bad_entry_is_reported() -> None:
    report = check({"FUNCTIONS": ["tests.nowhere.functions", "tests.functions.not_functions"]})
    assert "statefun.E002" in report
    assert "statefun.E003" in report


def test_an_unknown_key_is_w001() -> None:
    report = check({"FUNCTIONS": "tests.functions.functions", "FUNCTION": "typo"})
    assert "statefun.W001" in report
    assert "'FUNCTION'" in report


def test_an_unknown_key_is_w001_in_any_mapping() -> None:
    statefun = MappingProxyType({"FUNCTIONS": "tests.functions.functions", "FUNCTION": "typo"})
    report = check(statefun)
    assert "statefun.W001" in report and "'FUNCTION'" in report


def test_an_unknown_key_is_w001_also_beside_an_error() -> None:
    report = check({"FUNCTION": "tests.functions.functions"})  # FUNCTIONS misspelt
    assert "statefun.E001" in report and "unknown key 'FUNCTION'" in report


def test_a_flag_of_0_or_1_reads_as_a_bool() -> None:
    report = check({"FUNCTIONS": "tests.functions.functions", "ASYNC": 0, "ENDPOINTS": 1})
    assert "statefun.E007" not in report


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("ASYNC", "no", """STATEFUN["ASYNC"] must be True or False or None, not 'no'"""),
        ("ASYNC", 2, "not 2"),
        ("ENDPOINTS", "false", """STATEFUN["ENDPOINTS"] must be True or False, not 'false'"""),
        ("ENDPOINTS", None, "not None"),
    ],
)
def test_a_flag_that_is_not_a_bool_is_e007(key: str, value: Any, says: str) -> None:
    report = check({"FUNCTIONS": "tests.functions.functions", key: value})
    assert "statefun.E007" in report and says in report


def test_both_flags_wrong_are_both_named() -> None:
    """Not one per run of ``manage.py check``."""
    report = check({"FUNCTIONS": "tests.functions.functions", "ASYNC": "yes", "ENDPOINTS": "no"})
    assert """STATEFUN["ASYNC"] must be True or False or None, not 'yes'""" in report, report
    assert """STATEFUN["ENDPOINTS"] must be True or False, not 'no'""" in report, report


def test_djangos_default_upload_limit_is_w003() -> None:
    assert "statefun.W003" not in check({"FUNCTIONS": "tests.functions.functions"})  # 64 KiB
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2_621_440):
        report = check({"FUNCTIONS": "tests.functions.functions"})
    assert "statefun.W003" in report and "Django's default 2.5 MB" in report


@pytest.mark.parametrize("value", ["32MB", "33554432", 32.5, True])
def test_an_upload_limit_that_is_not_a_number_of_bytes_is_e008(value: Any) -> None:
    """Read from the environment as a string, Django compares it with each body's length: every
    request with a body, the runtime's included, fails (500)."""
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=value):
        report = check({"FUNCTIONS": "tests.functions.functions"})
    says = f"DATA_UPLOAD_MAX_MEMORY_SIZE must be an int (bytes) or None, not {value!r}"
    assert "statefun.E008" in report and says in report, report


@pytest.mark.parametrize("value", [None, 0, 32 * 1024 * 1024])
def test_an_upload_limit_of_bytes_or_none_passes(value: Any) -> None:
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=value):
        assert "statefun.E008" not in check({"FUNCTIONS": "tests.functions.functions"})


def test_checks_can_be_silenced() -> None:
    with override_settings(SILENCED_SYSTEM_CHECKS=["statefun.E003"]):
        assert "no issues" in check({"FUNCTIONS": "tests.functions.not_functions"})


@pytest.mark.parametrize(
    "limits",
    [{"request_bytes": 1024}, {"request_bytes": None, "outgoing_per_batch": 10}, None],
)
def test_valid_limits_pass(limits: Any) -> None:
    assert "no issues" in check({"FUNCTIONS": "tests.functions.functions", "LIMITS": limits})


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        (1024, "not a int"),
        ({"request_size": 1024}, "request_size"),
        ({"request_bytes": "1 MB"}, "request_bytes"),
        ({"invocations_per_batch": -1}, "invocations_per_batch"),
    ],
)
def test_invalid_limits_are_e005(limits: Any, says: str) -> None:
    output = check({"FUNCTIONS": "tests.functions.functions", "LIMITS": limits})
    assert "statefun.E005" in output and says in output


def test_an_endpoint_served_only_with_a_trailing_slash_is_w002() -> None:
    with override_settings(ROOT_URLCONF="tests.project.urls_with_slash"):
        report = check({"FUNCTIONS": "tests.functions.functions"})
    assert "statefun.W002" in report
    assert "served at /statefun/ but not at /statefun" in report
    assert 'urlpatterns = [*statefun_urls("statefun")]' in report


class IncludedUnderAPrefix:
    urlpatterns = [path("api/statefun/", include("statefun_django.urls"))]


def test_w002_gives_the_routes_own_path() -> None:
    with override_settings(ROOT_URLCONF=IncludedUnderAPrefix):
        report = check({"FUNCTIONS": "tests.functions.functions"})
    assert "served at /api/statefun/ but not at /api/statefun" in report
    assert 'urlpatterns = [*statefun_urls("api/statefun")]' in report, report


@pytest.mark.parametrize(
    "urlconf", ["tests.project.urls", "tests.project.urls_flat", "tests.project.urls_no_slash"]
)
def test_the_documented_routes_pass_the_url_check(urlconf: str) -> None:
    with override_settings(ROOT_URLCONF=urlconf):
        report = check({"FUNCTIONS": "tests.functions.functions"})
    assert "statefun.W002" not in report and "no issues" in report


def test_an_endpoint_at_the_root_passes_the_url_check() -> None:
    with override_settings(ROOT_URLCONF="tests.project.urls_root"):
        report = check({"FUNCTIONS": "tests.functions.functions"})
    assert "statefun.W002" not in report and "no issues" in report


def deploy_check(**settings: Any) -> str:
    """What ``manage.py check --deploy`` says of the statefun checks with these settings."""
    out = io.StringIO()
    with override_settings(ROOT_URLCONF="tests.project.urls_flat", **settings):
        try:
            call_command("check", "--deploy", "--tag", "statefun", stdout=out, stderr=out)
        except SystemCheckError as error:
            return str(error)
    return out.getvalue()


SECURE_MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", *django_settings.MIDDLEWARE]


def test_ssl_redirect_of_the_endpoint_is_w004_on_deploy() -> None:
    """``check --deploy`` asks for SECURE_SSL_REDIRECT, whose 301 the runtime does not follow
    when it reaches the endpoint over plain http."""
    report = deploy_check(SECURE_SSL_REDIRECT=True, MIDDLEWARE=SECURE_MIDDLEWARE)
    assert "statefun.W004" in report
    assert "SECURE_SSL_REDIRECT redirects the runtime's POST to /statefun" in report
    assert 'SECURE_REDIRECT_EXEMPT = [r"^statefun/?$"]' in report, report
    # off, or without the middleware that redirects, or the plain check: nothing to say
    assert "statefun.W004" not in deploy_check(MIDDLEWARE=SECURE_MIDDLEWARE)
    assert "statefun.W004" not in deploy_check(SECURE_SSL_REDIRECT=True)
    with override_settings(SECURE_SSL_REDIRECT=True, MIDDLEWARE=SECURE_MIDDLEWARE):
        assert "statefun.W004" not in check({"FUNCTIONS": "tests.functions.functions"})


def test_the_endpoint_exempt_from_ssl_redirect_as_w004_says_passes_and_is_served() -> None:
    exempt = {
        "SECURE_SSL_REDIRECT": True,
        "MIDDLEWARE": SECURE_MIDDLEWARE,
        "SECURE_REDIRECT_EXEMPT": [r"^statefun/?$"],
    }
    assert "statefun.W004" not in deploy_check(**exempt)
    body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    with override_settings(ROOT_URLCONF="tests.project.urls_flat", **exempt):
        client = Client()
        for url in ("/statefun", "/statefun/"):
            response = client.post(url, body, content_type="application/octet-stream")
            assert response.status_code == 200, url
        assert client.get("/statefunny").status_code == 301  # the project's pages redirect


def test_prepend_www_is_w005_as_it_redirects_the_runtimes_post() -> None:
    body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    with override_settings(PREPEND_WWW=True, ALLOWED_HOSTS=["testserver", "www.testserver"]):
        report = check({"FUNCTIONS": "tests.functions.functions"})
        assert "statefun.W005" in report and "PREPEND_WWW redirects the runtime's POST" in report
        client = Client()
        response = client.post("/statefun", body, content_type="application/octet-stream")
        assert (response.status_code, response["Location"]) == (
            301,
            "http://www.testserver/statefun",
        )
        www = client.post(
            "/statefun", body, content_type="application/octet-stream", HTTP_HOST="www.testserver"
        )
        assert www.status_code == 200
    assert "statefun.W005" not in check({"FUNCTIONS": "tests.functions.functions"})
    without_common = [m for m in django_settings.MIDDLEWARE if not m.endswith("CommonMiddleware")]
    with override_settings(PREPEND_WWW=True, MIDDLEWARE=without_common):
        assert "statefun.W005" not in check({"FUNCTIONS": "tests.functions.functions"})


PROXY = {"SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")}


def test_ssl_redirect_behind_a_tls_proxy_is_w004_saying_when_it_redirects() -> None:
    """With SECURE_PROXY_SSL_HEADER, Django still redirects a POST without the proxy's header
    (a runtime that reaches the app directly): the warning stays, and says when it applies."""
    report = deploy_check(SECURE_SSL_REDIRECT=True, MIDDLEWARE=SECURE_MIDDLEWARE, **PROXY)
    assert "statefun.W004" in report
    assert "unless it comes through the proxy over https (X-Forwarded-Proto: https" in report
    assert "a runtime that reaches the app directly" in report
    assert 'SECURE_REDIRECT_EXEMPT = [r"^statefun/?$"]' in report
    assert 'SILENCED_SYSTEM_CHECKS = ["statefun.W004"]' in report
    body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    redirect = {"SECURE_SSL_REDIRECT": True, "MIDDLEWARE": SECURE_MIDDLEWARE, **PROXY}
    with override_settings(ROOT_URLCONF="tests.project.urls_flat", **redirect):
        client = Client()
        direct = client.post("/statefun", body, content_type="application/octet-stream")
        proxied = client.post(
            "/statefun",
            body,
            content_type="application/octet-stream",
            headers={"X-Forwarded-Proto": "https"},
        )
    assert direct.status_code == 301
    assert proxied.status_code == 200


class RoutedByHand:
    """A URLconf that routes the view under a name of the project's own, with the slash only."""

    urlpatterns = [path("fns/", StatefunView.as_view(), name="fns")]


class RoutedByHandInAnInclude:
    urlpatterns = [path("api/", include([path("fns/", AsyncStatefunView.as_view())]))]


@pytest.mark.parametrize(
    ("urlconf", "url"), [(RoutedByHand, "/fns"), (RoutedByHandInAnInclude, "/api/fns")]
)
def test_an_endpoint_routed_by_hand_with_the_slash_only_is_w002(urlconf: Any, url: str) -> None:
    """It was not checked: only the routes statefun_urls and the include name were."""
    with override_settings(ROOT_URLCONF=urlconf):
        report = check({"FUNCTIONS": "tests.functions.functions"})
        # what the warning says: the runtime's POST to the path without the slash fails
        response = Client().post(url, b"", content_type="application/octet-stream")
    assert response.status_code == 301
    assert "statefun.W002" in report
    assert f"served at {url}/ but not at {url}" in report
    assert f'path("{url[1:]}", view) beside path("{url[1:]}/", view)' in report


class RoutedByHandAtBothPaths:
    urlpatterns = [
        path("fns", StatefunView.as_view()),
        path("fns/", StatefunView.as_view(), name="fns"),
        re_path(r"^other/?$", StatefunView.as_view()),
    ]


def test_an_endpoint_routed_by_hand_at_both_paths_passes_the_url_check() -> None:
    with override_settings(ROOT_URLCONF=RoutedByHandAtBothPaths):
        assert "no issues" in check({"FUNCTIONS": "tests.functions.functions"})


class IncludedUnderAnAlternation:
    """A prefix Django does not reverse (an alternation): normalize() makes nothing of it."""

    urlpatterns = [
        re_path(
            r"^(?:v1|v2)/",
            include([path("fns", StatefunView.as_view()), path("fns/", StatefunView.as_view())]),
        )
    ]


def test_a_route_django_does_not_reverse_is_no_endpoint_path() -> None:
    """Read as "fns/" without its prefix, it was a W002 for /fns, which nothing serves."""
    with override_settings(ROOT_URLCONF=IncludedUnderAnAlternation):
        response = Client().post("/v2/fns", b"", content_type="application/octet-stream")
        assert response.status_code == 400  # served there: an empty body is no batch
        assert conf.endpoint_paths() == []
        assert "no issues" in check({"FUNCTIONS": "tests.functions.functions"})


def test_an_endpoint_routed_by_hand_is_w004_when_redirected() -> None:
    redirect = {"SECURE_SSL_REDIRECT": True, "MIDDLEWARE": SECURE_MIDDLEWARE}
    with override_settings(ROOT_URLCONF=RoutedByHandAtBothPaths, **redirect):
        out = io.StringIO()
        with pytest.raises(SystemCheckError) as raised:
            call_command(
                "check", "--deploy", "--tag", "statefun", "--fail-level", "WARNING", stdout=out
            )
    report = str(raised.value)
    assert "redirects the runtime's POST to /fns over http" in report
    assert "redirects the runtime's POST to /other over http" in report
    assert 'SECURE_REDIRECT_EXEMPT = [r"^fns/?$"]' in report


class NamedAtBothPaths:
    """A URLconf that names both routes: the URL name reverses to the last, with its slash."""

    urlpatterns = [
        path("statefun", StatefunView.as_view(), name="statefun-endpoint"),
        path("statefun/", StatefunView.as_view(), name="statefun-endpoint"),
    ]


def test_an_endpoint_named_at_both_its_paths_passes_the_url_check() -> None:
    with override_settings(ROOT_URLCONF=NamedAtBothPaths):
        report = check({"FUNCTIONS": "tests.functions.functions"})
    assert "statefun.W002" not in report and "no issues" in report


class BuildsTheHandler:
    """A URLconf that builds the handler as it loads: it raises the setting's error."""

    @property
    def urlpatterns(self) -> list[Any]:
        conf.get_handler()
        return []


def test_a_urlconf_failing_on_the_setting_leaves_it_to_the_settings_check() -> None:
    """``manage.py check --tag statefun`` (Django's own URL check would raise)."""
    out = io.StringIO()
    urlconf = override_settings(ROOT_URLCONF=BuildsTheHandler(), STATEFUN={})
    with urlconf, pytest.raises(SystemCheckError, match=r"statefun\.E001"):
        call_command("check", "--tag", "statefun", stdout=out, stderr=out)


def test_a_state_of_a_disabled_type_plugin_is_e006(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example plugin's Decimal type: resolved when it is on, E006 when it is off."""
    pytest.importorskip("statefun_slow_batches")
    assert "no issues" in check({"FUNCTIONS": "tests.functions.decimal_functions"})
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", "slow-batches")
    report = check({"FUNCTIONS": "tests.functions.decimal_functions"})
    assert "statefun.E006" in report
    assert "'bank/account', state 'balance'" in report
    assert "decimal.Decimal" in report and "disabled plugins: slow-batches" in report


def test_the_app_reports_it_at_start_up(tmp_path: Any) -> None:
    """A fresh process: ``django.setup()`` logs it before any request or command."""
    (tmp_path / "e006_settings.py").write_text(
        "from tests.project.settings import *\n"
        "STATEFUN = {'FUNCTIONS': 'tests.functions.decimal_functions'}\n"
    )
    env = {
        **os.environ,
        "STATEFUN_DISABLED_PLUGINS": "slow-batches",
        "DJANGO_SETTINGS_MODULE": "e006_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parents[1])]),
    }
    script = "import django; django.setup()"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert "statefun: the handler cannot be built: function 'bank/account'" in done.stderr


@pytest.mark.parametrize("installed", [True, False])
def test_the_endpoint_served_without_the_app_warns_that_nothing_is_checked(
    tmp_path: Any, installed: bool
) -> None:
    """Without "statefun_django" in INSTALLED_APPS the endpoint works, but no check runs and
    the handler is built by the first request: a STATEFUN mistake passed ``manage.py check``
    and failed every request. Said (a fresh process) when the URLconf is loaded."""
    (tmp_path / "no_app_settings.py").write_text(
        "from tests.project.settings import *\n"
        f"INSTALLED_APPS = {['statefun_django'] if installed else []!r}\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "no_app_settings",
        "PYTHONPATH": os.pathsep.join(
            [str(tmp_path), str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    script = "import django; django.setup(); from django.urls import resolve; resolve('/statefun/')"
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    warned = 'statefun_django is not in INSTALLED_APPS: the endpoint is served, but "manage.py'
    assert (warned in done.stderr) is not installed, done.stdout + done.stderr


# --- a fresh process: the URLconf first loaded under a bad setting ---------------------------

PACKAGE_ROOT = Path(__file__).parents[1]

BAD_SETTINGS = {
    "E001-no-functions": ({}, "statefun.E001"),
    "E001-not-a-dict": (["tests.functions.functions"], "statefun.E001"),
    "E002": ({"FUNCTIONS": "tests.functions.nope"}, "statefun.E002"),
    "E003": ({"FUNCTIONS": "tests.functions.not_functions"}, "statefun.E003"),
    "E004": (
        {"FUNCTIONS": ["tests.functions.functions", "tests.functions.duplicate"]},
        "statefun.E004",
    ),
    "E005": (
        {"FUNCTIONS": "tests.functions.functions", "LIMITS": {"request_bytes": -1}},
        "statefun.E005",
    ),
    "E006": ({"FUNCTIONS": "tests.functions.decimal_functions"}, "statefun.E006"),
}


def fresh_process(
    tmp_path: Path, statefun: Any, urlconf: str, *args: str, disabled: str = "slow-batches"
) -> subprocess.CompletedProcess[str]:
    """``python <args>`` in a new process, with the test project's settings but ``STATEFUN``
    and ``ROOT_URLCONF`` (and by default the example plugin disabled, for statefun.E006)."""
    (tmp_path / "fresh_settings.py").write_text(
        "from tests.project.settings import *\n"
        f"STATEFUN = {statefun!r}\n"
        f"ROOT_URLCONF = {urlconf!r}\n"
    )
    env = {
        **os.environ,
        "STATEFUN_DISABLED_PLUGINS": disabled,
        "DJANGO_SETTINGS_MODULE": "fresh_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PACKAGE_ROOT)]),
    }
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("urlconf", ["tests.project.urls_flat", "tests.project.urls_no_slash"])
@pytest.mark.parametrize(("statefun", "check_id"), BAD_SETTINGS.values(), ids=list(BAD_SETTINGS))
def test_manage_py_check_reports_a_bad_setting(
    tmp_path: Path, urlconf: str, statefun: Any, check_id: str
) -> None:
    """Reported as a system check, not raised from the URLconf (which ``check`` loads)."""
    done = fresh_process(tmp_path, statefun, urlconf, "-m", "django", "check")
    assert check_id in done.stderr
    assert "Traceback" not in done.stderr
    assert done.returncode == 1


@pytest.mark.parametrize("urlconf", ["tests.project.urls_flat", "tests.project.urls_no_slash"])
@pytest.mark.parametrize(
    "statefun", [{}, ["tests.functions.functions"]], ids=["no-functions", "list"]
)
def test_the_projects_other_urls_answer_while_the_setting_is_bad(
    tmp_path: Path, urlconf: str, statefun: Any
) -> None:
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "response = Client().get('/statefunny')\n"
        "print(response.status_code, response.content.decode())\n"
    )
    done = fresh_process(tmp_path, statefun, urlconf, "-c", script)
    assert done.stdout == "200 the project's own view\n", done.stderr


def test_with_endpoints_off_the_projects_own_route_at_a_plugins_path_is_served(
    tmp_path: Path,
) -> None:
    pytest.importorskip("statefun_slow_batches")  # the example plugin, whose path it is
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "response = Client().get('/slow-batches')\n"
        "print(response.status_code, response.content.decode())\n"
    )
    statefun = {"FUNCTIONS": "tests.functions.functions", "ENDPOINTS": False}
    done = fresh_process(tmp_path, statefun, "tests.project.urls_root", "-c", script, disabled="")
    assert done.stdout == "200 the project's own view\n", done.stderr
    statefun["ENDPOINTS"] = True  # the plugin's endpoint then
    done = fresh_process(tmp_path, statefun, "tests.project.urls_root", "-c", script, disabled="")
    assert done.stdout.startswith("200 {"), done.stderr


def test_a_plugin_endpoint_at_the_endpoint_itself_is_e006(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the prefix, a plugin's ``/`` is the function endpoint's URL: never answered."""
    from statefun_core.testing.packaging import install_distribution

    monkeypatch.syspath_prepend(str(tmp_path))
    install_distribution(
        tmp_path,
        "fake-root-page",
        {"root-page": "fake_root_page"},
        {
            "fake_root_page": (
                "from statefun_core.plugins import Endpoint, EndpointResponse, hookimpl\n"
                "@hookimpl\n"
                "def statefun_endpoints():\n"
                "    return [Endpoint('GET', '/', lambda h: EndpointResponse(200, {}, b''))]\n"
            )
        },
    )
    try:
        report = check({"FUNCTIONS": "tests.functions.functions"})
        assert "statefun.E006" in report
        assert "'root-page' contributes the endpoint GET / where" in report
        assert "no issues" in check({"FUNCTIONS": "tests.functions.functions", "ENDPOINTS": False})
    finally:
        sys.modules.pop("fake_root_page", None)
