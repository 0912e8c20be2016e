"""Compare the SASS of the plain greedy_sample kernels of two sm_90 builds.

    python3 scripts/compare_plain_sass.py BEFORE.sass AFTER.sass

Each file is `cuobjdump -sass` of tests/gpu_compile/instantiate_kernels.cu
built at one commit, e.g.

    nvcc -arch=sm_90 -O3 -std=c++17 -I<tree>/csrc/kernels -cubin -o k.cubin \\
        <tree>/tests/gpu_compile/instantiate_kernels.cu && cuobjdump -sass k.cubin > k.sass

Every plain kernel of BEFORE (kStats = false, or built before the kernels had
that template argument) must have the same instructions as its twin in AFTER:
the kernel of the same name, or, for a BEFORE without kStats, the AFTER kernel
whose template arguments are BEFORE's followed by kStats = false. Exits 1 on
any difference or missing twin.
"""

import re
import sys


def kernels(path):
    """{mangled name: [instruction text]} of a cuobjdump -sass listing."""
    found, name = {}, None
    for line in open(path):
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            name = m.group(1)
            found[name] = []
            continue
        m = re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;", line)
        if name and m:
            found[name].append(m.group(1))
    return found


def template_arguments(name):
    """The template argument list of a greedy_sample_kernel's mangled name,
    up to its last argument's closing E (the list ends ...Lb1EEEv)."""
    return name[: name.index("EEEv") + 1]


def has_stats_argument(name):
    # <..., OutT, bool kContiguous, bool kStats>: two bools last. Before
    # kStats the argument before the last bool was the output type.
    return re.search(r"Lb[01]ELb[01]E$", template_arguments(name)) is not None


def main(before_path, after_path):
    before, after = kernels(before_path), kernels(after_path)
    plain_after = {template_arguments(n)[: -len("Lb0E")]: code for n, code in after.items()
                   if has_stats_argument(n) and template_arguments(n).endswith("Lb0E")}
    compared = failures = 0
    for name, code in sorted(before.items()):
        if has_stats_argument(name):
            if not template_arguments(name).endswith("Lb0E"):
                continue  # a kernel with the extra outputs: not the plain path
            twin = after.get(name)
        else:
            twin = plain_after.get(template_arguments(name))
        compared += 1
        if twin is None:
            print(f"MISSING plain twin of {name}")
            failures += 1
        elif twin != code:
            print(f"DIFFERENT {name} ({len(code)} vs {len(twin)} instructions)")
            failures += 1
    print(f"{compared - failures}/{compared} plain kernels identical")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
