"""Write the small BIO-tagged corpus used by ``examples/ner_tagger.py``: short sentences made from templates
and name lists, drawn with a fixed seed, so the files are reproducible byte for byte.

The test part uses the training names for half of its entities and names never seen in training for the
other half, so a tagger has to use the context, not only memorise names.

Run: python examples/data/make_ner_corpus.py   (rewrites ner_train.txt and ner_test.txt beside this file)
"""
from __future__ import annotations

import os
import random

FIRST = ["Anna", "Marco", "Lucia", "John", "Maria", "Peter", "Sara", "Omar", "Elena", "David", "Chen", "Fatima",
         "Luca", "Julia", "Ahmed", "Grace", "Ivan", "Nora", "Paolo", "Emma", "Kenji", "Rosa", "Tomas", "Alice"]
LAST = ["Rossi", "Smith", "Bianchi", "Garcia", "Muller", "Kowalski", "Tanaka", "Silva", "Novak", "Brown",
        "Ferrari", "Jensen", "Okafor", "Dubois", "Moretti", "Wang", "Costa", "Larsen", "Haddad", "Quinn"]
CITIES = ["Rome", "Paris", "Berlin", "Madrid", "Lisbon", "Oslo", "Vienna", "Prague", "Milan", "Turin", "Dublin",
          "Cairo", "Lagos", "Tokyo", "Lima", "Quito", "New York", "Buenos Aires", "Cape Town", "Rio de Janeiro",
          "San Diego", "Hong Kong", "Kuala Lumpur", "Tel Aviv"]
COUNTRIES = ["Italy", "France", "Germany", "Spain", "Norway", "Japan", "Peru", "Kenya", "Egypt", "Brazil",
             "Canada", "Chile", "Poland", "Ireland", "New Zealand", "South Africa", "Sri Lanka", "Costa Rica"]
ORG_HEADS = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Vandelay", "Hooli", "Soylent", "Tyrell",
             "Cyberdyne", "Wonka", "Gringotts", "Aperture", "Nakatomi", "Oscorp", "Monarch", "Dunder"]
ORG_TAILS = ["Corporation", "Bank", "Industries", "Group", "Labs", "Foundation", "Systems", "Institute"]
ORG_FIXED = ["United Nations", "Red Cross", "World Bank", "Bank of Italy", "University of Turin",
             "National Gallery", "Royal Society", "Medical Council", "Port Authority", "City Council"]

TEMPLATES = [
    "{PER} was born in {LOC} .",
    "{PER} moved to {LOC} last year .",
    "{PER} works for {ORG} in {LOC} .",
    "{ORG} opened a new office in {LOC} .",
    "{ORG} hired {PER} as its new director .",
    "yesterday {PER} met {PER} in {LOC} .",
    "the mayor of {LOC} thanked {ORG} for the donation .",
    "{PER} said that {ORG} will grow next year .",
    "{PER} flew from {LOC} to {LOC} on monday .",
    "according to {ORG} , prices in {LOC} rose again .",
    "shares of {ORG} fell after the report .",
    "{PER} and {PER} founded {ORG} in {LOC} .",
    "the team from {LOC} won the match .",
    "{PER} visited the museum with her friends .",
    "a spokesman for {ORG} declined to comment .",
    "{PER} lives near the river in {LOC} .",
    "the new bridge in {LOC} was paid for by {ORG} .",
    "{PER} will speak at {ORG} on friday .",
    "talks between {ORG} and {ORG} ended without a deal .",
    "{PER} , a lawyer from {LOC} , joined {ORG} .",
    "it rained all week in {LOC} .",
    "nobody expected the storm to reach the coast .",
    "{PER} thanked the nurses at the hospital .",
    "the train to {LOC} was late again .",
]


def person(rng, names):
    first, last = names["first"], names["last"]
    r = rng.random()
    if r < 0.5:
        return [rng.choice(first), rng.choice(last)]
    if r < 0.75:
        return [rng.choice(first)]
    return ["Dr.", rng.choice(last)] if rng.random() < 0.5 else [rng.choice(last)]


def place(rng, names):
    return rng.choice(names["cities"] if rng.random() < 0.65 else names["countries"]).split()


def organisation(rng, names):
    if rng.random() < 0.6:
        return [rng.choice(names["org_heads"]), rng.choice(ORG_TAILS)]
    return rng.choice(names["org_fixed"]).split()


def sentence(rng, names) -> list[tuple[str, str]]:
    makers = {"PER": person, "LOC": place, "ORG": organisation}
    out = []
    for word in rng.choice(TEMPLATES).split():
        if word.startswith("{"):
            kind = word[1:-1]
            tokens = makers[kind](rng, names)
            for k, tok in enumerate(tokens):
                if tok == "Dr.":  # a title, outside the entity
                    out.append((tok, "O"))
                    continue
                begins = k == 0 or tokens[k - 1] == "Dr."
                out.append((tok, ("B-" if begins else "I-") + kind))
        else:
            out.append((word, "O"))
    return out


def split_names(rng):
    """Two thirds of every list for training; the rest appear only in the test part."""
    lists = {"first": FIRST, "last": LAST, "cities": CITIES, "countries": COUNTRIES, "org_heads": ORG_HEADS,
             "org_fixed": ORG_FIXED}
    seen, unseen = {}, {}
    for key, values in lists.items():
        values = list(values)
        rng.shuffle(values)
        cut = (2 * len(values)) // 3
        seen[key], unseen[key] = values[:cut], values[cut:]
    return seen, unseen


def corpus(n_train: int = 400, n_test: int = 120, seed: int = 2001) -> tuple[list, list]:
    rng = random.Random(seed)
    seen, unseen = split_names(rng)
    train = [sentence(rng, seen) for _ in range(n_train)]
    test = [sentence(rng, seen if k % 2 == 0 else unseen) for k in range(n_test)]
    return train, test


def render(sentences) -> str:
    return "\n".join("\n".join(f"{w} {t}" for w, t in s) + "\n" for s in sentences)


def write(directory: str = os.path.dirname(os.path.abspath(__file__))) -> list[str]:
    train, test = corpus()
    paths = []
    for name, part in (("ner_train.txt", train), ("ner_test.txt", test)):
        path = os.path.join(directory, name)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(render(part))
        os.replace(tmp, path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write():
        print("wrote", p)
