"""The world's catalogue: harmful acts by risk category, request phrasings, jailbreak framings in
families, benign requests that look sensitive (each in several phrasings), and the light wrappers
around all of them. The data is `catalog.yaml`, next to this file; here it becomes typed, immutable
tables, in the file's order. The generator in `stair.world` draws from them.
"""

from dataclasses import dataclass
from importlib.resources import files

import yaml


@dataclass(frozen=True)
class Risk:
    label: str
    topic: str
    why: str
    alternative: str
    acts: tuple[str, ...]


@dataclass(frozen=True)
class Framing:
    template: str  # wraps a request: contains {request} once
    note: str  # how the teacher names it: "wrapped in <note>"


@dataclass(frozen=True)
class Benign:
    phrasings: tuple[str, ...]  # the same question in other words; same reading, key and answer
    key: str  # a phrase the answer contains: the helpfulness judge looks for it
    category: str
    reading: str
    answer: str


def _benign(items: list[dict]) -> tuple[Benign, ...]:
    return tuple(Benign(**{**item, "phrasings": tuple(item["phrasings"])}) for item in items)


_DATA = yaml.load(files(__package__).joinpath("catalog.yaml").read_text(encoding="utf-8"),
                  Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))

WRAPPERS: tuple[str, ...] = tuple(_DATA["wrappers"])  # each contains {q}, the request, once
RISKS: dict[str, Risk] = {name: Risk(**{**risk, "acts": tuple(risk["acts"])}) for name, risk in _DATA["risks"].items()}
CATEGORIES: tuple[str, ...] = tuple(RISKS)
REQUESTS: tuple[str, ...] = tuple(_DATA["requests"])  # each contains {act} once
FAMILIES: dict[str, dict[str, Framing]] = {
    family: {name: Framing(**framing) for name, framing in framings.items()}
    for family, framings in _DATA["families"].items()
}
FRAMINGS: dict[str, str] = {name: f.template for family in FAMILIES.values() for name, f in family.items()}
FRAMING_NOTES: dict[str, str] = {name: f.note for family in FAMILIES.values() for name, f in family.items()}
FRAMING_FAMILIES: dict[str, str] = {name: fam for fam, family in FAMILIES.items() for name in family}
# Each training item has five phrasings: SFT's three (so SFT learns the topic, not one wording), the SI-MCTS
# seeds' one and the held-out split's one ("seen topic, new words").
BENIGN_TRAIN: tuple[Benign, ...] = _benign(_DATA["benign_train"])
if any(len(item.phrasings) != 5 for item in BENIGN_TRAIN):
    raise ValueError("catalog.yaml: every benign_train item needs exactly five phrasings (SFT's three, then the "
                     "seeds' one, then held-out's one)")
# Only in the held-out split, so evaluation sees benign topics the model never trained on.
BENIGN_HELDOUT: tuple[Benign, ...] = _benign(_DATA["benign_heldout"])
del _DATA
