"""A sequential study's looks: `study.seeds` given as {first, block, cap} instead of a count. Seeds are consumed in
order from `start`; every cell still running at a look has run the same seeds, so the pairing by seed holds at every
look. Torch-free and numpy-free: the config's validation and the workflow read it."""

from __future__ import annotations

from dataclasses import dataclass

from ganablate.errors import DesignError

KEYS = ("first", "block", "cap", "start")


@dataclass(frozen=True)
class Looks:
    """Looks at first, first + block, ..., cap seeds: each look's seed count (`counts`) and its new seeds."""

    first: int
    block: int
    cap: int
    start: int = 0

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(range(self.first, self.cap + 1, self.block))

    @property
    def seeds(self) -> tuple[int, ...]:
        """Every seed the study may run, in the order it runs them."""
        return tuple(range(self.start, self.start + self.cap))

    def new_seeds(self, look: int) -> tuple[int, ...]:
        """The seeds look `look` (0-based) adds to every cell still running: one block, the first look's `first`."""
        low = 0 if look == 0 else self.counts[look - 1]
        return self.seeds[low : self.counts[look]]

    def as_dict(self) -> dict:
        return {
            "first": self.first,
            "block": self.block,
            "cap": self.cap,
            "start": self.start,
            "counts": list(self.counts),
        }


def looks_of(seeds) -> Looks | None:
    """study.seeds as Looks, checked; None for a fixed design (a count or a list of seeds). The schema checks each key's
    type and range; what it cannot say (how the keys fit together) is refused here in one line naming the key."""
    if not isinstance(seeds, dict):
        return None
    looks = Looks(**{key: seeds[key] for key in KEYS if key in seeds})
    if looks.cap < looks.first:
        raise DesignError(f"study.seeds.cap: {looks.cap} is below first ({looks.first}); allowed: cap >= first")
    if (looks.cap - looks.first) % looks.block:
        below = looks.first + looks.block * ((looks.cap - looks.first) // looks.block)
        raise DesignError(
            f"study.seeds.cap: {looks.cap} is not first + a whole number of blocks ({looks.first} + k x "
            f"{looks.block}); allowed: e.g. {below} or {below + looks.block}"
        )
    return looks


def check(seeds, stats: dict) -> None:
    """What looks ask of the analysis plan: something to decide, and the test whose boundaries they are."""
    if looks_of(seeds) is None:
        return
    if stats["test"] != "paired_t_log":
        raise DesignError(
            f"stats.test: {stats['test']} with study.seeds as looks; allowed: paired_t_log (the looks' boundaries "
            f"are the paired t's)"
        )
    if not (stats["confirmatory"] or stats["controls"]):
        raise DesignError(
            "study.seeds: looks, but no declared contrast to decide (stats.confirmatory, stats.controls); allowed: "
            "a count of seeds, or a declared contrast"
        )
