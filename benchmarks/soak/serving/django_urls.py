from statefun_django.urls import statefun_urls

urlpatterns = [*statefun_urls("statefun")]
