"""Settings shared by the core's test folders."""

from hypothesis import HealthCheck, settings

# CI machines are small and shared: judge properties by their examples, never by their speed.
settings.register_profile(
    "statefun", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.load_profile("statefun")
