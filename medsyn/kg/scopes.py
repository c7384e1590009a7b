"""Where a query parameter must be bound: the WHERE groups (scopes) of a SPARQL query that use each variable.

A ``VALUES`` row at the start of the outer WHERE group does not reach into a sub-SELECT: the sub-query is evaluated
on its own and only its projected variables join the outer group. So ``?source`` used only inside
``{ SELECT DISTINCT ?code WHERE { ?a ms:source ?source ... } }`` must be bound in that inner group. (pyoxigraph's
``substitutions=`` has the same limit: it binds outer projection variables only, and exists on no remote endpoint.)

This is a lexer, not a parser: it skips comments, strings and IRIs, tracks braces, and treats the group that
opens right before a ``SELECT`` as a sub-query. That is all the structure scoping needs.

>>> q = "SELECT ?c WHERE { { SELECT ?c WHERE { ?a <urn:s> ?src ; <urn:d> ?c } } ?c <urn:n> ?n }"
>>> sites = binding_sites(q, ["src", "n"])
>>> sorted((q[:pos].count("{"), names) for pos, names in sites.items())  # by '{' number: outer WHERE, sub-query's
[(0, ['n']), (2, ['src'])]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from medsyn.errors import InputError

_IRI = re.compile(r"<[^<>\"{}|^`\\\s]*>")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# SPARQL VARNAME: letters, digits, '_' and the PN_CHARS ranges (approximated by everything above U+00B6).
_VAR = re.compile(r"[?$]([A-Za-z0-9_\u00b7-\U000effff]+)")


@dataclass
class _Scope:
    parent: _Scope | None
    depth: int  # brace depth of the group that wraps a sub-query (-1 for the query itself)
    where: int | None = None  # index of the '{' opening its WHERE group
    variables: set[str] = field(default_factory=set)


def binding_sites(sparql: str, names: Sequence[str]) -> dict[int, list[str]]:
    """For each WHERE-group '{' index, the parameters (of ``names``) used in that scope.

    Raises InputError for a parameter the query never uses, and for a query with no WHERE group.
    """
    scopes = _scopes(sparql)
    if scopes[0].where is None:
        raise InputError("cannot bind parameters: the query has no WHERE group")
    sites: dict[int, list[str]] = {}
    for name in names:
        used = [s for s in scopes if name in s.variables]
        if not used:
            raise InputError(f"the query does not use the parameter ?{name}; nothing to bind it to")
        for s in used:
            if s.where is None:
                raise InputError(f"cannot bind ?{name}: its (sub-)query has no WHERE group")
            sites.setdefault(s.where, []).append(name)
    return sites


def _scopes(sparql: str) -> list[_Scope]:
    top = _Scope(None, -1)
    scopes = [top]
    current = top
    stack: list[_Scope | None] = []  # per open brace: the sub-query scope it wraps, if any
    construct = where_kw = False
    last_word = ""
    i, n = 0, len(sparql)
    while i < n:
        c = sparql[i]
        if c == "#":
            j = sparql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c in "\"'":
            i = _skip_string(sparql, i)
            last_word = ""
            continue
        if c == "<" and (m := _IRI.match(sparql, i)):
            i = m.end()
            last_word = ""
            continue
        if c == "{":
            depth = len(stack)
            if (
                current.where is None
                and depth == current.depth + 1
                and (current is not top or where_kw or not construct)
            ):
                current.where = i
            stack.append(None)
        elif c == "}":
            if stack and stack.pop() is not None and current.parent is not None:
                current = current.parent
        elif c in "?$" and (m := _VAR.match(sparql, i)):
            owner = current
            # ``(expr AS ?v)`` in a sub-query's projection binds ?v for the enclosing group, not inside the sub-query.
            if last_word == "AS" and current.where is None and current.parent is not None:
                owner = current.parent
            owner.variables.add(m.group(1))
            i = m.end()
            last_word = ""
            continue
        elif (i == 0 or not (sparql[i - 1].isalnum() or sparql[i - 1] in "_:")) and (m := _WORD.match(sparql, i)):
            word = m.group(0).upper()
            if word == "SELECT" and stack:
                sub = _Scope(current, len(stack) - 1)
                stack[-1] = sub
                scopes.append(sub)
                current = sub
            elif not stack and word == "CONSTRUCT":
                construct = True
            elif not stack and word == "WHERE":
                where_kw = True
            last_word = word
            i = m.end()
            continue
        elif not c.isspace():
            last_word = ""
        i += 1
    return scopes


def _skip_string(sparql: str, i: int) -> int:
    quote = sparql[i]
    if sparql.startswith(quote * 3, i):
        end = sparql.find(quote * 3, i + 3)
        while end > 0 and _escaped(sparql, end):
            end = sparql.find(quote * 3, end + 1)
        return len(sparql) if end < 0 else end + 3
    j = i + 1
    while j < len(sparql) and sparql[j] != quote:
        j += 2 if sparql[j] == "\\" else 1
    return j + 1


def _escaped(s: str, pos: int) -> bool:
    backslashes = 0
    while pos - backslashes - 1 >= 0 and s[pos - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


_PNAME = re.compile(r"([A-Za-z][\w.-]*)?:([\w.:%-]*)")


@dataclass(frozen=True)
class Token:
    """One significant token: ``kind`` is word, iri, pname, var or punct; ``depth`` counts the open braces."""

    kind: str
    text: str
    start: int
    depth: int


def tokens(sparql: str) -> list[Token]:
    """The words, IRIs, prefixed names, variables and braces of a query or update (comments and strings skipped).

    >>> [(t.kind, t.text) for t in tokens("SELECT * { SERVICE ex:s { ?s ?p 'SERVICE' } } # SERVICE")][:5]
    [('word', 'SELECT'), ('punct', '*'), ('punct', '{'), ('word', 'SERVICE'), ('pname', 'ex:s')]
    """
    out: list[Token] = []
    depth = 0
    i, n = 0, len(sparql)
    while i < n:
        c = sparql[i]
        if c.isspace():
            i += 1
        elif c == "#":
            j = sparql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c in "\"'":
            i = _skip_string(sparql, i)
            out.append(Token("string", "", i, depth))
        elif c == "<" and (m := _IRI.match(sparql, i)):
            out.append(Token("iri", m.group(0)[1:-1], i, depth))
            i = m.end()
        elif c in "?$" and (m := _VAR.match(sparql, i)):
            out.append(Token("var", m.group(1), i, depth))
            i = m.end()
        elif (m := _PNAME.match(sparql, i)) and m.group(0) and ":" in m.group(0):
            out.append(Token("pname", m.group(0), i, depth))
            i = m.end()
        elif m := _WORD.match(sparql, i):
            out.append(Token("word", m.group(0).upper(), i, depth))
            i = m.end()
        else:
            if c == "{":
                out.append(Token("punct", c, i, depth))
                depth += 1
            elif c == "}":
                depth -= 1
                out.append(Token("punct", c, i, depth))
            else:
                out.append(Token("punct", c, i, depth))
            i += 1
    return out


def prefixes(toks: Sequence[Token]) -> dict[str, str]:
    """``PREFIX p: <iri>`` declarations (the last one of a name wins, as for the parser)."""
    found: dict[str, str] = {}
    for a, b, c in zip(toks, toks[1:], toks[2:], strict=False):
        if a.kind == "word" and a.text == "PREFIX" and b.kind == "pname" and c.kind == "iri":
            found[b.text[:-1]] = c.text
    return found


def remote_targets(sparql: str) -> list[tuple[str, str | None]]:
    """``(keyword, IRI)`` for each ``SERVICE`` and ``LOAD`` (the IRI is None when it is a variable or unknown).

    >>> remote_targets("PREFIX e: <http://h/> SELECT * { SERVICE SILENT e:q { } } ; LOAD <file:///x>")
    [('SERVICE', 'http://h/q'), ('LOAD', 'file:///x')]
    """
    lowered = sparql.lower()
    if "service" not in lowered and "load" not in lowered:  # most queries: no need to lex (the server asks per query)
        return []
    toks = tokens(sparql)
    names = prefixes(toks)
    found: list[tuple[str, str | None]] = []
    for k, tok in enumerate(toks):
        if tok.kind != "word" or tok.text not in ("SERVICE", "LOAD"):
            continue
        nxt = toks[k + 1] if k + 1 < len(toks) else None
        if nxt is not None and nxt.kind == "word" and nxt.text == "SILENT":
            nxt = toks[k + 2] if k + 2 < len(toks) else None
        iri: str | None = None
        if nxt is not None and nxt.kind == "iri":
            iri = nxt.text
        elif nxt is not None and nxt.kind == "pname":
            prefix, _, local = nxt.text.partition(":")
            iri = names[prefix] + local if prefix in names else None
        found.append((tok.text, iri))
    return found


def dataset_clauses(update: str) -> bool:
    """Whether an update names its own dataset (``USING``, ``USING NAMED`` or ``WITH``)."""
    return any(t.kind == "word" and t.text in ("USING", "WITH") and t.depth == 0 for t in tokens(update))


def query_dataset(query: str) -> bool:
    """Whether a query names its own dataset (``FROM`` or ``FROM NAMED``, the only top-level ``FROM``).

    >>> query_dataset("SELECT * FROM NAMED <urn:g> { GRAPH ?g { ?s ?p ?o } }"), query_dataset("ASK { ?from ?p 'FROM' }")
    (True, False)
    """
    if "from" not in query.lower():  # most queries: no need to lex
        return False
    return any(t.kind == "word" and t.text == "FROM" and t.depth == 0 for t in tokens(query))


def where_sites(update: str) -> list[int]:
    """Where ``USING`` clauses go: before each top-level ``WHERE`` that follows a ``DELETE``/``INSERT`` template.

    ``DELETE WHERE { }`` (no template) takes no ``USING``, so a ``WHERE`` right after ``DELETE`` is left out.

    >>> u = "DELETE WHERE { ?s ?p ?o } ; INSERT { ?s ?p 1 } WHERE { ?s ?p ?o }"
    >>> [u[i:i + 5] for i in where_sites(u)]
    ['WHERE']
    """
    toks = tokens(update)
    return [
        t.start
        for k, t in enumerate(toks)
        if t.kind == "word" and t.text == "WHERE" and t.depth == 0 and k > 0 and toks[k - 1].text == "}"
    ]


__all__ = [
    "Token",
    "binding_sites",
    "dataset_clauses",
    "prefixes",
    "query_dataset",
    "remote_targets",
    "tokens",
    "where_sites",
]
