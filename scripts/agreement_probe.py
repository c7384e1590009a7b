"""Can slovnet find agreement errors reliably? A measurement, not a filter check (issue 22.2).

    python scripts/agreement_probe.py > probe.txt

For every note of tests/data/note_labels.tsv: natasha 1.6.0's segmenter, slovnet morphology and syntax (the models
ship inside the wheel, offline); an adjective on an ``amod`` arc to a noun whose Case or Number differs, or whose
Gender differs in the singular, is flagged. Prints each note's flags, then flags per 1,000 tokens by source.

Result (docs/generation.md): 160 flags on the 240 notes (own 30.5, GPT-4 12.4, real 16.1 per 1,000 tokens), of
which a reading found about 5 real agreement errors ("постоянное кашель", "переносимому терапии", "Хронический
желчнокаменная болезнь", "среднего тяжести"); the rest are correct phrases with a mis-tagged case (nominative
read as accusative: "Кожные покровы", "тоны сердца", "гнойная мокрота") or wrong arcs over comma lists. At about
3 % precision the check cannot reject notes, so the filter does not use it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from natasha import Doc, NewsEmbedding, NewsMorphTagger, NewsSyntaxParser, Segmenter

from medsyn.evaluation.note_labels import read_labels

TABLE = Path(__file__).resolve().parent.parent / "tests" / "data" / "note_labels.tsv"


class Probe:
    def __init__(self) -> None:
        emb = NewsEmbedding()
        self.segmenter = Segmenter()
        self.morph = NewsMorphTagger(emb)
        self.syntax = NewsSyntaxParser(emb)

    def flags(self, text: str) -> tuple[list[str], int]:
        """(flagged adjective-noun pairs, tokens other than punctuation)."""
        doc = Doc(text)
        doc.segment(self.segmenter)
        doc.tag_morph(self.morph)
        doc.parse_syntax(self.syntax)
        out: list[str] = []
        n = 0
        for sent in doc.sents:
            ids = {t.id: t for t in sent.tokens}
            for tok in sent.tokens:
                n += tok.pos != "PUNCT"
                head = ids.get(tok.head_id)
                if tok.rel != "amod" or tok.pos != "ADJ" or head is None or head.pos != "NOUN":
                    continue
                a, b = tok.feats, head.feats
                bad = [k for k in ("Case", "Number") if k in a and k in b and a[k] != b[k]]
                singular = a.get("Number") == b.get("Number") == "Sing"
                if singular and "Gender" in a and "Gender" in b and a["Gender"] != b["Gender"]:
                    bad.append("Gender")
                if bad:
                    out.append(f"{tok.text} {head.text} {bad}")
        return out, n


def main() -> None:
    probe = Probe()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in read_labels(TABLE):
        flags, n = probe.flags(row.note)
        totals[row.source][0] += len(flags)
        totals[row.source][1] += n
        if flags:
            print(row.line, row.source, row.label, flags)
    for source, (flags, n) in totals.items():
        print(f"{source}: {flags} flags, {n} tokens, {1000 * flags / n:.1f} per 1,000")


if __name__ == "__main__":
    main()
