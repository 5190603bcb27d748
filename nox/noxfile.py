"""Nox sessions for the himtok workspace.

    uv run nox -f nox/noxfile.py -l              # list sessions
    uv run nox -f nox/noxfile.py -s tests        # each package's tests in its own environment
    uv run nox -f nox/noxfile.py -s isolation    # build wheels (--no-sources), install each one alone, import it
    uv run nox -f nox/noxfile.py -s lint types   # ruff, mypy
    uv run nox -f nox/noxfile.py -s bench        # every package's benchmarks/ (add -- --full for full sizes)

Environments are made with uv. Sibling packages are installed from their local folders (they are not on PyPI),
so a package's test environment holds exactly its own dependency closure plus the test tools.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent.parent
PACKAGES_DIR = ROOT / "packages"
TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100", "scipy>=1.13", "numpy>=1.26", "sentencepiece>=0.2"]

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests", "isolation"]


def _project(path: Path) -> dict:
    with (path / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]


def _packages() -> dict[str, Path]:
    """Distribution name -> folder, for every library under packages/."""
    found = {}
    for folder in sorted(PACKAGES_DIR.iterdir()):
        if (folder / "pyproject.toml").is_file():
            found[_project(folder)["name"]] = folder
    return found


def _requirement_name(requirement: str) -> str:
    for sep in "<>=!~;[ ":
        requirement = requirement.split(sep, 1)[0]
    return requirement.strip().lower()


def _sibling_closure(name: str, packages: dict[str, Path]) -> list[Path]:
    """Folders of ``name`` and of every workspace sibling it depends on, transitively (dependencies first)."""
    ordered: list[Path] = []

    def visit(dist: str) -> None:
        folder = packages[dist]
        for req in _project(folder).get("dependencies", []):
            dep = _requirement_name(req)
            if dep in packages and packages[dep] not in ordered:
                visit(dep)
        if folder not in ordered:
            ordered.append(folder)

    visit(name)
    return ordered


PACKAGES = _packages()


@nox.session
@nox.parametrize("package", [folder.name for folder in PACKAGES.values()])
def tests(session: nox.Session, package: str) -> None:
    """One package's tests, in an environment with only that package's dependencies and the test tools."""
    name = next(dist for dist, folder in PACKAGES.items() if folder.name == package)
    session.chdir(ROOT)
    session.install(*[str(p) for p in _sibling_closure(name, PACKAGES)], *TEST_TOOLS)
    tests_dir = PACKAGES[name] / "tests"
    session.run(
        "pytest",
        str(tests_dir.relative_to(ROOT)),
        "-q",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        success_codes=[0, 5],
    )


@nox.session(venv_backend="none")
def isolation(session: nox.Session) -> None:
    """Build every package as a wheel with --no-sources, then install each alone from that wheelhouse and import it."""
    session.chdir(ROOT)
    wheelhouse = ROOT / ".nox" / "wheelhouse"
    session.run("rm", "-rf", str(wheelhouse), external=True)
    for name in PACKAGES:
        session.run(
            "uv",
            "build",
            "--package",
            name,
            "--no-sources",
            "--wheel",
            "--out-dir",
            str(wheelhouse),
            "--quiet",
            external=True,
        )
    for name in PACKAGES:
        venv = ROOT / ".nox" / f"isolated-{name}"
        python = venv / "bin" / "python"
        session.run("uv", "venv", "--quiet", "--clear", str(venv), external=True)
        # --find-links serves the siblings from the wheelhouse; everything else (torch, ...) comes from the index.
        session.run(
            "uv",
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--find-links",
            str(wheelhouse),
            # a wheel of the same version cached by an earlier run must not stand in for the one just built
            *[arg for sibling in PACKAGES for arg in ("--refresh-package", sibling)],
            name,
            external=True,
        )
        module = name.replace("-", "_")
        session.run(
            str(python),
            "-c",
            f"import {module}; print({module}.__name__, {module}.__version__)",
            external=True,
        )
        if name == "himtok-prompt-templates":
            # The templates are pure Python: installing them must not pull torch in.
            session.run(
                str(python),
                "-c",
                "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)",
                external=True,
            )


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.chdir(ROOT)
    session.run("uv", "run", "--frozen", "ruff", "check", ".", external=True)
    session.run("uv", "run", "--frozen", "ruff", "format", "--check", ".", external=True)


@nox.session(venv_backend="none")
def types(session: nox.Session) -> None:
    """mypy over every package's sources."""
    session.chdir(ROOT)
    sources = [str((folder / "src").relative_to(ROOT)) for folder in PACKAGES.values()]
    session.run("uv", "run", "--frozen", "mypy", *sources, external=True)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Every package's benchmarks/bench_*.py, quick sizes unless `-- --full` is given."""
    session.chdir(ROOT)
    args = (
        [a for a in session.posargs if a != "--full"]
        if "--full" in session.posargs
        else ["--quick", *session.posargs]
    )
    scripts = sorted(ROOT.glob("packages/*/benchmarks/bench_*.py"))
    if not scripts:
        session.skip("no benchmarks found")
    for script in scripts:
        session.log(f"== {script.relative_to(ROOT)}")
        session.run("uv", "run", "--frozen", "python", str(script), *args, external=True)
