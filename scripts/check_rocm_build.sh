#!/usr/bin/env bash
# Build the whole extension the way setup.py builds it on a ROCm torch, up to
# the objects, on a machine with neither AMD hardware nor a ROCm torch, and
# check what came out.
#
# The ROCm toolchain (hipcc, clang and HIP headers of Debian unstable's ROCm
# packages; Debian 12's HIP headers are too old for a current torch) lives in
# a minimal Debian unstable chroot, made once with debootstrap and kept under
# OUTDIR. scripts/rocm_build_objects.py then runs setup.py with torch's own
# hipify, flags and ninja build on its ROCm code path, compiling in the chroot
# for setup.py's offload architectures (gfx90a, gfx942, gfx950), and
# scripts/check_rocm_objects.py checks the objects. Needs root (debootstrap,
# chroot, mount).
#   usage: scripts/check_rocm_build.sh [OUTDIR]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mkdir -p "${1:-$repo/build/check-rocm}" && cd "${1:-$repo/build/check-rocm}" && pwd)
export PYTHON=${PYTHON:-python3}
root=$out/chroot
# torch's ROCm headers need rocThrust and rocPRIM; g++ compiles the C++ files,
# as a ROCm torch's extension build does with the system compiler.
packages=(hipcc libamdhip64-dev librocthrust-dev librocprim-dev g++)

# The Debian archive this machine's apt already uses: no host is named here.
debian_mirror() {
  local uri
  uri=$(apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' 2>/dev/null |
        grep -v -e security -e updates | head -n1)
  echo "${uri:-}"
}

make_chroot() {
  local stamp=$root/.safe-greedy-packages
  if [[ -f $stamp && $(cat "$stamp") == "${packages[*]}" ]]; then
    return
  fi
  if ! command -v debootstrap >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  local mirror
  mirror=$(debian_mirror)
  if [[ -z $mirror ]]; then
    apt-get update -qq
    mirror=$(debian_mirror)
  fi
  [[ -n $mirror ]] || { echo "no Debian archive found in apt's sources" >&2; exit 1; }
  echo "making a Debian unstable chroot with ${packages[*]} in $root (from $mirror)..." >&2
  rm -rf "$root"
  local IFS=,
  debootstrap --variant=minbase --include="${packages[*]}" unstable "$root" "$mirror" \
    >"$out/debootstrap.log" 2>&1 || { tail -n 20 "$out/debootstrap.log" >&2; exit 1; }
  unset IFS
  echo "${packages[*]}" >"$stamp"
}

make_chroot
hip_version=$(sed -n 's/^#define HIP_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' \
              "$root/usr/include/hip/hip_version.h" | paste -sd.)
echo "ROCm chroot (Debian unstable): HIP headers $hip_version;" \
  $(chroot "$root" dpkg-query -W -f='${Package} ${Version}; ' hipcc libamdhip64-dev \
    'clang-[0-9]*' 'g++-[0-9]*' 2>/dev/null | sed 's/[^ ;]* ;//g')

# torch's extension builder runs here and starts its compilers through these,
# which run the chroot's in the same folder (mounted at the same path there).
rocm_home=$out/rocm-home
mkdir -p "$rocm_home/bin" "$rocm_home/include"
for tool in hipcc:hipcc c++:g++; do
  cat >"$rocm_home/bin/${tool%%:*}" <<EOF
#!/bin/sh
exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root \\
  /bin/sh -c 'cd "\$0" && exec ${tool#*:} "\$@"' "\$PWD" "\$@"
EOF
  chmod +x "$rocm_home/bin/${tool%%:*}"
done

# A scratch copy of the project: torch's hipify writes its output beside the sources.
src=$out/src
rm -rf "$src" "$out/objects"
mkdir -p "$src"
tar -C "$repo" --exclude=./build --exclude=./.git -cf - . | tar -C "$src" -xf -

python_include=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
# The mounts live in a private mount namespace, so they go away with it.
unshare --mount --propagation private bash -euo pipefail -c '
  root=$1 out=$2 python_include=$3 repo=$4 src=$5 rocm_home=$6 hip_version=$7
  for dir in /proc /dev "$out" "$python_include"; do
    mkdir -p "$root$dir"
    mount --bind "$dir" "$root$dir"
  done
  CXX="$rocm_home/bin/c++" MAX_JOBS="${JOBS:-$(nproc)}" \
    "$PYTHON" "$repo/scripts/rocm_build_objects.py" "$src" "$out" "$rocm_home" "$hip_version"
  "$PYTHON" "$repo/scripts/check_rocm_objects.py" "$out/objects.json" "$root"
' _ "$root" "$out" "$python_include" "$repo" "$src" "$rocm_home" "$hip_version"
