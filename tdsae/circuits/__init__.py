"""Circuit finding with discrete SAE codes (after O'Neill & Bui): which attention heads compute a behaviour.

    sae = train_code_sae(train_vectors, seed=0)                    # one small SAE shared over every head
    codes = discrete_codes(sae, head_vectors)                      # [examples, heads]: argmax latent per head
    nodes = node_scores(codes, positive)                           # codes a head shows on positive prompts only
    ranking_scores(nodes, in_circuit)              # {"roc_auc" (tie-aware), "average_precision", ...}
    baseline = mean_difference_scores(head_vectors, positive)      # |mean_pos - mean_neg|, no SAE
    control = node_scores(random_codes(head_vectors, seed=0), positive)  # random directions instead of latents

Groundwork for chapter 13: the method as published, tested on planted circuits. The head vectors, the prompts
and the ablation ground truth come from the organism in the chapter's pipeline.
"""

from tdsae.circuits.codes import (CodeSAE, discrete_codes, edge_scores, edge_votes, mean_difference_scores,
                                  node_scores, random_codes, ranking_scores, train_code_sae)

__all__ = ["CodeSAE", "discrete_codes", "edge_scores", "edge_votes", "mean_difference_scores", "node_scores",
           "random_codes", "ranking_scores", "train_code_sae"]
