#!/usr/bin/env bash
# Documentation and examples: converts the DocC catalog with warnings as errors (a broken symbol
# link, an undocumented parameter, an ambiguous reference all fail), then builds the Examples
# package and runs each example once with its defaults.
#
# No dependency is added for this: the symbol graph is extracted with the toolchain's
# swift-symbolgraph-extract from the debug build that .ci/run has already made (so nothing is
# recompiled), and converted with the toolchain's docc. The article code itself is compiled and run
# by the test suite (Tests/CNNTests/DocumentationExamplesTests.swift).
#
# DOCS_OUTPUT=<dir> keeps the converted archive there (default: a temporary folder, removed);
# SWIFT_BUILD_FLAGS (e.g. "-j 1") is passed to both builds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
START=$(date +%s)
read -r -a FLAGS <<< "${SWIFT_BUILD_FLAGS:-}"

echo "== DocC: symbol graph of CNN"
swift build ${FLAGS[@]+"${FLAGS[@]}"} --target CNN 2>&1 | tail -1
BIN=$(swift build --show-bin-path)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/symbol-graphs"
ARCHIVE=${DOCS_OUTPUT:-$WORK/CNN.doccarchive}
swift symbolgraph-extract -module-name CNN -minimum-access-level public \
  -target "$(uname -m)-unknown-linux-gnu" -I "$BIN/Modules" \
  -Xcc -fmodule-map-file="$BIN/CNNKernels.build/module.modulemap" -Xcc -I -Xcc Sources/CNNKernels/include \
  -output-dir "$WORK/symbol-graphs"

echo "== DocC: convert Sources/CNN/Documentation.docc (--warnings-as-errors)"
docc convert Sources/CNN/Documentation.docc \
  --additional-symbol-graph-dir "$WORK/symbol-graphs" \
  --output-path "$ARCHIVE" \
  --fallback-display-name CNN --fallback-bundle-identifier swift-cnn.CNN \
  --warnings-as-errors
PAGES=$(find "$ARCHIVE/data/documentation" -name '*.json' | wc -l)
echo "DocC archive: $PAGES pages${DOCS_OUTPUT:+ in $DOCS_OUTPUT}"

echo "== Examples: build"
if ! swift build ${FLAGS[@]+"${FLAGS[@]}"} --package-path Examples > "$WORK/examples-build.log" 2>&1; then
  cat "$WORK/examples-build.log"; exit 1
fi
if grep -E "warning:" "$WORK/examples-build.log"; then echo "Examples: the build has warnings"; exit 1; fi
tail -1 "$WORK/examples-build.log"
EXAMPLES_BIN=$(swift build --package-path Examples --show-bin-path)

for example in DigitClassifier StrategyExplorer PyTorchInterop CustomModel; do
  echo "== Examples: $example"
  T0=$(date +%s)
  (cd Examples && "$EXAMPLES_BIN/$example")
  echo "($example: $(( $(date +%s) - T0 )) s)"
done

echo "== docs OK in $(( $(date +%s) - START )) s"
