"""Every table in docs/RESULTS.md that cites a JSON file is exactly what the benchmark script renders from
that file (``<!-- table: NAME.json -->`` above the table: benchmarks/quality.py renders it;
``<!-- table: NAME.json via SCRIPT.py -->``: benchmarks/SCRIPT.py does; ``... via SCRIPT.py --OPTION OTHER.json``: with
that option naming another docs/ JSON), and every cited JSON file exists."""

from __future__ import annotations

import re

import pytest

from tests.helpers import ROOT, run_script

DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!-- table: (\S+\.json)(?: via (\S+\.py)((?: --[a-z-]+ \S+\.json)*))? -->$")


def cited_tables() -> list[tuple[str, str, str, list[str]]]:
    """(JSON file name, the markdown table below its marker, the script that renders it, the script's options
    naming other docs/ JSON files) for every marker in RESULTS.md."""
    lines = (DOCS / "RESULTS.md").read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if match:
            table = []
            for row in lines[i + 1 :]:
                if not row.startswith("|"):
                    break
                table.append(row)
            options = (match.group(3) or "").split()
            options = [str(DOCS / word) if word.endswith(".json") else word for word in options]
            found.append((match.group(1), "\n".join(table), match.group(2) or "quality.py", options))
    return found


def test_results_cites_json_for_its_tables():
    names = [name for name, _, _, _ in cited_tables()]
    assert {"quality.json", "paper_mnist_noise.json", "paper_mnist_projection.json", "paper_mnist_genspan.json"} <= set(
        names
    )


@pytest.mark.parametrize("name,table,script,options", cited_tables(), ids=[name for name, *_ in cited_tables()])
def test_results_table_matches_its_json(name, table, script, options, tmp_path):
    rendered = run_script(f"benchmarks/{script}", "--markdown", str(DOCS / name), *options, cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert table and table in rendered.stdout.strip().split("\n\n")  # one of the tables the script renders, exactly
