"""The scraper's stage: ``scrape``, one ``run(store, settings, *, force)`` for every ``scrape-*`` source."""
