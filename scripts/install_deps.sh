#!/usr/bin/env bash
# Installs the Debian packages dualtune needs that are
# missing on this machine, then the npm packages of the browser test. Idempotent: does
# nothing when all are present.
# chromium: the report.html test opens the page headless; the serve page's browser test
# drives it with puppeteer-core from npm (Node.js/npm; no browser is downloaded).
# dpkg-dev: dpkg-shlibdeps for `cpack -G DEB`. binutils: readelf in the install test.
# libsqlite3-dev: the gallery's store. libcpp-httplib-dev: `dualtune serve`.
# libpq-dev: the PostgreSQL gallery store; postgresql: the server its tests start
# (tests/scripts/pg_cluster.sh runs initdb + pg_ctl in a temporary directory).
# curl: the test that runs docs/API.md's examples (scripts/api_examples.sh).
# python3-numpy: experiments/centroid_queries.py and its test (analysis, never at run time).
# python3-torch: the tests of model.init (a torchvision-layout ResNet-18 made by PyTorch,
# tests/fixtures/torchvision/make_resnet18.py) and of dualtune export (python/dualtune_models.py).
# python3-torch: exports the TorchScript modules of the torchscript-backbone tests
# (tests/fixtures/torchscript/make_models.py), and the user's model in docs/YOUR_MODEL.md.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(cmake g++ make ccache pkg-config zlib1g-dev
      libtorch-dev libopenblas-dev libfaiss-dev libopencv-dev libyaml-cpp-dev
      libcli11-dev nlohmann-json3-dev libspdlog-dev libgtest-dev libbenchmark-dev
      dataset-fashion-mnist gnuplot-nox libgloo-dev libsqlite3-dev
      clang-14 libclang-rt-14-dev libomp-14-dev
      libcpp-httplib-dev chromium dpkg-dev binutils python3-numpy python3-torch curl
      libpq-dev postgresql)
# The glyph generator's test (tests/scripts/test_make_glyphs.py) renders three faces of
# fonts-baekmuk with Pillow and fontTools. The full benchmark's fonts (about 260 MB to download) are
# listed in tools/openset/README.md for whoever generates it; CI does not need them.
pkgs+=(python3-pil python3-fonttools fonts-baekmuk)
# Node.js and npm may come from Debian (nodejs, npm) or from elsewhere (NodeSource's
# nodejs bundles npm): ask Debian only for the commands that are missing.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm packages of tests/browser (puppeteer-core, pinned by its package-lock.json), only
# when node_modules does not match the lock file yet.
browser=tests/browser
if ! cmp -s "$browser/package-lock.json" "$browser/node_modules/.dualtune-lock.json"; then
  echo "installing npm packages of $browser (npm ci)"
  (cd "$browser" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  cp "$browser/package-lock.json" "$browser/node_modules/.dualtune-lock.json"
fi
