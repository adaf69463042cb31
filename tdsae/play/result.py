"""What a language model did on a task (PlayResult), and how it is saved and read back.

On disk a PlayResult is two files in a folder: arrays.npz (every number) and text.json (tokens,
prompts and the task's name), so cached play is read without pickles; the residual stream story play
kept (PlayedResiduals) is two more, written apart because it can be gigabytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tdsae.models import pad_token_id
from tdsae.tasks import Trajectory

TRAJECTORY_FIELDS = ("episode", "step", "state", "action", "reward", "next_state", "done", "valid")
RESIDUAL_ROWS_PER_COPY = 4096  # kept vectors copied at a time: SmolLM2's 31 layers x 576 floats make 290 MB


@dataclass
class PlayedResiduals:
    """The residual stream a model's own forward passes produced while it played (story play's
    ``residual_layers``), at every decision and outcome token: kept for the harvest, never saved.

    The values lie in an unlinked temporary file mapped into memory, not in RAM: SmolLM2's 100 graph
    experiments keep 120,000 tokens x 31 layers x 576 floats, 8.6 GB."""

    layers: list[int]  # residual layers kept (tdsae.models.residual_sites numbering)
    rows: dict  # {(experiment, token position): row of values}
    values: np.ndarray  # [n_rows, len(layers), d_model] float32, read-only

    def at(self, keys) -> np.ndarray:
        """The kept vectors [len(keys), len(layers), d_model] of (experiment, token position) pairs, in order."""
        return np.asarray(self.values[np.array([self.rows[key] for key in keys], dtype=np.int64)])


@dataclass
class PlayResult:
    """What a language model did on a task, aligned step by step with its Trajectory."""

    trajectory: Trajectory  # the experiments as played (info["random_choice"] marks random-policy steps)
    choice_logprobs: np.ndarray  # [n_experiments, n_steps, n_choices] LM log-probs of each choice (NaN: padding/illegal)
    decision_pos: np.ndarray  # [n_experiments, n_steps] token index the choice was read at (-1: none)
    outcome_pos: np.ndarray  # [n_experiments, n_steps] token index of the word that reveals the outcome (-1: none)
    tokens: list[list[str]]  # each experiment's tokens (transcript words, or the story's tokens), positions index them
    prompts: list[str]  # story mode: each experiment's whole story (empty in transcript mode)
    residuals: PlayedResiduals | None = None  # kept during play when asked (never saved)

    @classmethod
    def concat(cls, parts: list[PlayResult]) -> PlayResult:
        """The experiments of several plays of one task stacked in order (batches of one run); residuals
        are not carried (story play keeps one set across its batches)."""
        return cls(Trajectory.concat([p.trajectory for p in parts]),
                   np.concatenate([p.choice_logprobs for p in parts]),
                   np.concatenate([p.decision_pos for p in parts]), np.concatenate([p.outcome_pos for p in parts]),
                   [tokens for p in parts for tokens in p.tokens], [prompt for p in parts for prompt in p.prompts])

    def select(self, experiments) -> PlayResult:
        """The experiments picked by index, in the order given (renumbered 0 .. k-1); residuals are not carried."""
        rows = np.asarray(experiments, dtype=int)
        if rows.ndim != 1 or len(rows) == 0 or rows.min() < 0 or rows.max() >= self.trajectory.n_experiments:
            raise ValueError(f"experiments {rows.tolist()[:10]} must be a non-empty list of indices in 0 .. "
                             f"{self.trajectory.n_experiments - 1}")
        return PlayResult(self.trajectory.select(rows), self.choice_logprobs[rows], self.decision_pos[rows],
                          self.outcome_pos[rows], [self.tokens[e] for e in rows],
                          [self.prompts[e] for e in rows] if self.prompts else [])

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per valid step, with the log-prob of every choice and the token positions."""
        traj = self.trajectory
        frame = traj.to_frame()
        rows, cols = np.nonzero(traj.valid)
        for k in range(self.choice_logprobs.shape[2]):
            frame[f"logp_{k}"] = self.choice_logprobs[rows, cols, k]
        frame["decision_pos"] = self.decision_pos[rows, cols]
        frame["outcome_pos"] = self.outcome_pos[rows, cols]
        return frame


def played_token_ids(tokenizer, played: PlayResult, experiments) -> torch.Tensor:
    """What a reader with this tokenizer read in the given experiments, as right-padded ids [n, max_len]
    (pad_token_id, or the end-of-text token where there is none): the whole transcript or story."""
    vocab = tokenizer.get_vocab()
    sequences = [[vocab[w] for w in played.tokens[e]] for e in experiments]
    ids = torch.full((len(sequences), max(map(len, sequences))), pad_token_id(tokenizer), dtype=torch.long)
    for i, sequence in enumerate(sequences):
        ids[i, : len(sequence)] = torch.tensor(sequence)
    return ids


def save_played(played: PlayResult, directory) -> None:
    """Write a PlayResult as arrays.npz (numbers) and text.json (tokens, prompts, task)."""
    directory = Path(directory)
    traj = played.trajectory
    arrays = {f"traj_{k}": getattr(traj, k) for k in TRAJECTORY_FIELDS}
    arrays.update({f"info_{k}": v for k, v in traj.info.items()})
    arrays.update({f"setup_{k}": v for k, v in traj.experiment_info.items()})
    arrays.update(choice_logprobs=played.choice_logprobs, decision_pos=played.decision_pos,
                  outcome_pos=played.outcome_pos)
    np.savez(directory / "arrays.npz", **arrays)
    (directory / "text.json").write_text(json.dumps({"task": traj.task, "tokens": played.tokens,
                                                     "prompts": played.prompts}))


def save_residuals(residuals: PlayedResiduals, directory) -> None:
    """Write kept residuals as residuals.npy (the values, streamed from their file, never all in RAM) and
    residual_rows.npz (layers, and each kept (experiment, token position) with its row)."""
    directory = Path(directory)
    keys = np.array(list(residuals.rows), dtype=np.int64).reshape(-1, 2)
    np.savez(directory / "residual_rows.npz", layers=np.array(residuals.layers, dtype=np.int64), keys=keys,
             rows=np.array(list(residuals.rows.values()), dtype=np.int64))
    out = np.lib.format.open_memmap(directory / "residuals.npy", mode="w+", dtype=np.float32,
                                    shape=residuals.values.shape)
    for start in range(0, len(out), RESIDUAL_ROWS_PER_COPY):
        out[start:start + RESIDUAL_ROWS_PER_COPY] = residuals.values[start:start + RESIDUAL_ROWS_PER_COPY]
    out.flush()
    del out


def load_residuals(directory) -> PlayedResiduals:
    """The PlayedResiduals saved by save_residuals, values mapped read-only from the file."""
    directory = Path(directory)
    if not (directory / "residual_rows.npz").is_file() or not (directory / "residuals.npy").is_file():
        raise FileNotFoundError(f"{str(directory)!r} holds no saved residuals (residual_rows.npz and residuals.npy, "
                                "from save_residuals)")
    with np.load(directory / "residual_rows.npz", allow_pickle=False) as data:
        layers, keys, rows = data["layers"].tolist(), data["keys"].tolist(), data["rows"].tolist()
    values = np.load(directory / "residuals.npy", mmap_mode="r")
    if values.ndim != 3 or values.shape[1] != len(layers) or (rows and max(rows) >= len(values)):
        raise ValueError(f"{str(directory)!r}: residuals.npy of shape {values.shape} does not fit its "
                         f"{len(layers)} layers and rows up to {max(rows, default=-1)}")
    return PlayedResiduals(layers, {tuple(key): row for key, row in zip(keys, rows)}, values)


def load_played(directory) -> PlayResult:
    """The PlayResult saved by save_played."""
    directory = Path(directory)
    if not (directory / "text.json").is_file() or not (directory / "arrays.npz").is_file():
        raise FileNotFoundError(f"{str(directory)!r} holds no saved play (text.json and arrays.npz, from save_played)")
    text = json.loads((directory / "text.json").read_text())
    with np.load(directory / "arrays.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    traj = Trajectory(task=text["task"], **{k: arrays[f"traj_{k}"] for k in TRAJECTORY_FIELDS},
                      info={k[5:]: v for k, v in arrays.items() if k.startswith("info_")},
                      experiment_info={k[6:]: v for k, v in arrays.items() if k.startswith("setup_")})
    return PlayResult(traj, arrays["choice_logprobs"], arrays["decision_pos"], arrays["outcome_pos"],
                      text["tokens"], text["prompts"])
