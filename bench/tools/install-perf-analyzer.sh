#!/usr/bin/env bash
# Installs Triton's perf_analyzer into bench/tools/perf_analyzer/ without
# touching the system. PyPI ships it only for glibc 2.38+ (manylinux_2_38),
# newer than Debian 12's, so the newer C libraries are unpacked from Debian 13
# into a private folder and the binary runs through that folder's loader.
# Prints the command prefix to run it (also written to bench/tools/perf_analyzer/run).
set -euo pipefail
cd "$(dirname "$0")"
dest="$PWD/perf_analyzer"
if [ -x "$dest/run" ]; then echo "$dest/run"; exit 0; fi
rm -rf "$dest" && mkdir -p "$dest"/{wheel,debs,root,apt/lists/partial,apt/cache/archives/partial}

python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_38_x86_64 \
  perf-analyzer==2.60.0 -d "$dest/wheel"
python3 - "$dest" <<'PY'
import pathlib, sys, zipfile
dest = pathlib.Path(sys.argv[1])
wheel = next((dest / "wheel").glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.endswith("bin/perf_analyzer"):
            (dest / "perf_analyzer.bin").write_bytes(z.read(name))
PY
chmod +x "$dest/perf_analyzer.bin"

# A private apt state pointing at Debian 13 (trixie) on the machine's own mirror.
mirror="$( (grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null; grep -h '^deb ' /etc/apt/sources.list 2>/dev/null) \
  | grep -m1 -oE "https?://[^ ]+/debian" || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
echo "deb [trusted=yes] $mirror trixie main" > "$dest/apt/sources.list"
apt_opts=(-o Dir::Etc::SourceList="$dest/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o Dir::State::Lists="$dest/apt/lists" -o Dir::Cache="$dest/apt/cache" -o APT::Get::List-Cleanup=0)
apt-get "${apt_opts[@]}" update -qq
(cd "$dest/debs" && apt-get "${apt_opts[@]}" download libc6 libstdc++6 libgcc-s1 libssl3t64 zlib1g >/dev/null)
for deb in "$dest"/debs/*.deb; do dpkg-deb -x "$deb" "$dest/root"; done

libs="$dest/root/usr/lib/x86_64-linux-gnu"
cat > "$dest/run" <<RUN
#!/usr/bin/env bash
exec "$libs/ld-linux-x86-64.so.2" --library-path "$libs" "$dest/perf_analyzer.bin" "\$@"
RUN
chmod +x "$dest/run"
"$dest/run" --version >/dev/null 2>&1 || "$dest/run" --help >/dev/null 2>&1 || true
echo "$dest/run"
