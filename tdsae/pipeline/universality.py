"""Feature spaces of several networks on the same words (groundwork for chapter 12, after Lan et al.).

    readers = shared_readers(S, "twostep")                 # every organism, a second SAE seed, the untrained net
    stores = {name: reader.store for name, reader in readers.items()}  # the same held-out agents' transcripts
    result = compare_feature_spaces(readers["organism 0"], readers["organism 1"], layer_a=2, layer_b=2,
                                    selection=split_experiments(S.n_experiments, S.seed))

The organisms share a tokenizer, so all of them read the held-out agents' transcripts (AGENTS) at the same
positions, as Lan et al. ran two LLMs on the same tokens. Each organism's SAEs are chapter 7's, trained on its
own play; the ceiling is organism 0 against itself with a second SAE seed (chapter 11 trains it), the floor
organism 0 against its untrained step-0 network. No SAE is trained here that those chapters did not train.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tdsae.latents.profiles import units_at
from tdsae.latents.similarity import latent_correlations, linear_cka, pair_latents, rsa_null, svcca_null
from tdsae.pipeline.episodes import AGENTS, check_request, harvested_store, model_source, untrained_source
from tdsae.pipeline.organisms import population
from tdsae.pipeline.saes import analysis_saes
from tdsae.validation import ORGANISM, check_count, check_number, check_seed


@dataclass
class Reader:
    """One network reading the shared transcripts: its residual stream and the SAEs that decompose it."""

    name: str  # e.g. "organism 1", "organism 0, SAE seed 1", "untrained"
    store: object  # ActivationStore on the held-out agents' transcripts
    saes: dict  # {layer: LayerSAE}


def shared_readers(settings, task_name: str = "twostep", store=None) -> dict[str, Reader]:
    """Every organism of the population with its own SAEs, organism 0 with a second SAE seed, and organism 0's
    untrained step-0 network with its SAEs, all reading the held-out agents' transcripts of ``task_name``."""
    check_request(settings, task_name)
    if settings.model != ORGANISM:
        raise ValueError(f"shared_readers compares the preset's organisms, and these settings study {settings.model!r}:"
                         " pass tdsae.pipeline.organism_settings(settings)")
    readers = {}
    for member in population(settings):
        _, saes = analysis_saes(member, task_name, store=store)
        readers[f"organism {member.organism}"] = Reader(f"organism {member.organism}",
                                                        harvested_store(member, task_name, played_by=AGENTS,
                                                                        store=store), saes)
    first = population(settings)[0]
    final = model_source(first, task_name)
    _, reseeded = analysis_saes(first, task_name, model=final, played_by=final, sae_seed=first.seed + 1, store=store)
    readers["organism 0, SAE seed 1"] = Reader("organism 0, SAE seed 1", readers["organism 0"].store, reseeded)
    untrained = untrained_source(first, store, task_name)
    _, untrained_saes = analysis_saes(first, task_name, model=untrained, played_by=final, store=store)
    readers["untrained"] = Reader("untrained", harvested_store(first, task_name, model=untrained, played_by=AGENTS,
                                                               store=store), untrained_saes)
    return readers


def compare_feature_spaces(a: Reader, b: Reader, layer_a: int, layer_b: int, selection: np.ndarray,
                           threshold: float = 0.5, n_permutations: int = 1000, seed: int = 0) -> dict:
    """Pair a's latents with b's on the selection half of the experiments and score the pairing on the other half.

    Pairing (latent_correlations on the same rows): many-to-one (Lan et al.'s best partner) and one-to-one
    (Hungarian). For each: the share of a's live latents whose partner correlates at least ``threshold`` on the
    report half; SVCCA under both rules and RSA of the paired decoder rows, each against the shuffled-pairing
    null (svcca_null, rsa_null). Linear CKA of the raw residual streams on the report half needs no SAE.
    Returns: {"cka", "pairings": DataFrame (one row per pairing: n_pairs, share_above, svcca_released,
    svcca_intended, k_intended_a, rsa, and each measure's null_high and p)}.
    """
    threshold = check_number(threshold, "threshold", low=-1, high=1)
    n_permutations, seed = check_count(n_permutations, "n_permutations"), check_seed(seed)
    for reader, layer in ((a, layer_a), (b, layer_b)):
        if layer not in reader.saes:
            raise ValueError(f"{reader.name} has no SAE at layer {layer!r}; it has layers {sorted(reader.saes)}")
    if not a.store.index[["experiment", "position", "kind"]].equals(b.store.index[["experiment", "position", "kind"]]):
        raise ValueError(f"{a.name} and {b.name} did not read the same tokens: their stores' indexes differ")
    index = a.store.index
    fit = np.asarray(selection)[index.experiment.to_numpy()]
    rows = index.row.to_numpy()
    latents = [units_at(reader.store, layer, rows, reader.saes[layer].sae) for reader, layer in ((a, layer_a),
                                                                                             (b, layer_b))]
    decoders = [reader.saes[layer].sae.W_dec.detach().float().cpu().numpy() for reader, layer in ((a, layer_a),
                                                                                               (b, layer_b))]
    fitted = latent_correlations(latents[0][fit], latents[1][fit])
    scored = latent_correlations(latents[0][~fit], latents[1][~fit])
    table = []
    for how in ("many-to-one", "one-to-one"):
        pairs = pair_latents(fitted, how)
        report = scored[pairs.a.to_numpy(), pairs.b.to_numpy()]
        paired_a, paired_b = decoders[0][pairs.a.to_numpy()], decoders[1][pairs.b.to_numpy()]
        row = {"pairing": how, "n_pairs": len(pairs), "share_above": float(np.mean(np.nan_to_num(report) >= threshold))}
        nulls = {"svcca_released": svcca_null(paired_a, paired_b, "released", n_permutations, seed),
                 "svcca_intended": svcca_null(paired_a, paired_b, "intended", n_permutations, seed),
                 "rsa": rsa_null(paired_a, paired_b, n_permutations, seed)}
        for name, null in nulls.items():
            row.update({name: null["score"], f"{name}_null_high": null["null_high"], f"{name}_p": null["p"]})
        row["k_intended_a"] = nulls["svcca_intended"]["k_a"]
        table.append(row)
    cka = linear_cka(a.store.acts(layer_a, rows[~fit]), b.store.acts(layer_b, rows[~fit]))
    return {"cka": cka, "pairings": pd.DataFrame(table).set_index("pairing")}
