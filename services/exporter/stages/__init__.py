"""The exporter's stages: ``export`` and ``serve``, each ``run(store, settings, *, force)``."""
