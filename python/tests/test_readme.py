"""The READMEs' examples run as written: the main README's "Testing your
driver in CI" (its example test, in a folder of its own, and the CI job that
runs that file) and this package's README."""

import re
from pathlib import Path

import pytest

from conftest import run_pytest

PACKAGE = Path(__file__).resolve().parents[1]
README = PACKAGE.parent / "README.md"
SECTION = "## Testing your driver in CI"


def blocks(readme, language, section=None):
    """The fenced `language` blocks of `readme`, or of its `section`."""
    if not readme.is_file():
        pytest.fail(f"no {readme}: these tests run from wsat's checkout")
    text = readme.read_text()
    if section is not None:
        start = text.index(section)
        end = text.find("\n## ", start + len(section))
        text = text[start : end if end >= 0 else len(text)]
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.M | re.S)


def run_example(tmp_path, source, passed):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_modem.py").write_text(source)
    run = run_pytest(tmp_path / "tests", "-q")
    assert run.returncode == 0, run.stdout
    assert re.search(rf"^{passed} passed", run.stdout, re.M), run.stdout


def test_the_example_test_passes_as_written(tmp_path):
    (example,) = blocks(README, "python", SECTION)
    run_example(tmp_path, example, 3)


def test_the_ci_job_installs_and_runs_what_the_section_says():
    (job,) = blocks(README, "yaml", SECTION)
    assert "cargo install --locked --path wsat/crates/wsat" in job
    assert "pip install ./wsat/python pytest pyserial" in job
    assert re.search(r"^\s+run: pytest tests$", job, re.M), job
    assert "`tests/test_modem.py`" in README.read_text()


def test_the_package_readme_example_passes(tmp_path):
    (example,) = blocks(PACKAGE / "README.md", "python")
    run_example(tmp_path, example, 1)
