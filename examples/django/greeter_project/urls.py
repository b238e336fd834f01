from django.urls import include, re_path

urlpatterns = [
    # /statefun, with or without the slash: the URL examples/greeter/module.yaml names.
    re_path(r"^statefun/?", include("statefun_django.urls")),
]
