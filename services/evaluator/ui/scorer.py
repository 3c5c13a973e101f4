"""The scorer the Compare page applies to a fresh answer: the same one as ``als-lm eval score``.

Built once, on first use: MiniLM and the fabrication lexicon of the training corpus (the latest
``process`` run's ``corpus.txt``) take seconds to load, and every request shares them.
"""

from __future__ import annotations

import logging
import threading

from services.evaluator import score
from services.evaluator.scoring.fabrication import Lexicon, fabricated
from services.evaluator.scoring.facts import FactScorer
from services.evaluator.ui.handlers import Verdict
from services.evaluator.ui.settings import UISettings
from shared import runs
from shared.runs import RunNotFound
from shared.schemas.eval import BenchmarkItem
from shared.store import ArtifactStore

log = logging.getLogger(__name__)


class AnswerScorer:
    def __init__(self, settings: UISettings, store: ArtifactStore):
        self.settings, self.store = settings, store
        self._built: tuple[FactScorer, Lexicon] | None = None
        self._lock = threading.Lock()

    def _get(self) -> tuple[FactScorer, Lexicon]:
        with self._lock:
            if self._built is None:
                try:
                    process = runs.latest(self.store, "process")
                    corpus = runs.fetch(self.store, process.output("corpus.txt"),
                                        self.settings.work_dir / "ui" / process.run_id / "corpus.txt")
                    texts = score.corpus_documents(corpus)
                except RunNotFound:
                    log.warning("no process run: fabrication is judged against the curated entity list only")
                    texts = ()
                self._built = score.build(self.settings.eval, texts)
            return self._built

    def __call__(self, item: BenchmarkItem | None, answer: str) -> Verdict:
        facts_scorer, lexicon = self._get()
        facts = facts_scorer.judge(item.question, item.key_facts, answer) if item else []
        return Verdict(facts, fabricated(answer, lexicon))
