#!/usr/bin/env bash
# WebGPU training and decode benchmarks on a lent GPU machine (see README, "On a real GPU").
#
#   bash scripts/device_bench.sh prepare        here: builds the ignored folders the device run carries
#   bash scripts/device_bench.sh train [quick]  there: bench --train, a default quantize (seed 1) and its eval
#   bash scripts/device_bench.sh decode [quick] there: GEMV (200 per submission) and decode benchmarks
#
# The device machine has no Deno and no network, and only the repository travels (64 MiB at most), so
# `prepare` writes .dev/ (Deno compressed with xz, the runtime npm packages, a copy of ../shared/data) and .gl/
# (the Vulkan and EGL loaders); both must be ignored (.git/info/exclude) and named in the run's carry.
# `quick` uses tiny shapes, to test the plumbing on llvmpipe before spending device time.
set -u
PHASE=${1:?usage: device_bench.sh prepare|train|decode [quick]}
QUICK=${2:-}
if [ "$PHASE" = prepare ]; then
  set -e
  grep -qx "/.dev/" .git/info/exclude 2>/dev/null || echo /.dev/ >>.git/info/exclude
  grep -qx "/.gl/" .git/info/exclude || echo /.gl/ >>.git/info/exclude
  mkdir -p .dev .gl /tmp/amd64/partial
  xz -T0 -6 -c node_modules/deno/deno >.dev/deno.xz
  tar -czf .dev/nm.tgz $(npm ls --omit=dev --omit=optional --all --parseable | sed "s|^$PWD/||" | grep node_modules | sort -u)
  rm -rf .dev/data && cp -r ../shared/data .dev/data && chmod -R u+w .dev/data
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update >/dev/null
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  du -sh .dev .gl
  exit 0
fi
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
T0=$(date +%s)
rm -f /tmp/train.err /tmp/quantize.err /tmp/eval.err /tmp/gemv.err /tmp/decode.err
el() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/log.txt"; }
if [ -z "$QUICK" ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$ICD" ] && export VK_DRIVER_FILES=$ICD
  EGL=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [ -f "$EGL" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$EGL
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv >>"$OUT/log.txt" 2>&1
fi
D=/tmp/deno
[ -x $D ] || { xz -T4 -dc .dev/deno.xz >$D && chmod +x $D; }
mkdir -p node_modules/.bin
[ -e node_modules/.bin/deno ] || ln -sf $D node_modules/.bin/deno
[ -e node_modules/msgpackr ] || tar -xzf .dev/nm.tgz
[ -e ../shared/data/stories260K.bin ] || { mkdir -p ../shared && cp -r .dev/data ../shared/data; }
el "deno ready: $($D --version | head -1)"
$D eval 'const a = await navigator.gpu?.requestAdapter(); console.log(`adapter: ${a?.info.description ?? "none"}`);' \
  >>"$OUT/log.txt" 2>&1
# Without the GPU the whole run would measure llvmpipe: stop before spending device time on it.
if [ -z "$QUICK" ] && ! grep -qi nvidia "$OUT/log.txt"; then
  el "no NVIDIA adapter: stopping"
  exit 3
fi
if [ -n "$QUICK" ]; then
  TRAIN="--train-steps 1" BENCH="--shapes 256x256 --iters 2" DECODE="--decode-layers 1 --decode-steps 2" QSTEPS="--steps 4"
else
  # 22 layers with --fp32-decode did not finish building in 280 s there (random weights are made on the
  # CPU); 6 layers show the per-dispatch cost that decides decode speed on that machine.
  TRAIN="--train-steps 3" BENCH="--iters 200" DECODE="--decode-layers 6 --decode-steps 7" QSTEPS=""
fi
if [ "$PHASE" = train ]; then
  el "bench --train"
  timeout 150 $D run -A cli.ts bench --train $TRAIN --json >"$OUT/train.json" 2>/tmp/train.err
  el "bench --train rc=$?"
  el "quantize (default budget, seed 1)"
  timeout 200 $D run -A cli.ts quantize --seed 1 $QSTEPS --out /tmp/m.rabit --json >"$OUT/quantize.json" \
    2>/tmp/quantize.err
  el "quantize rc=$?"
  if [ -s /tmp/m.rabit ]; then
    timeout 45 $D run -A cli.ts eval --model /tmp/m.rabit --text ../shared/data/tinystories_dev.txt --holdout 0.1 \
      --json >"$OUT/eval.json" 2>/tmp/eval.err
    el "eval rc=$?"
  fi
else
  el "bench: GEMV"
  timeout 100 $D run -A cli.ts bench --no-tfjs --no-decode $BENCH --json >"$OUT/gemv.json" 2>/tmp/gemv.err
  el "bench GEMV rc=$?"
  el "bench: decode"
  timeout 150 $D run -A cli.ts bench --no-tfjs --shapes 2048x2048 $DECODE --json >"$OUT/decode.json" \
    2>/tmp/decode.err
  el "bench decode rc=$?"
fi
# Progress lines are long: keep the end of each log (at most 8 files come back from the machine).
for f in /tmp/train.err /tmp/quantize.err /tmp/eval.err /tmp/gemv.err /tmp/decode.err; do
  [ -f "$f" ] && { echo "== $f"; tail -c 3000 "$f"; echo; } >>"$OUT/err.txt"
done
el "done"
