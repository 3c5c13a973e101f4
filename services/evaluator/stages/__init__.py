"""The evaluator's stages, each ``run(store, settings, *, force)``: ``rag_index``, ``eval`` (one per
system), ``score``, ``review``, ``report`` and ``experiment``. A stage of several systems reads which
one from ``settings.eval.system``."""
