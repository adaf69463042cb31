"""Circuit finding with discrete SAE codes (after O'Neill & Bui): which attention heads compute a behaviour.

    sae = train_code_sae(train_vectors, seed=0)                    # one small SAE shared over every head
    codes = discrete_codes(sae, head_vectors)                      # [examples, heads]: argmax latent per head
    nodes = node_scores(codes, positive)                           # codes a head shows on positive prompts only
    auc, ap = ranking_scores(nodes, in_circuit)                    # tie-aware ROC AUC and average precision

Groundwork for chapter 13: the method as published, tested on planted circuits. The head vectors, the prompts
and the ablation ground truth come from the organism in the chapter's pipeline.
"""

from tdsae.circuits.codes import (
                                  CodeSAE,
                                  discrete_codes,
                                  edge_scores,
                                  edge_votes,
                                  node_scores,
                                  ranking_scores,
                                  train_code_sae,
)

__all__ = ["CodeSAE", "discrete_codes", "edge_scores", "edge_votes", "node_scores", "ranking_scores",
           "train_code_sae"]
