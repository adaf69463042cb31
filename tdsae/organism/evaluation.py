"""How well the organism predicts the agents that generated its data.

At every decision of a held-out agent (after its random episodes) we read the organism's
next-token distribution, keep the legal action tokens and renormalise: that is the organism's
predicted choice probability, compared with the agent's true softmax probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tdsae.agents import QLearner
from tdsae.models import masked_next_token_loss, torch_module
from tdsae.organism.corpus import EVAL_STREAM, TranscriptRecipe, seed_for, simulate_transcripts
from tdsae.organism.tokenizer import encode_transcripts
from tdsae.play import read_choices, render_episodes
from tdsae.play.transcripts import reads_transcripts
from tdsae.stats import bootstrap_interval, experiment_rows
from tdsae.validation import check_count, check_int, check_seed, check_task_names

CHOICE_TASKS = ("twostep", "gridworld")  # the tasks whose steps are choices between actions


@dataclass
class ChoiceComparison:
    """A model vs the generating agent at the decisions of held-out experiments of one task."""

    task: str  # task name
    r: float  # Pearson correlation of model_probs with agent_probs
    model_probs: np.ndarray  # [n_decisions, n_actions] the model's renormalised action probabilities
    agent_probs: np.ndarray  # [n_decisions, n_actions] the agent's true choice probabilities
    state: np.ndarray  # [n_decisions] state of each decision
    experiment: np.ndarray  # [n_decisions] experiment row of each decision


def compare_choices(model, tokenizer, task_name: str, n_experiments: int = 64, seed: int = 0,
                    recipe: TranscriptRecipe = TranscriptRecipe()) -> ChoiceComparison:
    """A model's choice probabilities vs held-out Q-learners' on one task (twostep or gridworld), read as the
    model reads (tdsae.play.read_choices): the organism from transcripts, a pretrained model from stories.

    Args: model: a causal LM (HF module, or nnsight wrapper via tdsae.models.torch_module);
    n_experiments: held-out agents, drawn from the recipe's parameter ranges on the evaluation
    stream of seed. Decisions in the first recipe.n_random_episodes episodes are left out
    (the agent's choice there is uniform by construction). r pools every legal action's probability.
    """
    if task_name not in CHOICE_TASKS:
        raise ValueError(f"task {task_name!r} has no choices to compare; use one of: {', '.join(CHOICE_TASKS)}")
    sims = simulate_transcripts(task_name, n_experiments, seed_for(seed, EVAL_STREAM, 0), recipe)
    task, traj = sims.task, sims.traj
    agent_probs = _agent(task, sims, recipe).evaluate(task, traj).probs  # [n, n_steps, n_actions]
    model_logprobs = read_choices(model, tokenizer, task, traj).choice_logprobs  # [n, n_steps, n_actions]
    rows = {"model": [], "agent": [], "state": [], "experiment": []}
    for e in range(n_experiments):
        cols = np.nonzero(traj.valid[e])[0]
        for col in cols[traj.episode[e, cols] >= recipe.n_random_episodes]:
            rows["model"].append(np.exp(model_logprobs[e, col]))
            rows["agent"].append(agent_probs[e, col])
            rows["state"].append(int(traj.state[e, col]))
            rows["experiment"].append(e)
    model_probs, agent = np.array(rows["model"]), np.array(rows["agent"])
    r = float(np.corrcoef(model_probs.ravel(), agent.ravel())[0, 1])
    return ChoiceComparison(task_name, r, model_probs, agent, np.array(rows["state"]),
                            np.array(rows["experiment"]))


def r_difference(a: ChoiceComparison, b: ChoiceComparison, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """a.r - b.r for two models compared at the same decisions of the same held-out agents (e.g. a pretrained
    model and its re-initialised twin), with a 95% bootstrap interval over the agents.

    Returns: {"difference", "low", "high"}; ValueError when the two were not compared at the same decisions.
    """
    if a.task != b.task or not (np.array_equal(a.experiment, b.experiment) and np.array_equal(a.state, b.state)):
        raise ValueError(f"the comparisons are not at the same decisions ({a.task!r}, {len(a.state)} decisions vs "
                         f"{b.task!r}, {len(b.state)}): compare both models on the same task, agents and seed")
    n_boot, seed = check_int(n_boot, "n_boot", 0), check_seed(seed)
    rows = experiment_rows(a.experiment)

    def statistic(chosen) -> float:
        picked = rows(chosen)
        with np.errstate(invalid="ignore", divide="ignore"):  # a draw without spread gives NaN, which is skipped
            return float(np.corrcoef(a.model_probs[picked].ravel(), a.agent_probs[picked].ravel())[0, 1]
                         - np.corrcoef(b.model_probs[picked].ravel(), b.agent_probs[picked].ravel())[0, 1])

    low, high = bootstrap_interval(statistic, np.unique(a.experiment), n_boot, seed)
    return {"difference": a.r - b.r, "low": low, "high": high}


@torch.no_grad()
def heldout_loss(model, tokenizer, tasks=("twostep", "gridworld", "graph"), n_experiments: int = 48, seed: int = 0,
                 recipe: TranscriptRecipe = TranscriptRecipe(), batch_rows: int = 16) -> dict[str, float]:
    """Mean next-token loss (nats per word) on held-out transcripts of each task, padding left out.

    The transcripts come from the evaluation stream of seed (key 9: neither training data nor
    compare_choices' agents), so two organisms trained from different seeds are scored on the same words.
    """
    tasks = check_task_names(tasks)
    model = torch_module(model)
    device = next(model.parameters()).device
    losses = {}
    for task_name in tasks:
        sims = simulate_transcripts(task_name, n_experiments, seed_for(seed, EVAL_STREAM, 9), recipe)
        ids, _ = encode_transcripts(tokenizer, sims.tokens)
        total = words = 0.0
        for start in range(0, len(ids), batch_rows):
            batch = ids[start:start + batch_rows].to(device)
            logits = model(input_ids=batch[:, :-1]).logits
            n_words = int((batch[:, 1:] != tokenizer.pad_token_id).sum())
            total += float(masked_next_token_loss(logits, batch, tokenizer.pad_token_id)) * n_words
            words += n_words
        losses[task_name] = total / words
    return losses


@dataclass
class InContextScore:
    """How much better a model predicts the late episodes of a transcript than its early ones (Olsson et al.'s
    in-context-learning score, with episodes in place of token indices)."""

    task: str  # task name
    episode_loss: np.ndarray  # [n_experiments, n_episodes] mean next-token loss (nats per word) of each episode
    per_experiment: np.ndarray  # [n_experiments] late-episode loss minus early-episode loss: < 0 learns in context
    n_edge: int  # episodes averaged at each end
    score: float  # mean of per_experiment
    low: float  # 95% bootstrap interval of score over the held-out transcripts
    high: float


@torch.no_grad()
def in_context_score(model, tokenizer, task_name: str = "twostep", n_experiments: int = 64, seed: int = 0,
                     recipe: TranscriptRecipe = TranscriptRecipe(), n_edge: int = 5, batch_rows: int = 16,
                     n_boot: int = 1000) -> InContextScore:
    """The loss on the last ``n_edge`` episodes of held-out transcripts minus the loss on their first ``n_edge``.

    Every word counts (actions, states, rewards), each in the episode of the step whose decision came last
    before it. A model that reads only the current word, or the position, cannot predict a late episode
    better than an early one: whom the agent prefers, and which alien pays, is known only from the history.
    So the score is 0 for such a model and negative for one that learns in context. The transcripts are
    compare_choices' held-out agents (the same seed gives the same ones). Reads transcripts (the organism).
    """
    check_task_names(task_name)
    n_experiments, n_edge = check_count(n_experiments, "n_experiments"), check_count(n_edge, "n_edge")
    seed, n_boot, batch_rows = check_seed(seed), check_int(n_boot, "n_boot", 0), check_count(batch_rows, "batch_rows")
    if 2 * n_edge > recipe.n_episodes:
        raise ValueError(f"n_edge={n_edge} episodes at each end need at least {2 * n_edge} episodes; the recipe "
                         f"has {recipe.n_episodes}")
    if not reads_transcripts(tokenizer, recipe.make_task(task_name)):
        raise ValueError(f"in_context_score reads transcripts, and this tokenizer lacks the {task_name!r} "
                         "transcript words: it scores the organism (a trained or checkpointed one)")
    sims = simulate_transcripts(task_name, n_experiments, seed_for(seed, EVAL_STREAM, 0), recipe)
    rendered = render_episodes(tokenizer, sims.task, sims.traj)
    ids, lengths = encode_transcripts(tokenizer, sims.tokens)
    module = torch_module(model)
    device = next(module.parameters()).device
    word_loss = np.full(ids.shape, np.nan)  # [n, seq]: loss of predicting word t (t >= 1) from the words before it
    for start in range(0, len(ids), batch_rows):
        batch = ids[start:start + batch_rows].to(device)
        logp = torch.log_softmax(module(input_ids=batch[:, :-1]).logits.float(), -1)
        word_loss[start:start + len(batch), 1:] = -logp.gather(-1, batch[:, 1:, None])[..., 0].cpu().numpy()
    episode_loss = np.full((n_experiments, recipe.n_episodes), np.nan)
    for e in range(n_experiments):
        steps = np.nonzero(sims.traj.valid[e])[0]
        # the words a step adds that depend on the history: the choice (after the decision token) and its outcome
        positions = np.concatenate([rendered.decision_pos[e, steps] + 1, rendered.outcome_pos[e, steps]])
        episodes = np.concatenate([sims.traj.episode[e, steps]] * 2)
        for episode in np.unique(episodes):
            episode_loss[e, episode] = word_loss[e, positions[episodes == episode]].mean()
    per_experiment = np.nanmean(episode_loss[:, -n_edge:], 1) - np.nanmean(episode_loss[:, :n_edge], 1)
    low, high = bootstrap_interval(lambda chosen: per_experiment[chosen].mean(), np.arange(n_experiments), n_boot,
                                   seed)
    return InContextScore(task_name, episode_loss, per_experiment, n_edge, float(per_experiment.mean()), low, high)


def _agent(task, sims, recipe: TranscriptRecipe):

    return QLearner(alpha=sims.alpha, beta=sims.beta, gamma=recipe.gamma)


def evaluate_choice_correlation(model, tokenizer, tasks=("twostep", "gridworld"), n_experiments: int = 64,
                                seed: int = 0, recipe: TranscriptRecipe = TranscriptRecipe()) -> dict[str, float]:
    """Pearson r between the organism's and the held-out agents' choice probabilities, per task."""
    tasks = check_task_names(tasks)
    for task_name in tasks:
        if task_name not in CHOICE_TASKS:
            raise ValueError(f"task {task_name!r} has no choices to compare; use: {', '.join(CHOICE_TASKS)}")
    return {t: compare_choices(model, tokenizer, t, n_experiments, seed, recipe).r for t in tasks}
