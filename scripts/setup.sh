# Sourced by the scripts: installs the Debian packages tapegrad needs, only those missing, and
# configures + builds the tree in build/. Works on a fresh Debian machine as root (or with sudo).

# python3 runs the doc checks (tests/docs) and the PyTorch side of the parity tests.
tapegrad_packages=(cmake ninja-build g++ pkg-config libfmt-dev libgtest-dev libgmock-dev
  libopenblas-dev zlib1g-dev nlohmann-json3-dev libcli11-dev libbenchmark-dev gnuplot-nox graphviz
  python3)

ensure_packages() {
  local missing=() package
  for package in "${tapegrad_packages[@]}" "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing missing packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build_tree() {
  local build_dir=${1:-build}
  shift || true
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$build_dir" -j"$(nproc)"
}
