#!/usr/bin/env bash
# Reliability checks (see the README's "Reliability" section):
#   1. AddressSanitizer (with LeakSanitizer) on the whole test suite;
#   2. UndefinedBehaviorSanitizer (C kernels) on the whole test suite;
#   3. ThreadSanitizer on the concurrency tests, in the serial build (no OpenMP: libomp is not
#      instrumented, and TSan reports its internal synchronisation as races);
#   4. a bounded libFuzzer run of every target in Fuzz/ from its committed seed corpus.
# Each sanitizer uses its own scratch path. The normal debug build's tests (bad-input table, crash
# safety, determinism, memory) run in .ci/run with the rest of the suite.
#
# Environment: FUZZ_SECONDS (per target, default 30), RELIABILITY_SKIP (space-separated subset of
# "asan ubsan tsan fuzz"), FUZZ_STATS (file to append "target executions" lines to).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
FUZZ_SECONDS="${FUZZ_SECONDS:-10}"
SKIP=" ${RELIABILITY_SKIP:-} "
start_all=$(date +%s)
lap() { echo "   ($(( $(date +%s) - $1 )) s)"; }
# Runs a build quietly; on failure shows its end. Warnings are shown either way.
quiet_build() {
  local log; log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then tail -40 "$log"; rm -f "$log"; return 1; fi
  grep -E "warning:" "$log" | grep -vE "Cannot export local symbol|^warning: unable to find" | head -20 || true
  tail -1 "$log"; rm -f "$log"
}

# Runs a test command and shows its last lines; when it fails, also the lines naming what failed
# (a failed expectation, a sanitizer report), which the last lines alone do not show.
test_summary() {
  local log rc=0; log="$(mktemp)"
  "$@" >"$log" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    grep -E "✘ Test .*(recorded an issue|failed)|ERROR: [A-Za-z]+Sanitizer|runtime error:|WARNING: ThreadSanitizer" "$log" | head -40 || true
  fi
  tail -4 "$log"; rm -f "$log"
  return $rc
}

# Sanitizer reports are errors: stop at the first one, fail the run.
# allocator_may_return_null: a huge allocation must fail like malloc does (the library then throws
# outOfMemory), not abort inside the sanitizer.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=0"

export LSAN_OPTIONS="suppressions=$PWD/.ci/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/.ci/tsan.supp"
# The Swift runtime's own crash backtracer would race libFuzzer's and sanitizers' crash handling.
export SWIFT_BACKTRACE="enable=no"
# The sanitizer and fuzz builds compile the C kernels at -O1 (given after the package's -O3, so it
# wins): the usual level for sanitizers, the same code paths (ISA variants are chosen by target
# attributes, not by optimisation level), and Winograd's -O3 compile alone takes minutes of CPU per
# build under instrumentation against ~16 s at -O1.
KERNEL_OPT=(-Xcc -O1)

if [[ "$SKIP" != *" asan "* ]]; then
  echo "== AddressSanitizer + LeakSanitizer: full test suite"
  t=$(date +%s)
  quiet_build swift build --build-tests --sanitize=address --scratch-path .build-asan "${KERNEL_OPT[@]}"
  test_summary swift test --skip-build --no-parallel --sanitize=address --scratch-path .build-asan "${KERNEL_OPT[@]}"
  lap "$t"
fi

if [[ "$SKIP" != *" ubsan "* ]]; then
  # swiftc has no -sanitize=undefined on Linux (`swift build --sanitize=undefined` is refused), and
  # Swift needs none: its integer overflow, bounds and unwrap checks trap in the debug build. UBSan
  # instruments the C kernels, and the link pulls in its runtime.
  echo "== UndefinedBehaviorSanitizer (C kernels): kernel test suites"
  t=$(date +%s)
  quiet_build swift build --build-tests --scratch-path .build-ubsan "${KERNEL_OPT[@]}" -Xcc -fsanitize=undefined -Xcc -fno-sanitize=vptr \
    -Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined
  out=$(mktemp)
  # The C kernels are what UBSan instruments; their suites call every kernel on every ISA.
  swift test --skip-build --no-parallel --scratch-path .build-ubsan "${KERNEL_OPT[@]}" -Xcc -fsanitize=undefined -Xcc -fno-sanitize=vptr \
    -Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined --filter CNNKernelsTests 2>&1 | tee "$out" | tail -4
  # Any "runtime error:" line is a failure, even one a check recovered from.
  if grep -q "runtime error:" "$out"; then grep "runtime error:" "$out" | head -20; rm -f "$out"; exit 1; fi
  rm -f "$out"
  lap "$t"
fi

if [[ "$SKIP" != *" tsan "* ]]; then
  echo "== ThreadSanitizer: concurrency tests, serial kernels (--disable-default-traits)"
  t=$(date +%s)
  quiet_build swift build --build-tests --sanitize=thread --disable-default-traits --scratch-path .build-tsan "${KERNEL_OPT[@]}"
  test_summary swift test --skip-build --no-parallel --sanitize=thread --disable-default-traits --scratch-path .build-tsan "${KERNEL_OPT[@]}" --filter Concurrency
  lap "$t"
fi

if [[ "$SKIP" != *" fuzz "* ]]; then
  echo "== libFuzzer: ${FUZZ_SECONDS} s per target"
  t=$(date +%s)
  quiet_build swift build --package-path Fuzz --scratch-path Fuzz/.build -c debug "${KERNEL_OPT[@]}" \
    -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address
  bin="$(swift build --package-path Fuzz --scratch-path Fuzz/.build -c debug "${KERNEL_OPT[@]}" --show-bin-path)"
  for target in $(ls Fuzz/Corpus); do
    work="$(mktemp -d)"
    # New inputs go to the scratch corpus (first directory); the committed seeds are read only.
    log="$work/log"
    if ! "$bin/$target" "$work" "Fuzz/Corpus/$target" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
         -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/" >"$log" 2>&1; then
      echo "!! $target failed; the input that crashed it:"; ls "$work"/crash-* "$work"/oom-* "$work"/timeout-* 2>/dev/null || true
      grep -vE "^#[0-9]+" "$log" | tail -40
      exit 1
    fi
    runs=$(grep -E "^stat::number_of_executed_units" "$log" | awk '{print $2}')
    cov=$(grep -E "^#[0-9]+" "$log" | tail -1 | grep -oE "cov: [0-9]+" || true)
    echo "   $target: $runs executions in ${FUZZ_SECONDS} s, $cov, corpus $(ls "$work" | grep -vc log) new inputs"
    if [ -n "${FUZZ_STATS:-}" ]; then echo "$target $runs" >> "$FUZZ_STATS"; fi
    rm -rf "$work"
  done
  lap "$t"
fi

echo "== reliability checks passed in $(( $(date +%s) - start_all )) s"
