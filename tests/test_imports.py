"""The import budget, guarded without timing: what each entry point imports.

``import modelversions`` imports nothing but the package; ``from modelversions import
ModelRegistry`` and a registry opened to read import none of the heavy modules that only
writing, signing, verifying, serving, loading or the web view need; the CLI's
``current`` neither. Every public name still resolves, lazily, to the object its home
module defines. (docs/architecture.md, "Import budget", says what it costs.)
"""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys
from pathlib import Path

import pytest

import modelversions
from modelversions import ModelRegistry
from modelversions.backends.local import LocalBackend
from modelversions.cli import _parser

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: Never imported by importing the package, ModelRegistry, nor by reading a registry.
HEAVY = (
    "argparse",
    "asyncio",
    "dataclasses",
    "datetime",
    "getpass",
    "hashlib",
    "inspect",
    "boto3",
    "botocore",
    "fsspec",
    "joblib",
    "logging",
    "numpy",
    "s3fs",
    "shutil",
    "socket",
    "tempfile",
    "uuid",
    "modelversions._cache",
    "modelversions._events",
    "modelversions.backends.s3",
    "modelversions.cli",
    "modelversions.fsck",
    "modelversions.serialization",
    "modelversions.serializers._checkout",
    "modelversions.serializers._manifest",
    "modelversions.serving",
    "modelversions.signing",
    "modelversions.ui",
)


def _new_modules(code: str, *args: str) -> set[str]:
    """The modules a fresh process imports while running ``code`` (after start-up)."""
    script = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"{code}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(proc.stdout.splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("imports") / "reg"
    reg = ModelRegistry(LocalBackend(path, durable=False))
    for i in range(3):
        reg.save("m", {"w": i})
    reg.deploy("m", "1.2.0")
    return path


def test_import_modelversions_imports_only_the_package() -> None:
    assert _new_modules("import modelversions") == {"modelversions"}


def test_from_import_model_registry_imports_nothing_heavy() -> None:
    new = _new_modules("from modelversions import ModelRegistry")
    assert "modelversions.registry" in new
    assert _heavy(new) == []


def test_reading_a_registry_imports_nothing_heavy(registry: Path) -> None:
    code = (
        "from modelversions import ModelRegistry\n"
        "reg = ModelRegistry(sys.argv[1])\n"
        "assert str(reg.current('m').version) == '1.2.0'\n"
        "assert len(reg.versions('m')) == 3 and reg.get('m', '1.0.0').size > 0\n"
        "assert reg.history('m')[-1].action == 'deploy'"
    )
    assert _heavy(_new_modules(code, str(registry))) == []


def test_cli_current_imports_nothing_heavy(registry: Path) -> None:
    code = (
        "from modelversions.cli import main\n"
        "assert main(['--registry', sys.argv[1], 'current', 'm', '--json']) == 0"
    )
    new = _new_modules(code, str(registry))
    own = {m for m in new if m == "modelversions.cli" or m.startswith("modelversions.cli.")}
    assert _heavy(new - own) == []  # a plain command line is parsed without argparse


def test_cli_help_and_errors_still_use_argparse(registry: Path) -> None:
    code = (
        "import contextlib, io\n"
        "from modelversions.cli import main\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    try:\n"
        "        main(['--registry', sys.argv[1], 'current'])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 2"
    )
    assert "argparse" in _new_modules(code, str(registry))


def test_loading_imports_what_loading_needs(registry: Path) -> None:
    """The lazy imports happen when needed: load, verify, serve, write all still work."""
    code = (
        "from modelversions import ModelRegistry\n"
        "reg = ModelRegistry(sys.argv[1])\n"
        "assert reg.load('m') == {'w': 2}\n"
        "assert reg.verify().ok\n"
        "with reg.serve('m', refresh=None) as served:\n"
        "    assert served.model == {'w': 2}"
    )
    new = _new_modules(code, str(registry))
    assert {"joblib", "modelversions.fsck", "modelversions.serving"} <= new


def test_every_public_name_resolves_to_its_home_object() -> None:
    code = (
        "import modelversions\n"
        "names = [n for n in modelversions.__all__ if getattr(modelversions, n) is None]\n"
        "assert not names, names\n"
        "from modelversions import *\n"
        "import modelversions.errors as e\n"
        "assert modelversions.IntegrityError is e.IntegrityError\n"
        "assert set(modelversions.__all__) <= set(dir(modelversions))"
    )
    _new_modules(code)  # raises CalledProcessError on a failed assertion
    from modelversions import errors, fsck, records, registry, serving, signing, version

    homes = (errors, fsck, records, registry, serving, signing, version, modelversions.backends)
    for name in modelversions.__all__:
        value = getattr(modelversions, name)
        if name != "__version__":
            assert any(getattr(h, name, None) is value for h in homes) or name in (
                "Serializer",
                "register_serializer",
            ), name
    assert registry.VerifyReport is fsck.VerifyReport  # re-exported lazily there too
    with pytest.raises(AttributeError):
        modelversions.no_such_name  # noqa: B018
    with pytest.raises(AttributeError):
        registry.no_such_name  # noqa: B018


def test_submodules_are_attributes_after_a_bare_import() -> None:
    code = (
        "import modelversions\n"
        "assert modelversions.errors.IntegrityError.__name__ == 'IntegrityError'\n"
        "assert modelversions.version.Version('1.2.3').major == 1\n"
        "assert modelversions.records.Status('stable').value == 'stable'"
    )
    _new_modules(code)


def test_type_checking_imports_match_the_lazy_table() -> None:
    """mypy and the docs read the TYPE_CHECKING block; __getattr__ reads _HOME."""
    tree = ast.parse((ROOT / "modelversions" / "__init__.py").read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
    )
    declared: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module is not None
        for alias in node.names:
            declared[alias.name] = node.module.removeprefix("modelversions.")
    expected = {
        name: modelversions._HOME.get(name, "errors")
        for name in modelversions.__all__
        if name != "__version__"
    }
    assert declared == expected


def test_the_lean_parser_knows_every_subcommand() -> None:
    full = _parser.build_parser()
    sub = next(a for a in full._actions if a.dest == "command")
    assert set(sub.choices or ()) == _parser._COMMANDS


@pytest.mark.parametrize(
    "argv",
    [
        ["--registry", "r", "current", "m"],
        ["current", "m", "--registry", "r", "--json", "--env", "staging"],
        ["--reg", "r", "--json", "history", "m", "--since", "2", "--limit", "3"],
        ["--registry", "list", "list", "m"],
        ["--registry", "current", "deploy", "m", "1.0.0", "--force", "--dry-run"],
        ["--verify-key-file", "a", "--verify-key-file", "b", "show", "m", "1.0.0"],
        ["prune", "m", "--keep", "2", "--reason", "current"],
        ["verify", "--repair", "--min-age", "0"],
        ["ui", "--port", "0"],
    ],
)
def test_the_lean_parse_equals_the_full_parse(argv: list[str]) -> None:
    assert vars(_parser.parse_args(argv)) == vars(_parser.build_parser().parse_args(argv))


@pytest.mark.parametrize(
    "argv", [["current"], ["--registry", "r", "current", "m", "extra"], ["nope", "m"]]
)
def test_a_bad_command_line_gets_the_full_parsers_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as lean:
        _parser.parse_args(argv)
    lean_err = capsys.readouterr().err
    with pytest.raises(SystemExit) as full:
        _parser.build_parser().parse_args(argv)
    assert (lean.value.code, lean_err) == (full.value.code, capsys.readouterr().err)
    assert lean.value.code == 2


def test_path_copies_folder_is_made_only_when_needed(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    reg.save("m", {"w": 1})
    reg.load("m", "1.0.0")
    assert reg._loader._checkouts is None  # loading an object needs no checkouts folder
    src = tmp_path / "weights.bin"
    src.write_bytes(b"w" * 10)
    reg.save("f", path=src)
    assert reg.load_path("f", "1.0.0").read_bytes() == b"w" * 10
    assert reg._loader._checkouts is not None
    reg.close()
