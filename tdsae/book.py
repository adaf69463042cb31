"""Run the book: MyST chapters -> jupytext -> papermill -> jupyter-book.

Chapters live in ``chapters/NN_slug.md`` (MyST-markdown notebooks). Each chapter
named in ``_toc.yml`` is converted to a notebook, executed by papermill with the
preset's parameters into ``book/chapters/NN_slug.ipynb``, and the executed
notebooks are built into HTML by jupyter-book 1 (``execute_notebooks: off``).
The claims each chapter displayed are collected into ``_build/claims.json``.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .artifacts import write_json_atomic
from .claims import CLAIM_MIME, claim_anchor, requirement
from .presets import get_preset
from .runtime import usable_cores
from .validation import check_seed

TOC_FILE = "_toc.yml"
SOURCE_DIR = "chapters"
EXECUTED_DIR = Path("book") / "chapters"
RESULTS_PAGE = Path("book") / "results.md"  # written from the run's claims before every HTML build (not tracked)
BOOK_TOOLS = ("papermill", "jupytext", "nbformat", "yaml", "jupyter_book")  # modules of the 'dev' extra it needs
# The chapters (by number) whose artifacts a chapter reads, for the chapters that read fewer than all chapters before
# them; a chapter not listed waits for every chapter before it. With jobs > 1 a chapter starts once the chapters it
# needs, and theirs, have finished. A wrong entry costs time, never correctness: the artifact cache builds each
# artifact once, whichever chapter asks first, and the others wait for it. Chapter 9 trains its own walkers (the
# longest job of the book) and reads only organism 0's training record of chapter 2's, so it starts at once, beside
# chapters 0 to 8. Chapter 10 waits for 7 because at smol its pretrained model is every chapter's model and it
# plays what chapters 3 to 7 play. Chapter 13
# reads only the population that chapter 2 trains.
CHAPTER_NEEDS = {"09": (), "10": ("07",), "11": ("07",), "12": ("07", "11"), "13": ("02",)}


class ChapterFailed(RuntimeError):
    """A chapter raised while executing; the message names the chapter and the cell."""


class WarningShown(RuntimeError):
    """An executed chapter shows a warning to its readers (silence its cause, not the reader's view)."""


class NotExecuted(RuntimeError):
    """A notebook handed to the HTML build carries no outputs."""


def require_book_tools() -> None:
    """Raise RuntimeError naming what to install when a tool of the book build is missing."""
    missing = [name for name in BOOK_TOOLS if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeError(f"building the book needs {', '.join(missing)}, which are not installed: install "
                           "tdsae's 'dev' extra (pip install -e '.[dev]', or run 'make book', which does)")


def chapter_slugs(root: Path) -> list[str]:
    """Slugs of the executable chapters in ``_toc.yml``, in reading order."""
    import yaml

    toc_path = root / TOC_FILE
    if not toc_path.exists():
        raise FileNotFoundError(f"no {TOC_FILE} in {root}; run from the book's root directory")
    toc = yaml.safe_load(toc_path.read_text())
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    prefix = EXECUTED_DIR.as_posix() + "/"
    slugs = [f[len(prefix):] for f in files if f.startswith(prefix)]
    for slug in slugs:
        if not (root / SOURCE_DIR / f"{slug}.md").exists():
            raise FileNotFoundError(f"{TOC_FILE} names chapter {slug!r} but {SOURCE_DIR}/{slug}.md does not exist")
    return slugs


def select_chapters(slugs: list[str], wanted: list[str] | None) -> list[str]:
    """The chapters whose slug starts with one of ``wanted`` (all when None)."""
    if not wanted:
        return slugs
    chosen = [s for s in slugs if any(s.startswith(w) for w in wanted)]
    missing = [w for w in wanted if not any(s.startswith(w) for s in slugs)]
    if missing:
        raise ValueError(f"unknown chapter {missing[0]!r}; chapters in {TOC_FILE}: {', '.join(slugs)}")
    return chosen


_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<value>.*?)(?P<comment>\s+#.*)?$")


def _show_run_parameters(nb: Any) -> None:
    """Let the chapter's parameters cell show the values this run used, and drop papermill's injected cell.

    The reader sees one visible cell, ``preset = "smol"  # master switch: ...``, with the chapter's own comments,
    instead of the defaults followed by a bookkeeping cell that overrides them. A parameter injected without a
    line in the cell is appended to it.
    """
    def tagged(tag: str) -> list:
        return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]

    injected, parameters = tagged("injected-parameters"), tagged("parameters")
    if not injected or not parameters:
        return
    values = dict(m.groups() for m in (re.match(r"^([A-Za-z_]\w*) = (.*)$", line)
                                       for line in injected[0].source.splitlines()) if m)
    lines = []
    for line in parameters[0].source.splitlines():
        match = _ASSIGNMENT.match(line)
        if match and match["name"] in values:
            line = f"{match['name']} = {values.pop(match['name'])}{match['comment'] or ''}"
        lines.append(line)
    parameters[0].source = "\n".join(lines + [f"{name} = {value}" for name, value in values.items()])
    nb.cells.remove(injected[0])


RUN_BOX = """```{{admonition}} Run this chapter yourself
:class: tip

{{download}}`Download this chapter as a notebook <{slug}.ipynb>`, executed by this build with the
parameters shown below. To run it again, open it in Jupyter from a clone of the book's repository after
`make env` (or `pip install -e .`), or in Colab after a first cell that clones the repository and runs
`pip install -e` on it (the README shows both). Change `preset` in the parameters cell to run it at another scale.
```"""


def _add_run_box(nb: Any, slug: str) -> None:
    """Put a download link for the executed notebook, and how to run it, after the chapter's opening text."""
    import nbformat

    titles = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("# ")]
    nb.cells.insert(titles[0] + 1 if titles else 0, nbformat.v4.new_markdown_cell(RUN_BOX.format(slug=slug)))


def _failed_code_cell_number(nb: Any) -> int:
    """1-based number, among the chapter's own code cells, of the first cell with an error output."""
    own = [c for c in nb.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    for number, cell in enumerate(own, start=1):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return number
    return 0


def execute_chapter(root: Path, slug: str, preset: str, seed: int | None) -> Path:
    """Execute one chapter with papermill; return the executed notebook's path.

    The notebook is written to a temporary name and renamed, so a failed run
    never leaves a half-executed notebook where the HTML build would find it.
    """
    import jupytext
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = root / SOURCE_DIR / f"{slug}.md"
    out_dir = root / EXECUTED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{slug}.ipynb"
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        unexecuted = Path(tmp) / "input.ipynb"
        executed = Path(tmp) / "output.ipynb"
        nbformat.write(nb, unexecuted)
        try:
            papermill.execute_notebook(
                str(unexecuted), str(executed), parameters={"preset": preset, "seed": seed},
                kernel_name="python3", cwd=str(out_dir), progress_bar=False, log_output=False,
            )
        except PapermillExecutionError as err:
            ordinal = _failed_code_cell_number(nbformat.read(executed, as_version=4))
            raise ChapterFailed(
                f"chapter {slug!r} failed in code cell {ordinal} of {SOURCE_DIR}/{slug}.md: "
                f"{err.ename}: {err.evalue}\n--- cell source ---\n{err.source}"
            ) from None
        done = nbformat.read(executed, as_version=4)
        _show_run_parameters(done)
        _add_run_box(done, slug)
        nbformat.write(done, executed)
        os.replace(executed, target)
    return target


def verify_executed(path: Path) -> None:
    """Raise NotExecuted unless every code cell of ``path`` ran and some produced output."""
    import nbformat

    if not path.exists():
        raise NotExecuted(f"{path} does not exist; execute the chapter first (tdsae book)")
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    not_run = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count") is None]
    if not code or not_run or not any(c.get("outputs") for c in code):
        raise NotExecuted(
            f"{path} has no outputs (cells not executed: {not_run[:5]}); "
            "the book is built only from notebooks executed by papermill"
        )
    for number, cell in enumerate(code, 1):
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("name") == "stderr" else ""
            warning = re.search(r"\b\w*Warning\b[^\n]*", text)
            if warning:
                raise WarningShown(f"{path.name}, code cell {number}, shows a warning to readers: {warning.group(0)[:300]}")


CHECKED_TAG = "nbval-check-output"


def notebooks_with_checked_cells(root: Path) -> list[Path]:
    """The executed chapters holding a cell tagged nbval-check-output, in reading order.

    These are the chapters whose determinism nbval tests, by executing them again and comparing
    those cells. A chapter with no such cell would only be executed a second time for nothing:
    that it runs without error is what papermill has just shown, and its reuse of cached artifacts
    is exercised by the chapters after it.
    """
    import nbformat

    paths = []
    for slug in chapter_slugs(root):
        path = root / EXECUTED_DIR / f"{slug}.ipynb"
        verify_executed(path)
        cells = nbformat.read(path, as_version=4).cells
        if any(CHECKED_TAG in c.get("metadata", {}).get("tags", []) for c in cells):
            paths.append(path)
    return paths


def collect_claims(paths: list[Path]) -> list[dict[str, Any]]:
    """Every claim record displayed in the executed notebooks ``paths``, in order."""
    import nbformat

    records = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                record = output.get("data", {}).get(CLAIM_MIME)
                if record is not None:
                    records.append(dict(record))
    return records


def build_html(root: Path) -> Path:
    """Build ``_build/html`` with jupyter-book from the executed notebooks."""
    jb = Path(sys.executable).parent / "jupyter-book"
    command = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "-W", "-n", "--keep-going"]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return root / "_build" / "html" / "index.html"


def chapter_schedule(slugs: list[str]) -> dict[str, set[str]]:
    """For each chapter, every chapter among ``slugs`` it must wait for (CHAPTER_NEEDS, closed transitively; all
    earlier chapters for one not listed). Needs outside ``slugs`` are taken as already executed."""
    number = {slug: slug.split("_")[0] for slug in slugs}
    waits: dict[str, set[str]] = {}
    for i, slug in enumerate(slugs):
        needs = CHAPTER_NEEDS.get(number[slug])
        direct = set(slugs[:i]) if needs is None else {s for s in slugs[:i] if number[s] in needs}
        waits[slug] = set().union(direct, *(waits[s] for s in direct))
    return waits


def resolve_jobs(jobs: int | str) -> int:
    """How many chapters run at once: an integer >= 1, or "auto" (2 where the process may use 2 cores or more: a
    chapter rarely keeps two cores busy, so two side by side finish sooner; 1 otherwise)."""
    if jobs == "auto":
        cores = usable_cores()
        return 2 if cores >= 2 else 1
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"bad value {jobs!r} for jobs: expected an integer >= 1 or 'auto'")
    return jobs


def _execute_in_worker(root: str, slug: str, preset: str, seed: int | None, threads: int) -> float:
    """execute_chapter in a worker process whose kernels use ``threads`` threads; returns the seconds it took."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)  # the kernel papermill starts inherits them
    start = time.perf_counter()
    execute_chapter(Path(root), slug, preset, seed)
    return time.perf_counter() - start


def execute_chapters(root: Path, slugs: list[str], preset: str, seed: int | None, jobs: int = 1) -> dict[str, float]:
    """Execute ``slugs``: in reading order with jobs=1, else up to ``jobs`` at once, each once the chapters it needs
    have finished (chapter_schedule), the ready chapter with the most chapters waiting on it first. Each chapter's
    kernel then gets cores // jobs threads. The first failure stops new starts and is raised once the running
    chapters end. Returns: {slug: seconds}.
    """
    if jobs == 1:
        seconds = {}
        for slug in slugs:
            print(f"executing {slug} (preset={preset}, seed={seed}) ...", flush=True)
            start = time.perf_counter()
            execute_chapter(root, slug, preset, seed)
            seconds[slug] = time.perf_counter() - start
            print(f"  {slug} done in {seconds[slug]:.1f} s", flush=True)
        return seconds
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    waits = chapter_schedule(slugs)
    waited_on = {slug: sum(slug in w for w in waits.values()) for slug in slugs}
    cores = usable_cores()
    threads = max(1, cores // jobs)
    done: set[str] = set()
    running: dict[Any, str] = {}
    seconds: dict[str, float] = {}
    failure: BaseException | None = None
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        while True:
            ready = [slug for slug in slugs if slug not in done and slug not in running.values()
                     and waits[slug] <= done]
            ready.sort(key=lambda slug: (-waited_on[slug], slugs.index(slug)))
            while failure is None and ready and len(running) < jobs:
                slug = ready.pop(0)
                print(f"executing {slug} (preset={preset}, seed={seed}, {threads} thread(s)) ...", flush=True)
                running[pool.submit(_execute_in_worker, str(root), slug, preset, seed, threads)] = slug
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                slug = running.pop(future)
                try:
                    seconds[slug] = future.result()
                    done.add(slug)
                    print(f"  {slug} done in {seconds[slug]:.1f} s", flush=True)
                except BaseException as err:  # noqa: BLE001 - re-raised below, once the running chapters end
                    failure = failure or err
    if failure is not None:
        raise failure
    return seconds


def build_book(root: Path, preset: str = "tiny", seed: int | None = None, chapters: list[str] | None = None,
               execute: bool = True, jobs: int | str = 1) -> Path:
    """Execute the chosen chapters (all by default), build the HTML and write claims.json.

    Everything a reader can get wrong is checked before the first chapter runs: the preset, the seed,
    the chapter names, the number of jobs and the tools the build needs (the ``dev`` extra).
    jobs: chapters executed at once (resolve_jobs; "auto": 2 on 2 cores or more).
    """
    get_preset(preset)
    if seed is not None:
        check_seed(seed)
    jobs = resolve_jobs(jobs)
    root = root.resolve()
    slugs = chapter_slugs(root)
    chosen = select_chapters(slugs, chapters) if execute else []
    require_book_tools()  # after the reader's own arguments, so a bad one is named even without the dev extra
    execute_chapters(root, chosen, preset, seed, jobs)
    executed = [root / EXECUTED_DIR / f"{slug}.ipynb" for slug in slugs]
    for path in executed:
        verify_executed(path)
    records = collect_claims(executed)
    write_results_page(root, records, preset)
    index = build_html(root)
    write_json_atomic(root / "_build" / "claims.json", records)
    return index


def _cell(text: Any) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _count(n: int, noun: str) -> str:
    """'1 check', '3 checks'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _models_sentence(records: list[dict[str, Any]], titles: dict[str, str]) -> str:
    """Which model each chapter's claims are about, in words."""
    organism = "organism"
    others: dict[str, list[str]] = {}
    for record in records:
        if record.get("model", organism) not in ("", organism):
            others.setdefault(record["model"], [])
            chapter = str(int(record["chapter"].split("_")[0]))
            if chapter not in others[record["model"]]:
                others[record["model"]].append(chapter)
    sentence = ("Most claims are about the package's own model organisms: small Llama-style transformers (about "
                "1M parameters at tiny) trained on the transcripts of reinforcement-learning agents, not language "
                "models.")
    for model, chapters in others.items():
        where = f"chapter {chapters[0]}" if len(chapters) == 1 else f"chapters {', '.join(chapters)}"
        sentence += f" The claims of {where} are about `{model}`."
    return sentence


def write_results_page(root: Path, records: list[dict[str, Any]], preset: str) -> Path:
    """``book/results.md``: every claim of the run, a verdict per chapter and the totals, with links to the chapters.

    Checks (the code is right) are kept apart from findings (the papers' claims tested on this run)."""
    titles = {}
    for slug in chapter_slugs(root):
        source = root / SOURCE_DIR / f"{slug}.md"
        heading = next((line[2:].strip() for line in source.read_text().splitlines() if line.startswith("# ")), slug)
        titles[slug] = heading
    counts = {kind: [r for r in records if r["kind"] == kind] for kind in ("check", "finding")}
    held = {kind: sum(bool(r["holds"]) for r in rows if r.get("measured", True)) for kind, rows in counts.items()}
    lines = ["# What this run found", "",
             f"These pages are the `{preset}` run. {_models_sentence(records, titles)} Every number below comes from "
             "the run that built this page; each chapter explains its own.", "",
             f"**{_count(len(counts['check']), 'check')}**, which must hold whenever the code is right: "
             f"{held['check']} held. **{_count(len(counts['finding']), 'finding')}**, the papers' claims tested on "
             f"this run: {held['finding']} held and {len(counts['finding']) - held['finding']} did not.", "",
             "## Chapter by chapter", "", "| chapter | checks held | findings held |", "|---|---|---|"]
    for slug, title in titles.items():
        mine = [r for r in records if r["chapter"] == slug]
        if not mine:
            continue
        tally = {kind: [r for r in mine if r["kind"] == kind] for kind in ("check", "finding")}
        cells = [f"{sum(bool(r['holds']) for r in rows)} of {len(rows)}" if rows else "none"
                 for rows in tally.values()]
        lines.append(f"| {{doc}}`{_cell(title)} <chapters/{slug}>` | {cells[0]} | {cells[1]} |")
    for kind, heading in (("finding", "Every finding"), ("check", "Every check")):
        lines += ["", f"## {heading}", "", "| chapter | claim | this run | against | verdict |",
                  "|---|---|---|---|---|"]
        for record in counts[kind]:
            if record.get("measured", True):
                tested = requirement(record["value"], record["comparison"], record["threshold"])
                verdict = "held" if record["holds"] else "did not hold"
            else:
                tested, verdict = "not measured", "not measured"
            control = record.get("control", "")
            if record.get("control_value") is not None:
                control += f" ({record['control_value']:.4g})"
            chapter = record["chapter"]
            claim = (f'<a href="chapters/{chapter}.html#{claim_anchor(record["name"])}">'
                     f"{html.escape(_cell(record['statement']))}</a>")
            lines.append(f"| {{doc}}`{chapter.split('_')[0]} <chapters/{chapter}>` | {claim} | "
                         f"{_cell(tested)} | {_cell(control)} | {verdict} |")
    path = root / RESULTS_PAGE
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path
