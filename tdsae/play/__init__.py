"""A language model plays a task, or reads an agent's episodes, as transcripts or story prompts.

    played = play_task(load_model(path), get_task("twostep"), n_experiments=100, n_episodes=30, seed=0)
    played.trajectory, played.choice_logprobs, played.decision_pos   # a PlayResult

Modules: policy (reading and sampling a choice), result (PlayResult and its files), transcripts
(the organism, through a KV cache), stories (pretrained models), dispatch (which of the two).
"""

from tdsae.play.dispatch import play_task, render_episodes
from tdsae.play.policy import LM_POLICY_STREAM, restricted_logprobs, sample_choices
from tdsae.play.result import PlayResult, load_played, save_played
from tdsae.play.stories import last_token_logits, play_stories, story_outcome_positions
from tdsae.play.transcripts import CachedBatch, play_transcripts, reads_transcripts

__all__ = ["LM_POLICY_STREAM", "CachedBatch", "PlayResult", "last_token_logits", "load_played", "play_stories",
           "play_task", "play_transcripts", "reads_transcripts", "render_episodes", "restricted_logprobs",
           "sample_choices", "save_played", "story_outcome_positions"]
