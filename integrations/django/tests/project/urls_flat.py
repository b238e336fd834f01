"""The URLconf the README documents: ``statefun_urls`` beside a route of the project's own."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from statefun_django.urls import statefun_urls


def own(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"the project's own view")


urlpatterns = [*statefun_urls("statefun"), path("statefunny", own)]
