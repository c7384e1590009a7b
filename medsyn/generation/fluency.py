"""Does a note read as a note? Novelty against the requested symptoms and invented words, for the quality filter.

* ``novelty``: share of the note's distinct content words whose lemmas (pymorphy3, every dictionary reading,
  :func:`medsyn.generation.mentions.analyse`) are not among the lemmas of the requested symptoms. 0 is a pure
  restatement: the requested list re-punctuated, reordered, or put after "Жалобы на" (list-framing words such as
  "жалоба", "беспокоить", "наличие" are not content). It measures what a note adds to its prompt, not the form of
  the note: a short real-looking complaint list that adds "рвота" to "тошнота, боль в животе" is novel, a long
  paragraph that repeats the list is not.
* ``nonwords``: the note's words that no dictionary knows: pymorphy3 neither knows the word nor parses it as a
  known word behind a prefix, it is no abbreviation (all capitals, three letters or fewer, digits or Latin letters,
  a listed unit), and its Snowball stem is not in the vocabulary (the requested symptoms' words plus, in a run,
  every word that occurs in at least two of the graph's real notes: :func:`note_vocabulary`; stems, so that
  "эналаприла" is known from "эналаприл"). Medical terms pymorphy3 lacks ("тахипноэ", "пальпируется", drug
  names) are what the vocabulary is for; a word of a single real note is left out because such words are mostly
  typos ("колическтве"). The vocabulary holds only words pymorphy3 does not know, so an invented word whose stem is
  a dictionary word's ("избытокое", stem "избыток") is still flagged.

* ``unseen_phrases``: share of the note's word pairs (two adjacent words of one clause, as written, numbers as
  one token) that none of the graph's real notes holds (:func:`known_phrases`). A small model's word salad is made
  of real words in pairs no clinician writes ("Боли в ресницах", "почечная боль в ногах", "Сон болит"), and its
  agreement errors make pairs of forms that never meet ("левой коленей"); a real complaint reuses the phrasing of
  other real complaints. It judges a note against one corpus's phrasing, so it suits notes meant to read like the
  graph's notes: long visit notes (the authors' GPT-4 set) fail it while plausible, which is why the filter's check
  is off unless asked for.

Agreement errors (adjective-noun case, number, gender) are not checked on their own: see docs/generation.md.

>>> novelty("Жалобы на головную боль; тошноту.", ["тошнота", "головная боль"])
0.0
>>> novelty("Головная боль, тошнота, рвота.", ["тошнота", "головная боль"])
0.25
>>> known = known_phrases(["Боль в горле, кашель.", "Кашель с мокротой."])
>>> unseen_phrases("Боль в горле, кашель с мокротой.", known)
0.0
>>> unseen_phrases("Боль в ресницах, кашель с мокротой.", known)
0.25
>>> nonwords("Избытокое потоотделение, ОРВИ, АД 140/90, ЭКГ без изменений, 5 мг.", ["потоотделение"])
['избытокое']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Container, Iterable, Sequence
from functools import lru_cache

from medsyn.generation.mentions import analyse, known_word, sentences
from medsyn.textsim import STOPWORDS, stem, tokens, words

# Parts of speech that carry no content of their own (pymorphy3 tags of the likeliest reading).
_FUNCTION_POS = frozenset(["PREP", "CONJ", "PRCL", "INTJ", "NPRO"])
# Words that frame a list as a complaint without adding to it ("Жалобы на ...", "Наличие ...", "Пациент отмечает").
_FRAMING = frozenset(
    [
        "жалоба",
        "жаловаться",
        "беспокоить",
        "наличие",
        "пациент",
        "пациентка",
        "больной",
        "симптом",
        "отмечать",
        "предъявлять",
        "также",
    ]
)
# Lower-case abbreviations and units of real notes that are no dictionary words ("ммоль", "табл").
_ABBREVIATIONS = frozenset(
    ["ммоль", "мкмоль", "мкг", "мкме", "мме", "табл", "тбл", "сут", "нед", "мес", "капс", "амп", "хар", "обл", "отд"]
)
_SHORT = 3  # words this short are abbreviations ("мг", "уд", "мин", "рт") or function words


# The filter scores every attempt of a run: per word and per symptom list the answers are pure functions of the
# text, kept in bounded caches (a run's notes reuse most of their words; every attempt of a sample has its list).
@lru_cache(maxsize=200_000)
def _content(word: str) -> bool:
    if word in STOPWORDS or len(word) < 2:
        return False
    w = analyse(word)
    return w.pos not in _FUNCTION_POS and not w.lemmas & _FRAMING


@lru_cache(maxsize=200_000)
def _lemma_keys(word: str) -> frozenset[str]:
    """What identifies a word for novelty: its lemmas and its stem (so a hyphen or a suffix variant still matches)."""
    return analyse(word).lemmas | {stem(word)}


@lru_cache(maxsize=50_000)
def _requested_keys(symptoms: tuple[str, ...]) -> frozenset[str]:
    return frozenset(k for s in symptoms for t in tokens(s) for k in _lemma_keys(t))


@lru_cache(maxsize=50_000)
def _symptom_stems(symptoms: tuple[str, ...]) -> frozenset[str]:
    return frozenset(stem(t) for s in symptoms for t in tokens(s))


def novelty(note: str, symptoms: Sequence[str]) -> float:
    """Share of the note's distinct content words that no requested symptom has (1.0 without content words)."""
    requested = _requested_keys(tuple(symptoms))
    content = {t for t in tokens(note) if _content(t)}
    if not content:
        return 1.0 if not symptoms else 0.0
    new = [t for t in content if not _lemma_keys(t) & requested]
    return len(new) / len(content)


@lru_cache(maxsize=200_000)
def _abbreviation(raw: str) -> bool:
    if not raw.isalpha() or not all("а" <= c <= "я" or c == "ё" for c in raw.lower()):
        return True  # digits or Latin letters: a dose, a lab value, a Latin term
    return len(raw) <= _SHORT or (len(raw) > 1 and raw.isupper()) or raw.lower() in _ABBREVIATIONS


def nonwords(note: str, symptoms: Sequence[str] = (), vocabulary: Collection[str] = ()) -> list[str]:
    """The note's words (lower case, ё as е, in order, once each) that no dictionary knows; ``vocabulary`` holds
    stems of known words beyond pymorphy3's dictionary (:func:`note_vocabulary`)."""
    own = _symptom_stems(tuple(symptoms))
    out: list[str] = []
    for raw in words(note):
        w = raw.lower().replace("ё", "е")
        if w in out or _abbreviation(raw) or stem(w) in own or stem(w) in vocabulary or known_word(w):
            continue
        out.append(w)
    return out


def note_vocabulary(notes: Iterable[str], min_notes: int = 2) -> frozenset[str]:
    """Stems of the words pymorphy3 does not know that occur in at least ``min_notes`` of the given (real) notes."""
    seen: Counter[str] = Counter()
    for text in notes:
        seen.update({t for t in tokens(text) if t.isalpha() and len(t) > _SHORT})
    return frozenset(stem(w) for w, n in seen.items() if n >= min_notes and not known_word(w))


def phrases(text: str) -> set[str]:
    """The text's word pairs: two adjacent words of one clause (a comma or a sentence mark ends it), lower case,
    ё as е, every number as ``#``; a list's neighbouring items are no phrase."""
    out: set[str] = set()
    for sentence in sentences(text):
        prev = None
        for t in sentence:
            if t == ",":
                prev = None
                continue
            t = "#" if t.isdigit() else t
            if prev is not None:
                out.add(f"{prev} {t}")
            prev = t
    return out


def known_phrases(notes: Iterable[str]) -> frozenset[str]:
    """Every word pair (:func:`phrases`) of the given (real) notes."""
    out: set[str] = set()
    for text in notes:
        out |= phrases(text)
    return frozenset(out)


def unseen_phrases(note: str, known: Container[str]) -> float:
    """Share of the note's word pairs that ``known`` lacks (0.0 for a note without a pair)."""
    pairs = phrases(note)
    return sum(p not in known for p in pairs) / len(pairs) if pairs else 0.0
