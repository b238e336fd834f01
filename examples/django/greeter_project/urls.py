from statefun_django.urls import statefun_urls

# /statefun, with or without the slash: the URL examples/greeter/module.yaml names.
urlpatterns = [*statefun_urls("statefun")]
