#!/usr/bin/env bash
# The default study's settings on a reduced grid (BatchNorm x the three feeds x SEEDS seeds, default steps,
# checkpoints and samples), run from an empty results folder by an earlier release and by this checkout, one after
# the other on the same machine with `snakemake --cores CORES`; prints both wall times, their ratio, and whether every
# run's metrics.csv (without its sha256 line) and train_log.csv are byte-identical. Both sides run committed code (the
# checkout's HEAD, not its uncommitted edits). REPEATS > 1 runs the pair again, the order alternating (release first, then current first, ...)
# so that a drift of the machine's speed weighs on both sides; prints each pair's ratio and their geometric mean, and
# compares the files across sides and repeats. Nothing else should run beside it.
#   benchmarks/side_by_side.sh [RELEASE=a664a1f] [SEEDS=2] [CORES=2] [REPEATS=1]
# Needs the checkout's .venv (make setup) and the real Fashion-MNIST (Debian's dataset-fashion-mnist).
set -euo pipefail
release=${1:-a664a1f}
seeds=${2:-2}
cores=${3:-2}
repeats=${4:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/ganablate-side-by-side.XXXX)
python=$here/.venv/bin/python
# Each side: its source tree (a worktree, removed on exit) and its study folder $work/<side> (kept).
trap 'for side in release current; do git -C "$here" worktree remove --force "$work/$side-tree" 2> /dev/null || true; done' EXIT
git -C "$here" worktree add --detach "$work/release-tree" "$release" > /dev/null
git -C "$here" worktree add --detach "$work/current-tree" HEAD > /dev/null
head_rev=$(git -C "$here" rev-parse --short HEAD)   # the commit measured, whatever HEAD is by the end

# Each side's `ganablate` is its own source tree run by the one environment (its dependencies are the same).
for side in release current; do
    mkdir -p "$work/$side/bin"
    printf '#!/bin/sh\nPYTHONPATH=%s exec %s -m ganablate.cli "$@"\n' "$work/$side-tree/src" "$python" > "$work/$side/bin/ganablate"
    chmod +x "$work/$side/bin/ganablate"
done

# The same study in each release's config format: the study's grid is the only difference from the default study's
# config (and, for the release, this checkout's execution keys). It sits in config/ since issue 29, at the root before.
default_config=$work/current-tree/config/config.yaml
[ -f "$default_config" ] || default_config=$work/current-tree/config.yaml
# A release with study.axes (since issue 22) takes the current config and lays runs out as feed~<feed>/norm~<norm>.
axes_release=0
grep -q "axes:" "$work/release-tree/workflow/schemas/config.schema.yaml" && axes_release=1
"$python" - "$default_config" "$work" "$seeds" "$axes_release" <<'EOF'
import sys, yaml
default, work, seeds = yaml.safe_load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
common = {k: v for k, v in default.items() if k != "study"}
common["stats"] = {"primary_metric": "fid", "primary_extractor": "domain"}
current = common | {"study": {"name": "default", "seeds": seeds,
                              "axes": {"feed": {"levels": ["split", "joint", "joint_consistent"], "reference": "split"},
                                       "norm": {"levels": ["batch"]}}}}
# Before study.axes, train.runs_per_job (how this checkout lays runs out in jobs) was a key the release did not know.
release = current if sys.argv[4] == "1" else common | {"train": {k: v for k, v in common["train"].items() if k != "runs_per_job"}} | {"study": {"name": "default", "feeds": ["split", "joint", "joint_consistent"], "norms": ["batch"],
                              "seeds": seeds}}
for side, config in (("release", release), ("current", current)):
    yaml.safe_dump(config, open(f"{work}/{side}/config.yaml", "w"), sort_keys=False)
EOF

# A study's results folder per side and repeat: $work/<side>-<r>, beside that side's config and bin.
declare -A wall
ratios=()
for r in $(seq 1 "$repeats"); do
    order="release current"
    [ $((r % 2)) = 0 ] && order="current release"
    for side in $order; do
        tree=$work/$side-tree
        mkdir -p "$work/$side-$r"
        start=$(date +%s.%N)
        (cd "$work/$side-$r" && PATH="$work/$side/bin:$here/.venv/bin:$PATH" PYTHONPATH="$tree/src" \
            "$python" -m snakemake --cores "$cores" -s "$tree/workflow/Snakefile" --configfile ../$side/config.yaml -q > snakemake.log 2>&1)
        wall[$side]=$(echo "$(date +%s.%N) - $start" | bc)
        echo "repeat $r, $side ($([ $side = release ] && echo "$release" || echo "$head_rev")): ${wall[$side]} s"
    done
    ratios+=("$(echo "scale=4; ${wall[current]} / ${wall[release]}" | bc)")
    echo "repeat $r, ratio current/release: ${ratios[-1]}"
done
echo "geometric mean of the ratios over $repeats repeat(s): $(printf '%s\n' "${ratios[@]}" | awk '{s += log($1)} END {printf "%.3f", exp(s / NR)}')"

# The same run in each layout: <feed>/<norm>/seed<S> before study.axes and feed~<feed>/norm~<norm>/seed<S> since;
# every repeat of either side against the release's first.
same=0 differ=0
for old in "$work"/release-1/results/default/runs/fashion-mnist/*/*/seed*; do
    rel=${old#"$work"/release-1/results/default/runs/fashion-mnist/}
    feed=${rel%%/*} rest=${rel#*/} norm=${rel#*/}
    norm=${norm%%/*} seed=${rest#*/}
    feed=${feed#feed~} norm=${norm#norm~}
    for r in $(seq 1 "$repeats"); do
        others=("$work/current-$r/results/default/runs/fashion-mnist/feed~$feed/norm~$norm/$seed")
        if [ "$r" -gt 1 ]; then others+=("$work/release-$r/results/default/runs/fashion-mnist/$rel"); fi
        for new in "${others[@]}"; do
            for name in metrics.csv train_log.csv; do
                # metrics.csv's last line, its sha256 (since issue 33), is left out: a release before it writes none.
                if cmp -s <(grep -v '^# sha256 ' "$old/$name") <(grep -v '^# sha256 ' "$new/$name"); then
                    same=$((same + 1))
                else
                    differ=$((differ + 1)); echo "differs: $new/$name"
                fi
            done
        done
    done
done
echo "byte-identical files (each against the release's first repeat): $same, differing: $differ"
echo "outputs kept in $work"
