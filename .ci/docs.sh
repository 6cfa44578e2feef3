#!/usr/bin/env bash
# Documentation and examples: builds the DocC catalog with swift-docc-plugin, warnings as errors (a
# broken symbol link, an undocumented parameter, an ambiguous reference all fail), then builds each
# example package under Examples/ and runs it once with its defaults.
#
# The plugin extracts the symbol graph from the debug build that .ci/run has already made, so the
# library is not compiled again. The article code itself is compiled and run by the test suite
# (Tests/CNNTests/DocumentationExamplesTests.swift).
#
# The four example packages share one scratch folder (Examples/.build): the library they all depend
# on is compiled once, each example's own target once.
#
# DOCS_OUTPUT=<dir> keeps the converted archive there (default: a temporary folder, removed);
# SWIFT_BUILD_FLAGS (e.g. "-j 1") is passed to the example builds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
START=$(date +%s)
read -r -a FLAGS <<< "${SWIFT_BUILD_FLAGS:-}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ARCHIVE=${DOCS_OUTPUT:-$WORK/CNN.doccarchive}

echo "== DocC: swift package generate-documentation --target CNN --warnings-as-errors"
if ! swift package --disable-sandbox generate-documentation --target CNN --warnings-as-errors \
     --output-path "$ARCHIVE" > "$WORK/docc.log" 2>&1; then
  cat "$WORK/docc.log"; exit 1
fi
# SwiftPM's hint for a system library that pkg-config cannot find ("you may be able to install
# ompi-c using your system-packager") names the optional MPI trait's Open MPI, absent on a fresh
# machine until .ci/mpi.sh installs it; it says nothing about the catalog, so it is not counted.
if grep -E "^(warning|error):|: (warning|error):" "$WORK/docc.log" | grep -v "using your system-packager"; then
  echo "DocC: the catalog has warnings"; exit 1
fi
PAGES=$(find "$ARCHIVE/data/documentation" -name '*.json' | wc -l)
echo "DocC archive: $PAGES pages${DOCS_OUTPUT:+ in $DOCS_OUTPUT}"

for example in DigitClassifier StrategyExplorer PyTorchInterop CustomModel; do
  echo "== Examples/$example: build"
  T0=$(date +%s)
  if ! swift build ${FLAGS[@]+"${FLAGS[@]}"} --package-path "Examples/$example" --scratch-path Examples/.build \
       > "$WORK/$example-build.log" 2>&1; then
    cat "$WORK/$example-build.log"; exit 1
  fi
  if grep -E "warning:" "$WORK/$example-build.log"; then echo "Examples/$example: the build has warnings"; exit 1; fi
  BIN=$(swift build --package-path "Examples/$example" --scratch-path Examples/.build --show-bin-path)
  echo "== Examples/$example: run (built in $(( $(date +%s) - T0 )) s)"
  T0=$(date +%s)
  (cd "Examples/$example" && "$BIN/$example")
  echo "($example: $(( $(date +%s) - T0 )) s)"
done

echo "== docs OK in $(( $(date +%s) - START )) s"
