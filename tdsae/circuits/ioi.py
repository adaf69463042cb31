"""Indirect-object identification prompts (Wang et al. 2022) for a pretrained LM's circuit, as O'Neill & Bui used them.

    pairs = ioi_pairs(tokenizer, n_pairs=60, seed=0)
    # positive: "When Mary and John went to the store, John gave a drink to" -> " Mary"
    # negative: "When Mary and John went to the store, Kate gave a drink to"   (ABC: the indirect object is unknown)

Half the prompts name the indirect object first (ABBA), half the subject first (BABA). Every name is one token of the
tokenizer with its leading space, so a positive prompt and its ABC counterpart have the same length and differ in
the second mention of the subject only.
"""

from __future__ import annotations

import numpy as np
import torch

from tdsae.circuits.prompts import PromptPairs
from tdsae.validation import check_count, check_seed

# {S} is the subject, {IO} the indirect object; the first clause names both, in the order the pattern gives.
IOI_TEMPLATES = (
    "Then,{first} and{second} went to the {place}.{S} gave a {object} to",
    "When{first} and{second} went to the {place},{S} gave a {object} to",
    "After{first} and{second} went to the {place},{S} gave a {object} to",
    "While{first} and{second} were working at the {place},{S} gave a {object} to",
    "Friends{first} and{second} found a {object} at the {place}.{S} gave it to",
    "When{first} and{second} got a {object} at the {place},{S} decided to give it to",
    "Then,{first} and{second} had a long argument. Afterwards{S} said to",
    "After the lunch,{first} and{second} went to the {place}.{S} gave a {object} to",
)
IOI_NAMES = ("Mary", "John", "Tom", "James", "Dan", "Sid", "Martin", "Amy", "Kate", "Anne", "Paul", "Mark", "Lisa",
             "Sarah", "David", "Michael", "Laura", "Emma", "Alice", "Bob", "Jack", "Peter", "Ryan", "Chris", "Steve",
             "Luke", "Jane", "Rose", "Ben", "Sam", "Adam", "Eric", "Kevin", "Lucy", "Nick", "Tim", "Alex", "Daniel")
IOI_PLACES = ("store", "garden", "restaurant", "school", "hospital", "office", "house", "station")
IOI_OBJECTS = ("ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack")


def one_token_names(tokenizer, names=IOI_NAMES) -> list[str]:
    """The names that the tokenizer writes as one token with a leading space (" Mary"), and knows (not unknown)."""
    found = []
    for name in names:
        try:
            ids = tokenizer(" " + name, add_special_tokens=False)["input_ids"]
        except Exception:  # a vocabulary without an unknown token (the organism's) refuses words it lacks
            continue
        if len(ids) == 1 and ids[0] != tokenizer.unk_token_id:
            found.append(name)
    return found


def ioi_pairs(tokenizer, n_pairs: int = 60, seed: int = 0) -> PromptPairs:
    """n_pairs IOI prompts and their ABC corruptions (the subject's second mention replaced by a third name).

    Args: tokenizer: the model's (a Hugging Face tokenizer); n_pairs: prompts (half ABBA, half BABA); seed: the draw
    of template, names, place and object. Returns: PromptPairs whose target is the indirect object's name token,
    read at the last token; the rows are left unpadded where the templates agree in length and right-padded where not.
    """
    n_pairs, seed = check_count(n_pairs, "n_pairs"), check_seed(seed)
    names = one_token_names(tokenizer)
    if len(names) < 3:
        raise ValueError(f"the tokenizer writes only {len(names)} of the {len(IOI_NAMES)} names as one token "
                         f"({names}); IOI needs at least 3")
    rng = np.random.default_rng(seed)
    positives, negatives, targets = [], [], []
    for row in range(n_pairs):
        template = IOI_TEMPLATES[rng.integers(len(IOI_TEMPLATES))]
        io, subject, other = (" " + names[i] for i in rng.choice(len(names), 3, replace=False))
        first, second = (io, subject) if row % 2 == 0 else (subject, io)  # ABBA, then BABA
        fill = {"first": first, "second": second, "place": IOI_PLACES[rng.integers(len(IOI_PLACES))],
                "object": IOI_OBJECTS[rng.integers(len(IOI_OBJECTS))]}
        positive = tokenizer(template.format(S=subject, **fill), add_special_tokens=False)["input_ids"]
        negative = tokenizer(template.format(S=other, **fill), add_special_tokens=False)["input_ids"]
        if len(positive) != len(negative):  # a name merged with its neighbour: never with one-token names
            raise ValueError(f"an IOI prompt and its corruption tokenise to different lengths: {template!r}")
        positives.append(positive)
        negatives.append(negative)
        targets.append(tokenizer(io, add_special_tokens=False)["input_ids"][0])
    lengths = torch.tensor([len(p) for p in positives])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    positive, negative = (torch.full((n_pairs, int(lengths.max())), pad, dtype=torch.long) for _ in range(2))
    for row, (p, q) in enumerate(zip(positives, negatives)):
        positive[row, :len(p)], negative[row, :len(q)] = torch.tensor(p), torch.tensor(q)
    mask = (torch.arange(positive.shape[1])[None] < lengths[:, None]).long()
    return PromptPairs(positive, negative, mask, lengths - 1, torch.tensor(targets))
