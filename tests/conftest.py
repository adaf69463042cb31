"""Shared stand-ins: a word-per-token tokenizer over story prompts, so story-mode code runs offline."""

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tdsae.agents import RandomAgent
from tdsae.tasks import NOUNS, get_task, run_agent


def story_tokenizer(drop: str | None = None) -> PreTrainedTokenizerFast:
    """A word-per-token tokenizer over the words of sampled story prompts (Metaspace: ' X' is one token)."""
    pre = pre_tokenizers.Metaspace()
    words = {w for w, _ in pre.pre_tokenize_str(" " + " ".join(NOUNS) + " X Y D F J K up down left right")}
    for name in ("twostep", "gridworld", "graph"):
        task = get_task(name)
        traj = run_agent(task, RandomAgent(), 2, 3, seed=0)
        for t in range(0, traj.n_steps, 2):
            if traj.valid[0, t]:
                words |= {w for w, _ in pre.pre_tokenize_str(task.story_prompt(traj.history_before(t), 0, int(traj.state[0, t])))}
    words.discard(drop)
    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(sorted(words))}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer, backend.decoder = pre, decoders.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")


def saved_micro_organism(path, n_layers: int = 2, seed: int = 0):
    """An untrained micro organism (d_model 32) saved with its tokenizer at path, loaded through load_model."""
    import torch

    from tdsae.models import load_model
    from tdsae.organism import OrganismConfig, build_organism, build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    build_organism(OrganismConfig(d_model=32, n_layers=n_layers, n_heads=2, d_mlp=64), tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return load_model(path, device="cpu")


def planted_targets(rng, n_experiments: int = 40, per: int = 30):
    """A reference_targets-like table, decision and outcome rows alternating, whose TD error is mostly the reward
    (as in the task) plus a surprise. Returns: (targets, surprise [n], q_diff [n])."""
    import numpy as np
    import pandas as pd

    n = n_experiments * per
    targets = pd.DataFrame({"row": np.arange(n), "experiment": np.repeat(np.arange(n_experiments), per),
                            "step": np.tile(np.arange(per) % 2, n_experiments),
                            "kind": np.tile(["decision", "outcome"], n // 2), "reward": rng.integers(0, 2, n) * 1.0})
    surprise, q_diff = rng.normal(size=n), rng.normal(size=n)
    return (targets.assign(last_reward=targets.reward, td_error=2 * targets.reward + surprise, q_diff=q_diff),
            surprise, q_diff)
