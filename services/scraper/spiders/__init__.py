"""The corpus spiders, by the name ``als-lm scrape <spider>`` takes."""

from services.scraper.spiders.clinicaltrials import ClinicalTrialsSpider
from services.scraper.spiders.pmc import PmcSpider
from services.scraper.spiders.web import WebSpider
from services.scraper.spiders.wikipedia import WikipediaSpider

SPIDERS = {s.name: s for s in (PmcSpider, ClinicalTrialsSpider, WebSpider, WikipediaSpider)}
