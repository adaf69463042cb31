"""O'Neill & Bui's discrete-code circuit scores, as their released code computes them, with its traps made explicit.

One small SAE is shared over every attention head's output vector (z · W_O, no output bias; averaged over positions
in the paper). Each (prompt, head) is reduced to one integer, its most active latent. A head whose codes on positive
prompts (the model can predict the next token) never occur on negative ones (it cannot) scores high. The released
code's node score is that raw integer count, passed through a softmax that changes no ranking, so scores tie
heavily: ranking_scores computes a tie-aware ROC AUC and the average precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tdsae.validation import check_count, check_number, check_seed

PAPER_LATENTS = 200  # num_unique in the released config
PAPER_EPOCHS = 500  # full-batch epochs
PAPER_LR = 1e-3  # Adam
PAPER_L1 = 0.02  # lambda for IOI and Greater-than (0.05 only for docstring)
# Node ROC AUCs against published circuits: the SAE-code method (mean of 10 trials in the released results) and ACDC
# (Conmy et al.'s auc_tables, corrupted-activation ablation; docstring with the task metric), on the same tasks.
PAPER_NODE_AUC = {"IOI": 0.868, "Greater-than": 0.855, "docstring": 0.869}
ACDC_NODE_AUC = {"IOI": 0.873, "Greater-than": 0.890, "docstring": 0.938}


@dataclass
class CodeSAE:
    """The paper's SAE: a bias shared by encoder input and decoder output, ReLU latents, unit-norm dictionary rows."""

    bias: np.ndarray  # [d]
    encoder: np.ndarray  # [d, k]
    decoder: np.ndarray  # [k, d], unit-norm rows

    def latents(self, vectors: np.ndarray) -> np.ndarray:
        """[..., d] -> [..., k] latent activations."""
        return np.maximum((np.asarray(vectors, float) - self.bias) @ self.encoder, 0.0)


def _vectors(vectors, name: str = "vectors") -> np.ndarray:
    array = np.asarray(vectors, float)
    if array.ndim < 2 or array.shape[-1] < 1 or array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a finite array [..., d] with at least one vector; got shape {array.shape}")
    return array


def train_code_sae(vectors, n_latents: int = PAPER_LATENTS, l1: float = PAPER_L1, epochs: int = PAPER_EPOCHS,
                   lr: float = PAPER_LR, seed: int = 0) -> CodeSAE:
    """Train the paper's SAE on head vectors [..., d] (all of them in one batch, every epoch).

    Loss: mean squared error + l1 * mean absolute latent; after each Adam step the dictionary rows are renormalised
    to unit norm, and the gradient's component along each row is removed before the step (as in the released code,
    after Anthropic's "Towards Monosemanticity"). Deterministic for a seed.
    """
    data = _vectors(vectors).reshape(-1, np.asarray(vectors).shape[-1])
    n_latents, epochs, seed = check_count(n_latents, "n_latents"), check_count(epochs, "epochs"), check_seed(seed)
    l1, lr = check_number(l1, "l1", low=0), check_number(lr, "lr", low=0, low_open=True)
    generator = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(data, dtype=torch.float32)
    d = x.shape[1]
    decoder = torch.randn(n_latents, d, generator=generator)
    decoder = torch.nn.Parameter(decoder / decoder.norm(dim=1, keepdim=True))
    encoder = torch.nn.Parameter(decoder.detach().T.clone())
    bias = torch.nn.Parameter(x.mean(0).clone())
    optimizer = torch.optim.Adam([bias, encoder, decoder], lr=lr)
    for _ in range(epochs):
        latents = torch.relu((x - bias) @ encoder)
        loss = ((latents @ decoder + bias - x) ** 2).mean() + l1 * latents.abs().mean()
        optimizer.zero_grad()
        loss.backward()
        with torch.no_grad():  # keep the step tangent to the unit sphere of each dictionary row
            decoder.grad -= (decoder.grad * decoder).sum(1, keepdim=True) * decoder
        optimizer.step()
        with torch.no_grad():
            decoder /= decoder.norm(dim=1, keepdim=True)
    return CodeSAE(bias.detach().numpy().astype(float), encoder.detach().numpy().astype(float),
                   decoder.detach().numpy().astype(float))


def discrete_codes(sae: CodeSAE, head_vectors) -> np.ndarray:
    """[examples, heads, d] -> [examples, heads] integer codes: each head's most active latent (the first on ties,
    latent 0 when none fires, as numpy's argmax and the released code give)."""
    vectors = _vectors(head_vectors, "head_vectors")
    if vectors.ndim != 3:
        raise ValueError(f"head_vectors must be [examples, heads, d]; got shape {vectors.shape}")
    return sae.latents(vectors).argmax(-1)


def _split(codes, positive) -> tuple[np.ndarray, np.ndarray]:
    codes, positive = np.asarray(codes), np.asarray(positive)
    if codes.ndim != 2 or positive.shape != (codes.shape[0],) or positive.dtype != bool:
        raise ValueError(f"codes must be [examples, heads] and positive a bool [examples]; got shapes {codes.shape} "
                         f"and {positive.shape} ({positive.dtype})")
    if positive.all() or not positive.any():
        raise ValueError("positive must mark some examples positive and some negative")
    return codes[positive], codes[~positive]


def node_scores(codes, positive) -> np.ndarray:
    """[heads] the number of distinct codes a head takes on positive examples and never on negative ones (the
    released code's raw count; its softmax over heads changes no ranking and is left out)."""
    pos, neg = _split(codes, positive)
    return np.array([len(set(pos[:, h]) - set(neg[:, h])) for h in range(pos.shape[1])], float)


def edge_scores(codes, positive) -> np.ndarray:
    """[heads, heads] for every two heads, the number of distinct code pairs they take together on positive examples
    and never on negative ones (the diagonal is 0)."""
    pos, neg = _split(codes, positive)
    heads = pos.shape[1]
    scores = np.zeros((heads, heads))
    for a in range(heads):
        for b in range(a + 1, heads):
            unique = set(zip(pos[:, a], pos[:, b])) - set(zip(neg[:, a], neg[:, b]))
            scores[a, b] = scores[b, a] = len(unique)
    return scores


def edge_votes(edges, k: int | None = None) -> np.ndarray:
    """[heads] the released code's node prediction from edges: order the (ordered) head pairs by edge score, write
    each pair's two heads into one list, and give a vote to each of the first ``k`` entries (default
    k = heads² // 2, as evaluate_edge_circuit sets it: entries, so heads² // 4 pairs). A pair (a, b) and its mirror
    (b, a) score alike, so both count. The released code sorts the diagonal in too (score 0, last among ties) and
    breaks ties with numpy's unstable argsort; here the diagonal is left out and ties keep a stable order."""
    edges = np.asarray(edges, float)
    if edges.ndim != 2 or edges.shape[0] != edges.shape[1] or edges.shape[0] < 2 or not np.isfinite(edges).all():
        raise ValueError(f"edges must be a finite square [heads, heads] matrix of at least 2 heads; got shape "
                         f"{edges.shape}")
    heads = edges.shape[0]
    pairs = [(a, b) for a in range(heads) for b in range(heads) if a != b]
    k = heads * heads // 2 if k is None else check_count(k, "k")
    order = np.argsort([-edges[a, b] for a, b in pairs], kind="stable")
    entries = [head for index in order for head in pairs[index]][:k]
    return np.bincount(entries, minlength=heads).astype(float)


def ranking_scores(scores, in_circuit, groups=None) -> dict:
    """How well head scores rank the heads of a ground-truth circuit: {"roc_auc" (ties count one half, as the
    Mann-Whitney statistic does), "average_precision", "n_heads", "n_in_circuit"}.

    groups: optionally [heads] which network each head belongs to (heads of several organisms pooled). The AUC then
    compares only heads of the same network (a circuit head against a non-circuit head of its own organism, pooled
    over organisms), so scores on different scales in different networks are never ranked against each other; the
    average precision is the mean of the networks' own. A network whose heads are all in or all out is left out.
    """
    from sklearn.metrics import average_precision_score

    scores, truth = np.asarray(scores, float).ravel(), np.asarray(in_circuit).ravel()
    if truth.dtype != bool or scores.shape != truth.shape or not np.isfinite(scores).all():
        raise ValueError(f"scores must be finite and in_circuit a bool array of the same length; got {scores.shape} "
                         f"and {truth.shape} ({truth.dtype})")
    groups = np.zeros(len(truth), int) if groups is None else np.asarray(groups).ravel()
    if groups.shape != truth.shape:
        raise ValueError(f"groups must give one network per head ({truth.shape}); got shape {groups.shape}")
    usable = [g for g in np.unique(groups) if 0 < truth[groups == g].sum() < (groups == g).sum()]
    if not usable:
        raise ValueError("in_circuit must mark some heads in and some out of the circuit (within one network)")
    wins, pairs, precision = 0.0, 0, []
    for group in usable:
        member = groups == group
        inside, outside = scores[member & truth], scores[member & ~truth]
        wins += ((inside[:, None] > outside[None]).sum() + 0.5 * (inside[:, None] == outside[None]).sum())
        pairs += inside.size * outside.size
        precision.append(average_precision_score(truth[member], scores[member]))
    return {"roc_auc": float(wins / pairs), "average_precision": float(np.mean(precision)), "n_heads": int(truth.size),
            "n_in_circuit": int(truth.sum())}


def mean_difference_scores(head_vectors, positive) -> np.ndarray:
    """[heads] the baseline that needs no SAE: the norm of a head's mean vector on positive prompts minus its mean on
    negative ones (|mean_pos - mean_neg|)."""
    vectors = _vectors(head_vectors, "head_vectors")
    if vectors.ndim != 3:
        raise ValueError(f"head_vectors must be [examples, heads, d]; got shape {vectors.shape}")
    _split(np.zeros(vectors.shape[:2], int), positive)
    positive = np.asarray(positive)
    return np.linalg.norm(vectors[positive].mean(0) - vectors[~positive].mean(0), axis=-1)


def random_codes(head_vectors, n_directions: int = PAPER_LATENTS, seed: int = 0) -> np.ndarray:
    """The codes' control: [examples, heads] the argmax over ``n_directions`` random unit directions instead of SAE
    latents (seeded). If random directions score as well as the SAE, the SAE added nothing."""
    vectors = _vectors(head_vectors, "head_vectors")
    if vectors.ndim != 3:
        raise ValueError(f"head_vectors must be [examples, heads, d]; got shape {vectors.shape}")
    n_directions, seed = check_count(n_directions, "n_directions"), check_seed(seed)
    directions = np.random.default_rng(seed).standard_normal((vectors.shape[-1], n_directions))
    return (vectors @ (directions / np.linalg.norm(directions, axis=0))).argmax(-1)
