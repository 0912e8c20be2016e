"""Compare the SASS of the plain greedy_sample kernels of two sm_90 cubins.

    python3 scripts/compare_plain_sass.py BEFORE.sass AFTER.sass

Each file is `cuobjdump -sass` output. A kernel of BEFORE (built before the
kernels gained their kStats template argument) is matched with the kernel of
AFTER whose template arguments are the same followed by kStats = false (the
plain instantiation); their instructions must be identical. Exits 1 on any
difference or unmatched kernel.
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


def main(before_path, after_path):
    before, after = kernels(before_path), kernels(after_path)
    # The plain instantiations of AFTER: their argument lists end in the
    # added kStats = false (Lb0E); without it, they are BEFORE's.
    plain = {}
    for name, code in after.items():
        args = template_arguments(name)
        if args.endswith("Lb0E"):
            plain[args[: -len("Lb0E")]] = code
    failures = 0
    for name, code in sorted(before.items()):
        twin = plain.get(template_arguments(name))
        if twin is None:
            print(f"MISSING plain twin of {name}")
            failures += 1
        elif twin != code:
            print(f"DIFFERENT {name} ({len(code)} vs {len(twin)} instructions)")
            failures += 1
    print(f"{len(before) - failures}/{len(before)} plain kernels identical")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
