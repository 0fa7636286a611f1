"""The README's first screen must stay true: its test command is the one CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("python3 -m venv")]


def test_readme_test_command_is_what_ci_runs():
    readme = _commands((ROOT / "README.md").read_text())
    ci = _commands((ROOT / ".ci" / "run").read_text())
    assert len(readme) == 2, "the README's first screen has two commands: main job and tests"
    test_command = [c for c in readme if "pytest" in c]
    assert test_command and test_command[0] in ci


def test_readme_main_command_runs_the_default_search():
    readme = _commands((ROOT / "README.md").read_text())
    assert any(c.endswith("nas search --space mdconv --budget 200") for c in readme)
