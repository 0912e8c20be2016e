"""Check the objects of the extension's ROCm build (scripts/check_rocm_build.sh).

* Every kernel the host code can launch (each has a launch stub in the host
  part of an object) is in the device code of every offload target the build
  was given, and gfx942 and gfx950 are among the targets.
* Kernels for gfx9 (CDNA: MI200, MI300, MI350) run 64-wide waves (the code
  object metadata's .wavefront_size).
* On gfx942 and gfx950 every launchable greedy_sample kernel exchanges keys
  across lanes (ds_bpermute_b32), and the kernels load 16 bytes at a time
  (global_load_dwordx4; those for a vocab stride other than 1 cannot). The
  tensor-parallel path's kernels work a row a thread and are exempt.
* Every HIP runtime symbol the objects import is exported by the ROCm runtime
  library (libamdhip64.so).

The tools (LLVM's, from the ROCm chroot) run in the chroot, where the objects
are mounted at the same path.
  usage: check_rocm_objects.py OBJECTS_JSON CHROOT
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile

REQUIRED_TARGETS = ("gfx942", "gfx950")
WAVE64_PREFIX = "gfx9"
STUB = "__device_stub__"
GREEDY_KERNEL = "greedy_sample_kernel"  # in every greedy_sample kernel's mangled name


class Tools:
    def __init__(self, root: str):
        self.root = root
        bins = sorted(glob.glob(os.path.join(root, "usr/lib/llvm-*/bin/clang-offload-bundler")),
                      key=lambda p: int(re.search(r"llvm-(\d+)", p).group(1)))
        if not bins:
            raise SystemExit(f"no clang-offload-bundler under {root}/usr/lib/llvm-*/bin")
        self.bin = os.path.dirname(bins[-1])[len(root):]

    def run(self, tool: str, *args: str) -> str:
        command = ["chroot", self.root, "/usr/bin/env", "-i", "PATH=/usr/bin:/bin",
                   os.path.join(self.bin, tool), *args]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
        return done.stdout

    def symbols(self, path: str, *options: str) -> set:
        lines = self.run("llvm-nm", "--format=just-symbols", *options, path).split()
        return {line.split("@")[0] for line in lines}


def kernel_of_stub(stub_symbol: str) -> str:
    """The mangled kernel name of a host launch stub (clang names the stub
    after the kernel, with the prefix inside the same mangled identifier)."""
    return re.sub(rf"(\d+){STUB}", lambda m: str(int(m.group(1)) - len(STUB)), stub_symbol, count=1)


def device_code(tools: Tools, obj: str, scratch: str) -> dict:
    """Offload target (e.g. gfx942) -> code object file, for one host object."""
    base = os.path.join(scratch, os.path.basename(obj))
    sections = tools.run("llvm-readelf", "-S", "-W", obj)
    if ".hip_fatbin" not in sections:
        return {}
    fatbin = base + ".fatbin"
    tools.run("llvm-objcopy", f"--dump-section=.hip_fatbin={fatbin}", obj, base + ".stripped")
    bundles = tools.run("clang-offload-bundler", "--list", "--type=o", f"--input={fatbin}").split()
    code = {}
    for bundle in bundles:
        if not bundle.startswith("hip"):
            continue
        target = bundle.rsplit("-", 1)[1].split(":")[0]
        code_object = f"{base}.{target}.co"
        tools.run("clang-offload-bundler", "--unbundle", "--type=o", f"--input={fatbin}",
                  f"--targets={bundle}", f"--output={code_object}")
        code[target] = code_object
    return code


def kernel_metadata(tools: Tools, code_object: str) -> dict:
    """Kernel name -> wavefront size, from the code object's metadata note."""
    notes = tools.run("llvm-readelf", "--notes", code_object)
    kernels = {}
    name = None
    for line in notes.splitlines():
        found = re.match(r"\s*\.name:\s*(\S+)", line)
        if found:
            name = found.group(1)
        found = re.match(r"\s*\.wavefront_size:\s*(\d+)", line)
        if found and name is not None:
            kernels[name] = int(found.group(1))
            name = None
    return kernels


def kernel_instructions(tools: Tools, code_object: str) -> dict:
    """Kernel name -> its disassembly."""
    listing = tools.run("llvm-objdump", "-d", code_object)
    pieces = re.split(r"^[0-9a-f]+ <(.+)>:$", listing, flags=re.MULTILINE)
    return dict(zip(pieces[1::2], pieces[2::2]))


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        build = json.load(f)
    tools = Tools(os.path.abspath(sys.argv[2]))
    targets = [t for t in build["offload_archs"].split(";") if t]
    failures = []
    missing_targets = [t for t in REQUIRED_TARGETS if t not in targets]
    if missing_targets:
        failures.append(f"the build's offload targets {targets} lack {missing_targets}")

    launchable = set()
    imports = set()
    device = {target: {} for target in targets}  # target -> kernel -> wavefront size
    assembly = {target: {} for target in targets}
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(sys.argv[1]))) as scratch:
        for obj in build["objects"]:
            defined = tools.symbols(obj, "--defined-only")
            stubs = {s for s in defined if STUB in s}
            for stub in stubs:
                kernel = kernel_of_stub(stub)
                if kernel not in defined:
                    failures.append(f"{obj}: stub {stub} but no kernel handle {kernel}")
                launchable.add(kernel)
            imports |= {s for s in tools.symbols(obj, "--undefined-only")
                        if s.startswith(("hip", "__hip"))}
            code = device_code(tools, obj, scratch)
            if stubs and sorted(code) != sorted(targets):
                failures.append(f"{obj}: device code for {sorted(code)}, the build asked for {targets}")
            for target, code_object in code.items():
                device.setdefault(target, {}).update(kernel_metadata(tools, code_object))
                if target in REQUIRED_TARGETS:
                    assembly[target].update(kernel_instructions(tools, code_object))

    if not launchable:
        failures.append("no object holds a kernel launch stub: the launcher launches nothing?")
    for target in targets:
        missing = sorted(launchable - set(device[target]))
        if missing:
            failures.append(f"{target}: {len(missing)} launchable kernels have no device code, "
                            f"e.g. {missing[0]}")
        if target.startswith(WAVE64_PREFIX):
            narrow = sorted(k for k in launchable & set(device[target]) if device[target][k] != 64)
            if narrow:
                failures.append(f"{target}: {len(narrow)} kernels are not wave64, e.g. {narrow[0]} "
                                f"(.wavefront_size {device[target][narrow[0]]})")
    vector_loaders = {}
    for target in (t for t in REQUIRED_TARGETS if t in targets):
        bodies = {k: assembly[target][k] for k in launchable & set(assembly.get(target, {}))
                  if GREEDY_KERNEL in k}
        for kernel in sorted(k for k, body in bodies.items() if "ds_bpermute_b32" not in body):
            failures.append(f"{target}: no ds_bpermute_b32 (cross-lane exchange) in {kernel}")
        # Rows with a vocab stride other than 1 are read one element at a time.
        vector_loaders[target] = sum("global_load_dwordx4" in body for body in bodies.values())
        if vector_loaders[target] == 0:
            failures.append(f"{target}: no kernel has global_load_dwordx4 (16-byte loads)")

    runtime = glob.glob(os.path.join(tools.root, "usr/lib/*/libamdhip64.so")) + glob.glob(
        os.path.join(tools.root, "opt/rocm*/lib/libamdhip64.so"))
    if not runtime:
        failures.append("no libamdhip64.so in the ROCm chroot")
    else:
        exported = tools.symbols(runtime[0][len(tools.root):], "-D", "--defined-only")
        unresolved = sorted(imports - exported)
        if unresolved:
            failures.append(f"HIP symbols the runtime library does not export: {unresolved}")

    if failures:
        for failure in failures:
            print(f"FAIL: {failure}", file=sys.stderr)
        sys.exit(1)
    print(f"OK: {len(build['objects'])} objects; {len(launchable)} launchable kernels, each in the "
          f"device code for {', '.join(targets)}; wave64 on "
          f"{', '.join(t for t in targets if t.startswith(WAVE64_PREFIX))}; cross-lane exchanges in "
          f"each greedy_sample kernel and 16-byte loads in "
          f"{', '.join(f'{n} on {t}' for t, n in vector_loaders.items())}; {len(imports)} HIP runtime "
          f"symbols imported, all exported by {os.path.basename(runtime[0])}")


if __name__ == "__main__":
    main()
