"""The book pipeline on a two-page fake book: execution, hiding, failures, claims."""

import textwrap
from pathlib import Path

import nbformat
import pytest

from tdsae import book

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def _chapter(body: str) -> str:
    return HEADER + textwrap.dedent(body)


GOOD = _chapter('''
    # A chapter

    ```{code-cell} ipython3
    :tags: [parameters]

    preset = "small"  # master switch
    seed = 1
    width = 8  # a parameter the run does not set
    ```

    ```{code-cell} ipython3
    from tdsae import ClaimBook
    claims = ClaimBook("00_good", preset, seed)
    claims.finding("answer", "six times seven", value=6 * 7, comparison=">=", threshold=42, control="none")
    print(preset, seed)
    ```
''')

BAD = _chapter('''
    # A failing chapter

    ```{code-cell} ipython3
    :tags: [parameters]

    preset = "tiny"
    seed = 0
    ```

    ```{code-cell} ipython3
    x = 1
    ```

    ```{code-cell} ipython3
    raise ValueError("boom in the third cell")
    ```
''')


@pytest.fixture()
def fake_book(tmp_path: Path) -> Path:
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "00_good.md").write_text(GOOD)
    (tmp_path / "chapters" / "01_bad.md").write_text(BAD)
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n"
        "  - file: book/chapters/00_good\n  - file: book/chapters/01_bad\n  - file: book/glossary\n"
    )
    return tmp_path


def test_toc_lists_executable_chapters_in_order(fake_book):
    assert book.chapter_slugs(fake_book) == ["00_good", "01_bad"]
    assert book.select_chapters(["00_good", "01_bad"], ["01"]) == ["01_bad"]
    with pytest.raises(ValueError, match=r"unknown chapter '07'; chapters in _toc.yml: 00_good, 01_bad"):
        book.select_chapters(["00_good", "01_bad"], ["07"])


def test_toc_naming_a_missing_source_fails(fake_book):
    (fake_book / "chapters" / "01_bad.md").unlink()
    with pytest.raises(FileNotFoundError, match="chapters/01_bad.md"):
        book.chapter_slugs(fake_book)


def test_execution_shows_the_run_parameters_in_the_chapter_cell_and_keeps_claims(fake_book):
    out = book.execute_chapter(fake_book, "00_good", preset="tiny", seed=5)
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in code)  # papermill's cell is gone
    assert code[0].metadata["tags"] == ["parameters"]  # shown, not removed
    assert nb.cells[0].source.startswith("# A chapter") and "Download this chapter" in nb.cells[1].source
    assert "<00_good.ipynb>" in nb.cells[1].source
    assert code[0].source.splitlines() == ['preset = "tiny"  # master switch', "seed = 5",
                                           "width = 8  # a parameter the run does not set"]
    stdout = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    assert stdout.strip() == "tiny 5"
    book.verify_executed(out)
    [record] = book.collect_claims([out])
    assert (record["chapter"], record["preset"], record["seed"], record["holds"]) == ("00_good", "tiny", 5, True)


def test_failing_chapter_names_chapter_and_cell_and_leaves_nothing(fake_book):
    with pytest.raises(book.ChapterFailed, match=r"chapter '01_bad' failed in code cell 3 of chapters/01_bad.md: .*boom in the third cell"):
        book.execute_chapter(fake_book, "01_bad", preset="tiny", seed=0)
    assert list((fake_book / "book" / "chapters").iterdir()) == []


def test_unexecuted_notebook_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    path = tmp_path / "raw.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(book.NotExecuted, match="has no outputs"):
        book.verify_executed(path)
    with pytest.raises(book.NotExecuted, match="does not exist"):
        book.verify_executed(tmp_path / "missing.ipynb")


def test_cli_rejects_unknown_preset_before_work(fake_book, capsys):
    from tdsae.cli import main

    assert main(["book", "--preset", "huge", "--root", str(fake_book)]) == 1
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert not (fake_book / "book").exists()


def test_nbval_reruns_only_chapters_with_checked_cells(fake_book, capsys):
    """The second (nbval) execution is kept for chapters whose outputs it compares; an unexecuted
    chapter is refused rather than silently left out."""
    from tdsae.cli import main

    good = fake_book / "chapters" / "00_good.md"
    checked = GOOD.replace("```{code-cell} ipython3\nfrom tdsae", "```{code-cell} ipython3\n:tags: [nbval-check-output]\n\nfrom tdsae")
    assert checked != GOOD
    (fake_book / "chapters" / "01_bad.md").write_text(GOOD.replace("00_good", "01_bad"))
    book.execute_chapter(fake_book, "01_bad", preset="tiny", seed=0)
    assert main(["checked-notebooks", "--root", str(fake_book)]) == 1  # 00_good not executed yet
    assert "00_good.ipynb does not exist" in capsys.readouterr().err
    book.execute_chapter(fake_book, "00_good", preset="tiny", seed=0)
    assert book.notebooks_with_checked_cells(fake_book) == []
    good.write_text(checked)
    book.execute_chapter(fake_book, "00_good", preset="tiny", seed=0)
    assert book.notebooks_with_checked_cells(fake_book) == [fake_book / "book" / "chapters" / "00_good.ipynb"]
    assert main(["checked-notebooks", "--root", str(fake_book)]) == 0
    assert capsys.readouterr().out.strip() == "book/chapters/00_good.ipynb"


def test_every_file_a_chapter_includes_exists():
    """A chapter that shows package code with literalinclude names it by path; a moved module must move the path.
    Paths are relative to book/chapters/, where the executed notebooks are built."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    included = [(chapter.name, target) for chapter in sorted((root / "chapters").glob("*.md"))
                for target in re.findall(r"^```\{literalinclude\} (\S+)", chapter.read_text(), re.M)]
    assert included, "no chapter includes package code: the test would check nothing"
    missing = [(name, target) for name, target in included if not (root / "book" / "chapters" / target).resolve().is_file()]
    assert missing == []


def test_a_warning_in_an_executed_chapter_is_refused(tmp_path):
    cell = nbformat.v4.new_code_cell("import tqdm.auto", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr",
                                           text="tqdm/auto.py:21: TqdmWarning: IProgress not found.\n")]
    path = tmp_path / "warned.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    with pytest.raises(book.WarningShown, match="code cell 1, shows a warning to readers: TqdmWarning: IProgress"):
        book.verify_executed(path)
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="organism: 100%|####| 1500/1500\n")]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    book.verify_executed(path)  # a progress bar is not a warning


def test_the_schedule_waits_for_what_a_chapter_needs_and_for_everything_before_an_unlisted_one(monkeypatch):
    monkeypatch.setattr(book, "CHAPTER_NEEDS", {"02": (), "03": ("02",)})
    waits = book.chapter_schedule(["00_a", "01_b", "02_c", "03_d", "04_e"])
    assert waits == {"00_a": set(), "01_b": {"00_a"}, "02_c": set(), "03_d": {"02_c"},
                     "04_e": {"00_a", "01_b", "02_c", "03_d"}}
    # a need outside the chosen chapters counts as executed already
    assert book.chapter_schedule(["03_d", "04_e"]) == {"03_d": set(), "04_e": {"03_d"}}
    assert book.resolve_jobs(3) == 3 and book.resolve_jobs("auto") in (1, 2)
    for bad in (0, -1, "two", 1.5, True):
        with pytest.raises(ValueError, match="jobs"):
            book.resolve_jobs(bad)


THREADS = _chapter('''
    # Threads

    ```{code-cell} ipython3
    :tags: [parameters]

    preset = "tiny"
    seed = 0
    ```

    ```{code-cell} ipython3
    import os, torch
    print(os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads())
    ```
''')


def test_chapters_run_side_by_side_once_their_needs_are_met_and_a_failure_stops_the_rest(fake_book, monkeypatch):
    for name in ("02_threads", "03_after_bad"):
        (fake_book / "chapters" / f"{name}.md").write_text(THREADS)
    monkeypatch.setattr(book, "CHAPTER_NEEDS", {"01": (), "02": (), "03": ("01",)})
    executed = fake_book / book.EXECUTED_DIR
    seconds = book.execute_chapters(fake_book, ["00_good", "02_threads"], "tiny", 0, jobs=2)
    assert set(seconds) == {"00_good", "02_threads"}
    # each kernel of two side by side gets half the cores
    out = nbformat.read(executed / "02_threads.ipynb", as_version=4).cells[-1].outputs[0].text.split()
    assert out == [str(max(1, book.usable_cores() // 2))] * 2
    # 01 fails: 03, which needs it, never starts, and the failure is raised
    with pytest.raises(book.ChapterFailed, match="01_bad"):
        book.execute_chapters(fake_book, ["01_bad", "03_after_bad"], "tiny", 0, jobs=2)
    assert not (executed / "03_after_bad.ipynb").exists()


def test_the_results_page_lists_every_claim_with_its_chapter_and_the_totals(tmp_path):
    """Checks apart from findings, one row per claim with its verdict, a pipe in a statement escaped, totals and a
    verdict line per chapter; the page names the preset and the pretrained model a chapter studied."""
    from tdsae.book import RESULTS_PAGE, write_results_page

    (tmp_path / "chapters").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                       "  - file: book/chapters/01_a\n  - file: book/chapters/02_b\n")
    for slug, title in (("01_a", "First"), ("02_b", "Second")):
        (tmp_path / "chapters" / f"{slug}.md").write_text(f"---\nx: 1\n---\n\n# {title}\n\ntext\n")
    (tmp_path / "book").mkdir()
    base = {"comparison": ">", "threshold": 0.0, "control": "c", "control_value": None, "measured": True,
            "model": "organism", "preset": "tiny", "seed": 0, "population": None, "reason": ""}
    records = [{**base, "chapter": "01_a", "kind": "check", "name": "a", "statement": "s1", "value": 1.0,
                "holds": True},
               {**base, "chapter": "02_b", "kind": "finding", "name": "b", "statement": "beats |mean|", "value": -1.0,
                "holds": False, "model": "org/lm"},
               {**base, "chapter": "02_b", "kind": "finding", "name": "c", "statement": "s3", "value": 2.0,
                "holds": True}]
    text = write_results_page(tmp_path, records, "tiny").read_text()
    assert (tmp_path / RESULTS_PAGE).exists() and "`tiny` run" in text and "chapter 2 are about `org/lm`" in text
    assert "**1 check**" in text and "**2 findings**" in text and "1 held and 1 did not" in text
    assert "| {doc}`First <chapters/01_a>` | 1 of 1 | none |" in text
    assert "| {doc}`Second <chapters/02_b>` | none | 1 of 2 |" in text
    assert "beats \\|mean\\|" in text and text.count("| did not hold |") == 1 and text.count("| held |") == 2
    assert '<a href="chapters/02_b.html#claim-b">beats \\|mean\\|</a>' in text  # to the claim's box


CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("*.md"))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem[:2])
def test_chapter_code_fits_the_page_and_names_no_internal_document(chapter):
    """Code lines of at most 88 characters (longer ones are clipped on the page), and none of the project's own
    documents named to the reader."""
    import re

    text = chapter.read_text()
    cells = re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", text, flags=re.M | re.S)
    long_lines = [line for cell in cells for line in cell.splitlines() if len(line) > 88]
    assert cells and not long_lines, f"{chapter.name}: {len(long_lines)} code lines over 88 characters"
    assert not re.findall(r"PAPERS\.md|DESIGN\.md|STYLE\.md|ECOSYSTEM\.md|\bthe issue\b", text)


STORY_PLAYS = ("play_task", "play_with_edits", "cached_play_with_edits", "play_conditions", "intervention_study")


def _call_arguments(text: str, start: int) -> str:
    """The text between the parenthesis or brace opening at ``start`` and its match."""
    depth = 0
    for end in range(start, len(text)):
        depth += {"(": 1, "{": 1, ")": -1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start + 1:end]
    raise AssertionError(f"unbalanced call at character {start}")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem[:2])
def test_every_play_in_a_chapter_is_batched_by_the_preset(chapter):
    """A whole-task play without experiments_per_batch holds every experiment's KV cache at once: at smol a
    Grid World run would need 60 GB, and a Two-Step run differs in float rounding from the cached, batched one
    that a check compares it with. Exercises' solutions count too: a reader runs them."""
    import re

    text = chapter.read_text()
    unbatched = []
    for call in re.finditer(rf"\b({'|'.join(STORY_PLAYS)})\(", text):
        arguments = _call_arguments(text, call.end() - 1)
        spread = re.findall(r"\*\*(\w+)", arguments)  # keyword arguments gathered in a dict first
        gathered = [_call_arguments(text, m.end() - 1) for name in spread
                    for m in re.finditer(rf"\b{name} = (?:dict\(|\{{)", text)]
        if "experiments_per_batch" not in arguments + "".join(gathered):
            unbatched.append(f"{call.group(1)}({arguments[:60]}...")
    assert not unbatched, f"{chapter.name}: plays without experiments_per_batch: {unbatched}"
