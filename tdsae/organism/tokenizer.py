"""The organism's tokenizer: one id per transcript word, nothing else.

Transcripts are already words (``render_transcript`` returns a list of tokens such as
``"ts:planetX"``), so a word-level vocabulary over ``transcript_vocabulary()`` with whitespace
splitting is exact: every word is one id and no merges can blur an action into its neighbours.
Transcripts start with their own ``<bos>``, so the tokenizer adds no special tokens itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tdsae.tasks import TASKS, get_task, transcript_vocabulary

BOS, EOS, PAD = "<bos>", "<eos>", "<pad>"


def build_tokenizer(vocabulary: Sequence[str] | None = None):
    """A ``PreTrainedTokenizerFast`` (WordLevel + WhitespaceSplit) over the transcript words.

    Args: vocabulary: words, default ``transcript_vocabulary()``; id = position in the list.
    Returns: tokenizer with bos/eos/pad set and no unknown-word fallback (an unknown word fails).
    """
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    if vocabulary is None:

        vocabulary = transcript_vocabulary()
    words = list(vocabulary)
    missing = [w for w in (BOS, EOS, PAD) if w not in words]
    if missing or len(set(words)) != len(words):
        raise ValueError(f"vocabulary must hold {BOS}, {EOS}, {PAD} once each and no duplicates; "
                         f"missing {missing}")
    core = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}))
    core.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS,
                                   pad_token=PAD, model_max_length=1_000_000)


def encode_transcripts(tokenizer, transcripts: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids of word lists. Returns: ids [batch, max_len] long, lengths [batch] long."""
    vocab = tokenizer.get_vocab()
    lengths = torch.tensor([len(t) for t in transcripts], dtype=torch.long)
    ids = torch.full((len(transcripts), max((len(t) for t in transcripts), default=0)), tokenizer.pad_token_id,
                     dtype=torch.long)
    for row, words in enumerate(transcripts):
        try:
            ids[row, :len(words)] = torch.tensor([vocab[w] for w in words], dtype=torch.long)
        except KeyError as error:
            raise ValueError(f"transcript {row} has a word outside the vocabulary: {error}") from None
    return ids, lengths


def action_token_ids(tokenizer) -> torch.Tensor:
    """Ids of every word that is an agent's action in some task (ships, aliens, moves), sorted."""

    vocab = tokenizer.get_vocab()
    words = set()
    for name in TASKS:
        task = get_task(name)
        if task.n_actions:
            for state in range(task.n_states):
                words |= set(task.transcript_action_tokens(state))
    return torch.tensor(sorted(vocab[w] for w in words), dtype=torch.long)
