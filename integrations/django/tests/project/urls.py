from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path, resolve
from statefun_django.views import AsyncStatefunView, StatefunView


def endpoint_view_class(request: HttpRequest) -> HttpResponse:
    """Which view class the include picked, for the tests to see from outside the server."""
    return HttpResponse(resolve("/statefun/").func.view_class.__name__)


urlpatterns = [
    re_path(r"^statefun/?", include("statefun_django.urls")),  # /statefun and /statefun/
    # Each view on its own path, so that the tests reach both whatever the include picked
    # (with and without the slash, as the runtime needs: statefun.W002).
    re_path(r"^sync/?$", StatefunView.as_view()),
    re_path(r"^async/?$", AsyncStatefunView.as_view()),
    path("endpoint-view-class/", endpoint_view_class),
]
