"""The trainer's stage: ``train``, ``run(store, settings, *, force)`` on every rank."""
