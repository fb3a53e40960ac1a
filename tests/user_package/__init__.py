"""A user's own package, as the apps import it by ``_target_`` (tests put its folder on PYTHONPATH)."""
