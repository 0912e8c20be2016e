"""`import safe_greedy` is silent, with numpy and without it.

torch warns at import ("Failed to initialize NumPy") when numpy is absent;
safe_greedy never uses numpy, and the README's commands do not install it.
Each check runs a fresh interpreter with warnings as errors; "without numpy"
blocks the module with an import hook, as if it were not installed.
"""

import os
import subprocess
import sys

import pytest

_BLOCK_NUMPY = """
import sys
class _NoNumpy:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" or name.startswith("numpy."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoNumpy())
"""

_USE = """
import safe_greedy, torch
assert "numpy" not in sys.modules or {numpy_allowed}
x = torch.randn(3, 100)
assert torch.equal(safe_greedy.argmax(x), torch.argmax(x, -1))
print("clean")
"""


@pytest.mark.parametrize("numpy", ["blocked", "as installed"])
def test_import_is_silent(numpy):
    code = (_BLOCK_NUMPY if numpy == "blocked" else "import sys\n") + _USE.format(
        numpy_allowed=numpy != "blocked"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                           text=True, timeout=300, env=env)
    assert child.returncode == 0 and child.stdout.strip() == "clean", child.stderr[-3000:]
    assert child.stderr == "", child.stderr[-3000:]
