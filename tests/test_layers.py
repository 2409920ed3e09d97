"""The layers of DESIGN.md import downwards only (imports inside functions count)."""
from benchmarks.module_graph import cycles, layer_of, problems, project_imports


def test_the_module_graph_has_no_cycle_and_no_upward_import():
    graph = project_imports()
    assert "vqcodec.simulate" in graph and "cli" in graph and "channels.base" in graph
    assert "vqcodec.commands.training" in graph and "vqcodec.commands.common" in graph
    assert problems(graph) == []


def test_a_cycle_is_found_also_through_an_import_inside_a_function(tmp_path):
    (tmp_path / "vqcodec").mkdir()
    (tmp_path / "channels").mkdir()
    (tmp_path / "cli.py").write_text("")
    (tmp_path / "channels" / "__init__.py").write_text("")
    (tmp_path / "vqcodec" / "__init__.py").write_text("")
    (tmp_path / "vqcodec" / "zoo.py").write_text("def load():\n    from vqcodec.simulate import run\n")
    (tmp_path / "vqcodec" / "simulate.py").write_text("from vqcodec import zoo\n")
    graph = project_imports(tmp_path)
    assert graph["vqcodec.zoo"] == ["vqcodec.simulate"]
    assert graph["vqcodec.simulate"] == ["vqcodec.zoo"]
    assert cycles(graph) == [["vqcodec.simulate", "vqcodec.zoo"]]
    found = problems(graph)
    assert any(p.startswith("cycle:") for p in found)
    assert any("upwards" in p for p in found)  # zoo (2) -> simulate (4)


def test_the_named_rules():
    graph = {"channels.bsc": ["vqcodec.bits"], "vqcodec.plot": ["vqcodec.results", "vqcodec.zoo"],
             "vqcodec.api": ["cli"], "vqcodec.newthing": [], "cli": []}
    found = problems(graph)
    assert "channels.bsc imports vqcodec.bits: channels/ is a leaf" in found
    assert any(p.startswith("vqcodec.plot imports ['vqcodec.zoo']") for p in found)
    assert "vqcodec.api imports cli" in found
    assert any(p.startswith("vqcodec.newthing: no layer") for p in found)
    assert layer_of("vqcodec.learn.receiver") == 5 and layer_of("channels.options") == 0


def test_the_command_line_imports_the_library_only_through_the_api():
    graph = {"cli": ["vqcodec.api", "vqcodec.commands.training"], "vqcodec.commands.common": [],
             "vqcodec.commands.training": ["vqcodec.api", "vqcodec.commands.common"], "vqcodec.api": [],
             "vqcodec.zoo": [], "channels": []}
    assert problems(graph) == []
    graph["vqcodec.commands.training"].append("vqcodec.zoo")  # layer 2: not upwards, still not allowed
    graph["cli"].append("channels")
    found = problems(graph)
    assert any(p.startswith("vqcodec.commands.training imports ['vqcodec.zoo']: the command line") for p in found)
    assert any(p.startswith("cli imports ['channels']: the command line") for p in found)
    assert len(found) == 2
    assert layer_of("vqcodec.commands.common") == 7
