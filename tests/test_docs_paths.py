"""Every module path that README.md and docs/*.md name exists: the paths written out
(``datamodules/…py``, ``src/deephar/…py``, ``experiments/…py``, ``benchmarks/``, ``tests/``) and
the entries of the folder trees (``docs/architecture.md``: a folder line, then one entry a line).

A path after ``<rev>:`` (``git show 934cb68:experiments/x.py``) names the history, not the tree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ROOTS = "src/deephar|datamodules|experiments|benchmarks|tests"
WRITTEN = re.compile(rf"(?<![\w/:.-])((?:{ROOTS})/[\w/*{{}},-]*\.py)\b")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
FOLDER = re.compile(r"^([\w./-]+/)(?:\s{2,}|$)")  # a tree's folder line: "datamodules/   …"
ENTRY = re.compile(r"^  (\S+(?: \S+)*?)(?:\s{2,}|$)")  # "  a.py b.py   what they do"


def expand(path: str) -> list[str]:
    """``a/{b,c}.py`` → ``a/b.py``, ``a/c.py`` (the brace lists the docs write)."""
    match = re.search(r"\{([^{}]*)\}", path)
    if match is None:
        return [path]
    head, tail = path[: match.start()], path[match.end() :]
    return [p for part in match.group(1).split(",") for p in expand(head + part + tail)]


def exists(path: str) -> bool:
    return any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()


def written_paths(text: str) -> set[str]:
    return {p for m in WRITTEN.finditer(text) for p in expand(m.group(1))}


def tree_paths(text: str) -> set[str]:
    """The folders and entries of every fenced block that starts with a folder line."""
    found: set[str] = set()
    for block in FENCE.findall(text):
        lines = block.splitlines()
        if not lines or not FOLDER.match(lines[0]):
            continue
        folder = ""
        for line in lines:
            if head := FOLDER.match(line):
                folder = head.group(1)
                found.add(folder)
            elif entry := ENTRY.match(line):
                found |= {folder + name for name in entry.group(1).split() if "." in name or
                          name.endswith("/")}  # fmt: skip
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_module_path_the_docs_name_exists(doc):
    text = doc.read_text()
    named = written_paths(text) | tree_paths(text)
    assert not sorted(p for p in named if not exists(p))


def test_the_checker_reads_paths_trees_and_leaves_the_history_alone():
    text = (
        "see `datamodules/nowhere.py`, `experiments/configs/demo_{pose,gone}.yaml`, "
        "`tests/deephar/test_parity_*.py`, `git show 934cb68:experiments/penn_probe.py`\n"
        "```\ndatamodules/                 reading data\n"
        "  mixed.py gone.py           fixed counts\n"
        "                             continued description: not.py an entry\n"
        "  storage/records.py         records\n"
        "lost/                        a folder\n```\n"
    )
    assert written_paths(text) == {"datamodules/nowhere.py", "tests/deephar/test_parity_*.py"}
    assert expand("a/{b,c}.yaml") == ["a/b.yaml", "a/c.yaml"]
    trees = tree_paths(text)
    assert trees == {"datamodules/", "datamodules/mixed.py", "datamodules/gone.py",
                     "datamodules/storage/records.py", "lost/"}  # fmt: skip
    missing = {p for p in written_paths(text) | trees if not exists(p)}
    assert missing == {"datamodules/nowhere.py", "datamodules/gone.py", "lost/"}


def test_readme_is_a_front_door_whose_map_names_every_doc():
    """≤ 150 lines; each ``docs/*.md`` it names exists, and every one of docs/ is in its map."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    named = set(re.findall(r"docs/[\w-]+\.md", text))
    assert not sorted(p for p in named if not (ROOT / p).is_file())
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= named
    assert all((ROOT / p).is_file() for p in re.findall(r"\]\((docs/img/[\w.-]+)\)", text))


def test_licence_and_citation():
    """MIT, as the official code (dluvizon/deephar); CITATION.cff cites the paper and the project."""
    import yaml

    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert {"cff-version", "message", "title", "authors"} <= cff.keys() and cff["license"] == "MIT"
    paper = cff["preferred-citation"]
    assert [a["family-names"] for a in paper["authors"]] == ["Luvizon", "Picard", "Tabia"]
    assert paper["year"] == 2018 and "Multitask Deep Learning" in paper["title"]
