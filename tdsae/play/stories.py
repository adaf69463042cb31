"""Story-mode play: a pretrained LM plays a task from a story that is written forward as it plays.

Each experiment's story only grows (tdsae.tasks.story): cover story, then per day its questions,
the answers chosen and the outcomes. So, as in transcript play, every experiment advances in
lockstep through one KV cache (:class:`tdsae.play.transcripts.CachedBatch`) and each decision feeds
only the pieces written since the last one. The text is tokenized piece by piece, cut where the
tokenizer cuts anyway; play checks at the end that this equals tokenizing the whole story, so the
recorded token positions are those of the text a reader sees.

This departs from the paper's CogBench wording, which counts past days back ("3 days ago") and so
rewrites every prompt at every decision, with nothing a cache could keep.
"""

from __future__ import annotations

import tempfile
from bisect import bisect_right
from typing import Any

import numpy as np
import torch

from tdsae.models import ResidualTap, pad_token_id
from tdsae.play.policy import LM_POLICY_STREAM, choose_actions, restricted_logprobs
from tdsae.play.result import RESIDUAL_ROWS_PER_COPY, PlayedResiduals, PlayResult
from tdsae.play.transcripts import CachedBatch
from tdsae.tasks import StoryWriter, Task, Trajectory, write_story
from tdsae.tasks.trajectory import make_rngs
from tdsae.validation import check_count, check_int


def single_token_ids(tokenizer: Any, strings: list[str]) -> list[int]:
    """The one token id of each choice string, or ValueError naming a string that is not one token."""
    ids = []
    for s in strings:
        encoded = tokenizer.encode(s, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"choice {s!r} is {len(encoded)} tokens for this tokenizer; every choice must be one token")
        if encoded[0] == tokenizer.unk_token_id:
            raise ValueError(f"choice {s!r} is the unknown token for this tokenizer; every choice must be its own token")
        ids.append(encoded[0])
    return ids


class StoryTokens:
    """The tokens of one experiment's story, tokenized piece by piece, with each token's first character."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("story play needs a fast tokenizer (character offsets); "
                             f"{type(tokenizer).__name__} is not one")
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.starts: list[int] = []  # character index where each token starts
        self.length = 0  # characters tokenized so far

    def add(self, pieces: list[str]) -> list[int]:
        """Tokenize the pieces (the first piece of the story gets the tokenizer's special tokens). Returns: new ids."""
        new = []
        for piece in pieces:
            first = not self.ids and not new  # only the story's first piece opens with special tokens (a BOS)
            encoded = self.tokenizer(piece, add_special_tokens=first, return_offsets_mapping=True)
            new += encoded["input_ids"]
            self.starts += [self.length + start for start, _ in encoded["offset_mapping"]]
            self.length += len(piece)
        self.ids += new
        return new

    def token_at(self, characters: np.ndarray) -> np.ndarray:
        """Index of the token each character falls in (the last token starting at or before it)."""
        return np.array([bisect_right(self.starts, int(c)) - 1 for c in characters], int)

    def check_whole(self, text: str) -> None:
        """RuntimeError unless tokenizing the whole story gives the tokens read piece by piece."""
        whole = self.tokenizer(text)["input_ids"]
        if whole != self.ids:
            at = next((i for i, (a, b) in enumerate(zip(whole, self.ids)) if a != b), min(len(whole), len(self.ids)))
            raise RuntimeError(f"this tokenizer ({type(self.tokenizer).__name__}) cuts the story differently as a whole "
                               f"than piece by piece, from token {at} ({self.tokenizer.decode(whole[at:at + 5])!r}); "
                               "the story's pieces need cutting elsewhere (tdsae.tasks.story.check_piece)")


class _Spill:
    """Residual vectors [layers, d_model] appended to an unlinked temporary file as play keeps them, so a
    long play holds them on disk rather than in RAM; result() maps the file back (PlayedResiduals)."""

    def __init__(self, d_model: int) -> None:
        self.file = tempfile.TemporaryFile(prefix="tdsae-residuals-")  # gone when closed or the process ends
        self.d_model, self.n_rows = d_model, 0
        self.layers: list[int] = []  # set by the keeper
        self.rows: dict = {}

    def append(self, keys: list[tuple[int, int]], values: np.ndarray) -> None:
        for key in keys:  # a token that is both a decision and an outcome is kept twice: the later row counts
            self.rows[key] = self.n_rows
            self.n_rows += 1
        self.file.write(np.ascontiguousarray(values, dtype=np.float32).data)

    def extend(self, residuals: PlayedResiduals) -> None:
        """Append another play's kept rows (a batch of the same run: its keys number experiments in the run)."""
        if not self.layers:
            self.layers = list(residuals.layers)
        if list(residuals.layers) != self.layers or residuals.values.shape[2] != self.d_model:
            raise ValueError(f"kept residuals of layers {list(residuals.layers)}, {residuals.values.shape[2]} wide, "
                             f"cannot join those of layers {self.layers}, {self.d_model} wide")
        clash = next((key for key in residuals.rows if key in self.rows), None)
        if clash is not None:
            raise ValueError(f"(experiment, token) {clash} was kept by two of the plays joined: they are not "
                             "distinct batches of one run")
        for key, row in residuals.rows.items():
            self.rows[key] = self.n_rows + row
        for start in range(0, len(residuals.values), RESIDUAL_ROWS_PER_COPY):
            self.file.write(np.ascontiguousarray(residuals.values[start:start + RESIDUAL_ROWS_PER_COPY]).data)
        self.n_rows += len(residuals.values)

    def result(self) -> PlayedResiduals:
        self.file.flush()
        shape = (self.n_rows, len(self.layers), self.d_model)
        values = (np.memmap(self.file, dtype=np.float32, mode="r", shape=shape) if self.n_rows
                  else np.zeros(shape, np.float32))
        return PlayedResiduals(list(self.layers), self.rows, values)


class _ResidualKeeper:
    """Keeps the residual stream at each story's decision and outcome tokens as the cached feeds read them,
    so that the harvest needs no second pass over the stories. ``first`` numbers the batch's first story."""

    def __init__(self, model: Any, layers, writers: list[StoryWriter], readers: list[StoryTokens], spill: _Spill,
                 first: int = 0) -> None:
        self.tap = ResidualTap(model, layers)
        self.writers, self.readers, self.spill, self.first = writers, readers, spill, first
        spill.layers = list(self.tap.layers)
        self.kept = [{"decision": 0, "outcome": 0} for _ in writers]  # positions of each kind already kept
        self.keys: list[tuple[int, int]] = []  # (experiment, token position) of each pick of the coming feed

    def pick(self, chunks: list[list[int]]) -> None:
        """Point the tap at the tokens of the coming feed that are decisions or outcomes."""
        rows, offsets = [], []
        self.keys = []
        for e, (writer, reader) in enumerate(zip(self.writers, self.readers)):
            first = len(reader.ids) - len(chunks[e])  # story position of the chunk's first token
            for kind, characters in writer.positions().items():
                new = characters[self.kept[e][kind]:]
                new = new[new < reader.length]  # written and now tokenized
                self.kept[e][kind] += len(new)
                for position in reader.token_at(new):
                    if position < first:
                        raise RuntimeError(f"a {kind} token of story {e} was fed before it was recorded")
                    rows.append(e)
                    offsets.append(int(position) - first)
                    self.keys.append((self.first + e, int(position)))
        self.tap.picks = (torch.tensor(rows, dtype=torch.long), torch.tensor(offsets, dtype=torch.long))

    def keep(self) -> None:
        """Store what the tap gathered in the feed just run."""
        if self.keys:
            stacked = torch.stack([self.tap.values[layer] for layer in self.tap.layers], dim=1).numpy()
            self.spill.append(self.keys, stacked)


def _feed(batch: CachedBatch, chunks: list[list[int]], keeper: _ResidualKeeper | None):
    if keeper is not None:
        keeper.pick(chunks)
    logits = batch.feed(chunks)
    if keeper is not None:
        keeper.keep()
    return logits


def _finish(tokenizer: Any, traj: Trajectory, logprobs: np.ndarray, writers: list[StoryWriter],
            readers: list[StoryTokens], fed: list[int]) -> PlayResult:
    """The PlayResult of finished stories: the pieces not yet fed (``fed`` per story) tokenized, positions
    mapped from characters to tokens."""
    decision, outcome = np.full(traj.state.shape, -1), np.full(traj.state.shape, -1)
    for e, (writer, reader) in enumerate(zip(writers, readers)):
        reader.add(writer.pieces[fed[e]:])
        reader.check_whole(writer.text)
        columns, positions = np.nonzero(traj.valid[e])[0], writer.positions()
        decision[e, columns] = reader.token_at(positions["decision"])
        outcome[e, columns] = reader.token_at(positions["outcome"])
    tokens = [tokenizer.convert_ids_to_tokens(reader.ids) for reader in readers]
    return PlayResult(traj, logprobs, decision, outcome, tokens, [writer.text for writer in writers])


def join_residuals(parts: list[PlayedResiduals], d_model: int) -> PlayedResiduals:
    """The kept residuals of a run's batches as one (copied into a new temporary file, a block at a time)."""
    if not parts:
        raise ValueError("join_residuals needs at least one set of kept residuals")
    spill = _Spill(d_model)
    for part in parts:
        spill.extend(part)
    return spill.result()


def play_stories(model: Any, tokenizer: Any, task: Task, n_experiments: int, n_episodes: int, seed: int,
                 n_random_episodes: int = 0, use_cache: bool = True, residual_layers=None,
                 experiments_per_batch: int | None = None, first_experiment: int = 0) -> PlayResult:
    """A pretrained LM plays ``task`` from forward-written stories, experiments in lockstep.

    Each decision feeds every playing experiment the pieces written since its last decision (the
    outcome of its last step, a new day's opening, the question and answer prefix) through one KV
    cache and reads the choice at the last token; every choice string must be one token.

    Args: use_cache: False recomputes the whole story at every decision, as rebuilding a prompt per
    decision does (for benchmarking and for checking the cache only); residual_layers: residual layers
    (tdsae.models.residual_sites) to keep at every decision and outcome token from the same forward
    passes, for the harvest (tdsae.activations.store_played_residuals); the stories' last outcomes then
    get one more feed. experiments_per_batch: experiments played in lockstep at once (None: all). The KV
    cache grows with experiments x story length (SmolLM2's Grid World stories run to ~6,000 tokens of
    46 KB each), so a batch bounds memory; experiment e draws the same randomness in any batch.
    first_experiment: play experiments first_experiment .. first_experiment + n_experiments - 1 of the
    run this seed makes (a long run played in saved pieces); kept residuals are keyed by that number.
    Returns: PlayResult whose ``tokens`` are each experiment's story tokens, ``prompts`` its
    whole story, one string per experiment, and ``residuals`` what was kept (None if nothing was asked).
    """
    if residual_layers is not None and not use_cache:
        raise ValueError("residual_layers needs use_cache=True: the tap reads each feed's new tokens, and "
                         "use_cache=False feeds the whole story every time")
    size = n_experiments if experiments_per_batch is None else check_count(experiments_per_batch,
                                                                           "experiments_per_batch")
    start, end = check_int(first_experiment, "first_experiment"), first_experiment + n_experiments
    spill = None if residual_layers is None else _Spill(model.config.hidden_size)
    parts = [_play_batch(model, tokenizer, task, first, min(size, end - first), n_episodes, seed,
                         n_random_episodes, use_cache, residual_layers, spill)
             for first in range(start, end, size)]
    played = parts[0] if len(parts) == 1 else PlayResult.concat(parts)
    if spill is not None:
        played.residuals = spill.result()
    return played


def _play_batch(model: Any, tokenizer: Any, task: Task, first: int, n_experiments: int, n_episodes: int, seed: int,
                n_random_episodes: int, use_cache: bool, residual_layers, spill: _Spill | None) -> PlayResult:
    """Experiments first .. first + n_experiments - 1 of play_stories, in lockstep through one KV cache."""
    device = next(model.parameters()).device
    env = task.reset_experiments(n_experiments, seed, first)
    rngs = make_rngs(seed, n_experiments, LM_POLICY_STREAM, first)
    writers = [StoryWriter(task, env.experiment_info, e) for e in range(n_experiments)]
    readers = [StoryTokens(tokenizer) for _ in range(n_experiments)]
    batch = CachedBatch(model, n_experiments, pad_token_id(tokenizer), str(device), use_cache)
    n_choices = max(task.n_actions, task.n_states if task.n_actions == 0 else 0)
    steps = n_episodes * task.max_steps
    logprobs = np.full((n_experiments, steps, n_choices), np.nan)
    random_choice = np.zeros((n_experiments, steps), bool)
    choice_cache: dict[tuple, list[int]] = {}
    fed = [0] * n_experiments  # pieces of each story already fed
    keeper = None if residual_layers is None else _ResidualKeeper(model, residual_layers, writers, readers, spill, first)
    try:
        for episode in range(n_episodes):
            state = env.start_episode()
            for e in range(n_experiments):
                writers[e].start_episode(state[e])
            while not env.episode_over:
                t, rows = env.episode * task.max_steps + env.t, np.nonzero(env.active)[0]
                chunks = [[] for _ in range(n_experiments)]
                choice_ids = [[] for _ in range(n_experiments)]
                for e in rows:
                    writers[e].ask(env.state[e])
                    chunks[e] = readers[e].add(writers[e].pieces[fed[e]:])
                    fed[e] = len(writers[e].pieces)
                    strings = tuple(writers[e].choices(env.state[e]))
                    if strings not in choice_cache:
                        choice_cache[strings] = single_token_ids(tokenizer, list(strings))
                    choice_ids[e] = choice_cache[strings]
                logits = _feed(batch, chunks, keeper)
                logprobs[rows, t] = restricted_logprobs(logits, choice_ids, rows, n_choices)
                actions = choose_actions(task, env.state, logprobs[rows, t], rows, rngs, episode < n_random_episodes)
                random_choice[rows, t] = bool(task.n_actions) and episode < n_random_episodes
                states_before = env.state.copy()
                for e in rows:
                    writers[e].answer(states_before[e], actions[e])
                transition = env.step(actions if task.n_actions else None)
                for e in rows:
                    writers[e].tell_outcome(states_before[e], actions[e], transition.reward[e],
                                            transition.next_state[e], transition.done[e])
        if keeper is not None:  # the last outcomes are read by no decision: one more feed reads them
            last = [readers[e].add(writers[e].pieces[fed[e]:]) for e in range(n_experiments)]
            fed = [len(writer.pieces) for writer in writers]
            if any(last):
                _feed(batch, last, keeper)
    finally:
        if keeper is not None:
            keeper.tap.close()  # the model runs without hooks again, also after an error
    traj = env.to_trajectory()
    traj.info["random_choice"] = random_choice
    return _finish(tokenizer, traj, logprobs, writers, readers, fed)


def render_stories(tokenizer: Any, task: Task, traj: Trajectory) -> PlayResult:
    """Any agent's trajectory written as the stories a pretrained model would have read, with the decision
    and outcome token positions; choice_logprobs are NaN (nothing was played)."""
    n_choices = max(task.n_actions, task.n_states if task.n_actions == 0 else 0)
    logprobs = np.full(traj.state.shape + (n_choices,), np.nan)
    writers = [write_story(traj, e, task) for e in range(traj.n_experiments)]
    return _finish(tokenizer, traj, logprobs, writers, [StoryTokens(tokenizer) for _ in writers], [0] * len(writers))
