"""string_check's operations and text_similarity's metrics, each from the library the field uses for it.

- fuzzy_match: rapidfuzz's `WRatio` (its best of plain, partial and token-order ratios), over 100.
- bleu: NLTK's sentence BLEU (up to 4-grams) with its first smoothing method, so that a short answer
  missing one 4-gram does not score 0; gleu: NLTK's sentence GLEU.
- meteor: NLTK's METEOR. Its synonym stage needs the WordNet corpus, which NLTK downloads on request
  and GXFT never does: where the corpus is installed (`python -m nltk.downloader wordnet`) it is used,
  otherwise METEOR matches exact words and stems only, and scores synonyms as misses.
- rouge_1 … rouge_5, rouge_l: Google's rouge-score (the ROUGE-1.5.5 reimplementation), F-measure.
- cosine: the cosine of the two texts' vectors from the caller's embedding model (grading/run.py asks it
  for every sample at once); validate refuses it where there is none.

Words are split on whitespace after lower-casing, as the metrics' own examples do.
"""

import math
import re
from functools import cache
from typing import Any

from contract.graders import SimilarityMetric, StringCheckOperation


def string_check(value: str, reference: str, operation: StringCheckOperation) -> float:
    if operation == "eq":
        return float(value == reference)
    if operation == "ne":
        return float(value != reference)
    if operation == "like":
        return float(reference in value)
    return float(reference.lower() in value.lower())  # ilike


def _words(text: str) -> list[str]:
    return text.lower().split()


class _NoSynonyms:
    """WordNet's place in NLTK's METEOR, where the corpus is not installed: no word has synonyms."""

    @staticmethod
    def synsets(word: str, *args: Any, **kwargs: Any) -> list:
        return []


@cache
def _wordnet() -> Any:
    import nltk
    from nltk.corpus import wordnet

    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        return _NoSynonyms()
    return wordnet


@cache
def _rouge_scorer(metric: str) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([metric.replace("_", "").replace("rougel", "rougeL")])


def cosine(first: list[float], second: list[float]) -> float:
    norms = math.hypot(*first) * math.hypot(*second)
    return sum(a * b for a, b in zip(first, second, strict=True)) / norms if norms else 0.0


def similarity(value: str, reference: str, metric: SimilarityMetric) -> float:
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz

        return fuzz.WRatio(value, reference) / 100
    if metric == "bleu":
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

        if not _words(value):
            return 0.0
        return float(sentence_bleu([_words(reference)], _words(value),
                                   smoothing_function=SmoothingFunction().method1))
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return float(sentence_gleu([_words(reference)], _words(value)))
    if metric == "meteor":
        from nltk.translate.meteor_score import meteor_score

        return float(meteor_score([_words(reference)], _words(value), wordnet=_wordnet()))
    if re.fullmatch(r"rouge_[1-5l]", metric):
        scorer = _rouge_scorer(metric)
        (score,) = scorer.score(reference, value).values()
        return float(score.fmeasure)
    raise ValueError(f"no metric {metric!r} here")  # cosine: grading/run.py, with the embedding model
