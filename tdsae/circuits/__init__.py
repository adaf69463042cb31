"""Circuit finding with discrete SAE codes (after O'Neill & Bui): which attention heads compute a behaviour.

    sae = train_code_sae(train_vectors, seed=0)                    # one small SAE shared over every head
    codes = discrete_codes(sae, head_vectors)                      # [examples, heads]: argmax latent per head
    nodes = node_scores(codes, positive)                           # codes a head shows on positive prompts only
    ranking_scores(nodes, in_circuit)              # {"roc_auc" (tie-aware), "average_precision", ...}
    baseline = mean_difference_scores(head_vectors, positive)      # |mean_pos - mean_neg|, no SAE
    control = node_scores(random_codes(head_vectors, seed=0), positive)  # random directions instead of latents

    pairs = minimal_pairs(task, traj, alpha, beta, tokenizer)     # positive prompts and their negatives, word for word

The method as published (codes), tested on planted circuits, and the organism's minimal pairs (prompts). Chapter
13's study, with its ablation ground truth and baselines, is tdsae.pipeline.circuits.circuit_study.
"""

from tdsae.circuits.codes import (ACDC_NODE_AUC, PAPER_NODE_AUC, CodeSAE, discrete_codes, edge_scores, edge_votes,
                                  mean_difference_scores, node_scores, random_codes, ranking_scores, train_code_sae)
from tdsae.circuits.prompts import MinimalPairs, minimal_pairs, stray_differences

__all__ = ["ACDC_NODE_AUC", "PAPER_NODE_AUC", "CodeSAE", "MinimalPairs", "discrete_codes", "edge_scores", "edge_votes",
           "mean_difference_scores", "minimal_pairs", "node_scores", "random_codes", "ranking_scores",
           "stray_differences", "train_code_sae"]
