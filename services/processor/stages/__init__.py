"""The processor's stages: ``process`` and ``tokenize``, each ``run(store, settings, *, force)``."""
