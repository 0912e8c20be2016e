"""safe_greedy.extension: where the compiled extension cannot load (a torch
older than the stable ABI it targets, or a GPU build under a torch without that
GPU runtime), importing safe_greedy raises an ImportError that says why.
scripts/check_wheels.sh (CI) meets the second case for real: a CUDA wheel
under a CPU-only torch."""

import builtins

import pytest
import torch

from safe_greedy import extension


@pytest.mark.parametrize(
    "version, release",
    [("2.10.0", (2, 10)), ("2.14.1+cu130", (2, 14)), ("2.9.1+rocm6.4", (2, 9)), ("nightly", None)],
)
def test_the_torch_release_is_read_from_its_version(version, release):
    assert extension._torch_release(version) == release


def test_a_torch_older_than_the_target_is_named(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.9.1")
    with pytest.raises(ImportError, match=r"needs torch 2\.10 or later; this is torch 2\.9\.1"):
        extension.load()


def test_an_extension_that_cannot_load_is_explained(monkeypatch):
    real_import = builtins.__import__

    def failing_import(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "safe_greedy" and fromlist and "_C" in fromlist:
            raise ImportError("libtorch_cuda.so: cannot open shared object file")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(ImportError) as info:
        extension.load()
    message = str(info.value)
    assert "could not be loaded under torch" in message
    assert "libtorch_cuda.so: cannot open shared object file" in message
    assert "SAFE_GREEDY_BUILD=cpu" in message
    assert isinstance(info.value.__cause__, ImportError)


def test_the_loaded_extension_is_the_package_s():
    assert extension._C.__name__ == "safe_greedy._C"


def test_the_oldest_torch_is_the_same_in_the_build_and_at_import():
    # setup.py's TORCH_TARGET_VERSION decides what the binary needs; the build
    # requirement and the import check must name the same release. Only a
    # source tree has setup.py (a wheel's test copy does not).
    import ast
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parent.parent
    if not (root / "setup.py").is_file():
        pytest.skip("no source tree here (setup.py)")
    target = None
    for node in ast.parse((root / "setup.py").read_text()).body:
        names = [getattr(t, "id", None) for t in getattr(node, "targets", [])]
        if "TORCH_TARGET_VERSION" in names:
            target = ast.literal_eval(node.value)
    assert target == extension.OLDEST_TORCH
    requirement = re.search(r'"torch>=([0-9]+)\.([0-9]+)"', (root / "pyproject.toml").read_text())
    assert requirement and tuple(int(n) for n in requirement.groups()) == target
