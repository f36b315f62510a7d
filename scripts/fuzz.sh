#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ (coverage + address sanitizer), replays
# every committed regression input, then fuzzes each target for a bounded time
# starting from its committed corpus.
#   scripts/fuzz.sh [seconds-per-target]     (default 60)
# New corpus entries go to fuzz/.work/ (not committed); a crash writes its input
# to fuzz/.work/crash-<target>-*, fails the script, and belongs in
# fuzz/regressions/<target>/ plus a unit test once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
targets=(FuzzHTTPInferBody FuzzGRPCInfer FuzzModelConfig FuzzDeidentifier)

echo "fuzz: building ${targets[*]}"
# -enable-testing: the targets reach the internal decoders with @testable import.
swift build --package-path fuzz --scratch-path fuzz/.build -c debug \
  --sanitize=fuzzer --sanitize=address -Xswiftc -enable-testing
bin="$(swift build --package-path fuzz --scratch-path fuzz/.build -c debug --show-bin-path)"

mkdir -p fuzz/.work
status=0
for target in "${targets[@]}"; do
  regressions=(fuzz/regressions/"$target"/*)
  if [ -e "${regressions[0]}" ]; then
    echo "fuzz: $target: replaying ${#regressions[@]} regression inputs"
    "$bin/$target" -rss_limit_mb=4096 "${regressions[@]}" > "fuzz/.work/$target-regressions.log" 2>&1 \
      || { echo "fuzz: $target: a regression input fails again"; tail -40 "fuzz/.work/$target-regressions.log"; status=1; continue; }
  fi
  work="fuzz/.work/$target-corpus"
  mkdir -p "$work"
  echo "fuzz: $target: ${seconds}s from $(ls fuzz/corpus/"$target" | wc -l) corpus inputs"
  # -timeout: one input running 10 s is a hang; -rss_limit_mb: memory bounded like the server's limits.
  if ! "$bin/$target" "$work" "fuzz/corpus/$target" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 -artifact_prefix="fuzz/.work/crash-$target-" \
      > "fuzz/.work/$target.log" 2>&1; then
    echo "fuzz: $target FAILED; input saved as fuzz/.work/crash-$target-*"
    tail -60 "fuzz/.work/$target.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "fuzz/.work/$target.log" | sed "s/^/fuzz: $target: /"
  fi
done
exit $status
