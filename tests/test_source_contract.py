"""The contract every knowledge source keeps (pykeen's pattern): one suite, run against each registered source.

Default sources are checked in the session's built store (``kg_store_dir``, built once for the whole suite); the
others are loaded here on top of the register alone, as ``kg build --sources NAME`` builds them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kg_helpers import data_with, read_only
from pyoxigraph import Quad

from medsyn.errors import InputError
from medsyn.kg.importers import REQUIRED, all_source_names, source_spec
from medsyn.kg.importers._common import BuildContext, source_graph
from medsyn.kg.vocab import DCTERMS, ICD10_GRAPH, MS, source_iri

SOURCES = all_source_names()


@pytest.fixture(scope="module")
def register(shared_data: Path) -> BuildContext:
    ctx = BuildContext(data=shared_data)
    source_spec(REQUIRED).loader()(ctx)
    return ctx


def _over_register(register: BuildContext, data: Path) -> BuildContext:
    return BuildContext(data=data, codes=dict(register.codes))


_loaded: dict[str, list[Quad]] = {}


def _quads(name: str, kg_store_dir: Path, register: BuildContext) -> list[Quad]:
    """The source's quads: its own graph in the built store, or (not built by default) a load of it."""
    if name not in _loaded:
        if source_spec(name).default:
            with read_only(kg_store_dir) as st:
                _loaded[name] = list(st.raw.quads_for_pattern(None, None, None, source_graph(name)))
        elif name == REQUIRED:
            _loaded[name] = source_spec(name).loader()(BuildContext(data=register.data))
        else:
            _loaded[name] = source_spec(name).loader()(_over_register(register, register.data))
    return _loaded[name]


@pytest.mark.parametrize("name", SOURCES)
def test_declares_its_licence_and_non_commercial_flag(name: str) -> None:
    spec = source_spec(name)
    assert spec.name == name and spec.description.strip()
    assert spec.license.strip() and "\n" not in spec.license
    assert isinstance(spec.non_commercial, bool)
    if "NC" in spec.license.split("-") or "non-commercial" in spec.license.lower():
        assert spec.non_commercial, f"{name}: the licence forbids commercial use but the flag says otherwise"


@pytest.mark.parametrize("name", SOURCES)
def test_loads_its_real_data_into_its_own_graph(name: str, kg_store_dir: Path, register: BuildContext) -> None:
    spec = source_spec(name)
    quads = _quads(name, kg_store_dir, register)
    graphs = {q.graph_name for q in quads}
    assert graphs <= {source_graph(name), ICD10_GRAPH}, graphs
    node = {(q.predicate.value, q.object.value) for q in quads if q.subject == source_iri(name)}
    assert (DCTERMS + "license", spec.license) in node
    assert (MS + "nonCommercial", "true" if spec.non_commercial else "false") in node
    files = [v for p, v in node if p == MS + "sourceFile"]
    assert files, "a source records the files it read"
    # More than the source node: its facts, or (the hierarchy sources, whose facts are in graph/icd10) the record
    # that graph/icd10 was derived from it.
    assert [q for q in quads if q.subject != source_iri(name)]


@pytest.mark.parametrize("name", SOURCES)
def test_a_malformed_input_file_is_one_line_naming_file_and_line(
    name: str, shared_data: Path, tmp_path: Path, kg_store_dir: Path, register: BuildContext
) -> None:
    quads = _quads(name, kg_store_dir, register)
    files = sorted(q.object.value for q in quads if q.predicate.value == MS + "sourceFile")
    local = [f for f in files if (shared_data / f).is_file() and not f.endswith(".gz")]
    if not local:  # who-icd10 reads a Python package, not a file of the data folder
        assert all(f.startswith("pypi:") for f in files), files
        return
    rel = local[0]
    lines = (shared_data / rel).read_bytes().split(b"\n")
    lines.insert(2, b'\x01broken "line')
    data = data_with(shared_data, tmp_path, rel, b"\n".join(lines))
    ctx = BuildContext(data=data) if name == REQUIRED else _over_register(register, data)
    with pytest.raises(InputError) as caught:
        source_spec(name).loader()(ctx)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{data / rel}:") and message.split(":")[1].isdigit(), message
