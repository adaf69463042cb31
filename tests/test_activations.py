"""Harvesting: rows equal a plain forward's hidden states; the store is atomic and checked on open."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import saved_micro_organism

from tdsae.activations import ActivationStore, ActivationStoreError, batch_experiments, harvest_activations
from tdsae.activations.store import INDEX_FILE, layer_file, rows_of, write_index
from tdsae.models import load_model, torch_module
from tdsae.play import play_transcripts
from tdsae.tasks import get_task


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """A saved micro organism (untrained), loaded through load_model, and its Two-Step play."""
    model = saved_micro_organism(tmp_path_factory.mktemp("harvest") / "micro", n_layers=3)
    played = play_transcripts(torch_module(model), model.tokenizer, get_task("twostep"), 5, 4, seed=1,
                              n_random_episodes=1)
    return model, played


def test_rows_equal_output_hidden_states_of_a_plain_forward(micro, tmp_path):
    model, played = micro
    store = harvest_activations(model, played, tmp_path / "store", buffer_mb=0.01, progress=False)  # many batches
    assert store.layers == (0, 1, 2, 3) and store.d_model == 32
    vocab = model.tokenizer.get_vocab()
    for e in range(5):
        ids = torch.tensor([[vocab[w] for w in played.tokens[e]]])
        with torch.no_grad():
            hidden = torch_module(model)(input_ids=ids, output_hidden_states=True).hidden_states
        part = store.index[store.index.experiment == e]
        # hidden_states[l] is layer l for l < n_layers; the last entry has the final norm applied
        for layer in (0, 1, 2):
            np.testing.assert_allclose(store.acts(layer, part.row), hidden[layer][0, part.position.to_numpy().copy()].numpy(),
                                       rtol=1e-5, atol=1e-5)


def test_index_aligns_rows_to_steps_and_kinds(micro):
    _, played = micro
    index = rows_of(played)
    traj = played.trajectory
    assert len(index) == 2 * traj.valid.sum()
    decisions = index[index.kind == "decision"]
    np.testing.assert_array_equal(decisions.position, played.decision_pos[traj.valid])
    tokens = [played.tokens[e][p] for e, p in zip(index.experiment, index.position)]
    outcome_words = {t for t, k in zip(tokens, index.kind) if k == "outcome"}
    assert outcome_words <= {"ts:planetX", "ts:planetY"} | {f"ts:{a}{r}" for a in "DFJK" for r in "01"}
    # the planet token is both the spaceship's outcome and the alien decision: one stored vector
    first_stage = index[(index.step == 0) & (index.kind == "outcome")].row.to_numpy()
    second_stage = index[(index.step == 1) & (index.kind == "decision")].row.to_numpy()
    np.testing.assert_array_equal(first_stage, second_stage)
    assert index.row.max() + 1 == len(index) - len(first_stage)
    with pytest.raises(ValueError, match="unknown position kinds"):
        rows_of(played, ("reward",))


def test_layer_out_of_range_is_refused_before_any_work(micro, tmp_path):
    model, played = micro
    with pytest.raises(ValueError, match=r"layer 7 is out of range.*0\.\.3"):
        harvest_activations(model, played, tmp_path / "store", layers=[7], progress=False)
    assert not (tmp_path / "store").exists()


def test_buffer_bounds_the_rows_held_whatever_the_layers():
    counts = np.full(50, 120)
    for n_layers in (4, 80):
        batches = batch_experiments(counts, n_layers, 8192, buffer_mb=256)
        assert sum(len(b) for b in batches) == 50
        largest = max(counts[b].sum() for b in batches if len(b) > 1) if any(len(b) > 1 for b in batches) else 0
        assert largest * 4 * (n_layers + 1) * 8192 <= 256 * 2**20


def test_inconsistent_store_is_refused_naming_file_and_field(micro, tmp_path):
    model, played = micro
    directory = tmp_path / "store"
    harvest_activations(model, played, directory, progress=False)
    index = ActivationStore(directory).index
    write_index(index.iloc[:-3], directory / INDEX_FILE)
    with pytest.raises(ActivationStoreError, match=r"index.npz: field 'row'.*n_rows="):
        ActivationStore(directory)
    (directory / INDEX_FILE).write_bytes(b"not a zip file")
    with pytest.raises(ActivationStoreError, match=r"index.npz is not a readable .npz index"):
        ActivationStore(directory)
    harvest_activations(model, played, directory, progress=False)
    np.save(directory / layer_file(2), np.zeros((3, 32), np.float32))
    with pytest.raises(ActivationStoreError, match=r"layer_02.npy: shape \(3, 32\)"):
        ActivationStore(directory)
    (directory / "store.json").write_text("{not json")
    with pytest.raises(ActivationStoreError, match="store.json is not valid JSON"):
        ActivationStore(directory)


def test_a_harvest_killed_mid_write_leaves_no_store_and_the_next_run_completes(micro, tmp_path):
    model, played = micro
    folder = torch_module(model).config._name_or_path
    script = textwrap.dedent(f"""
        import os, signal, torch
        from tdsae.activations import harvest_activations
        from tdsae.models import load_model, torch_module
        from tdsae.play import play_transcripts
        from tdsae.tasks import get_task
        model = load_model({folder!r}, device="cpu")
        played = play_transcripts(torch_module(model), model.tokenizer, get_task("twostep"), 5, 4, seed=1,
                                  n_random_episodes=1)
        harvest_activations(model, played, {str(tmp_path / 'store')!r}, buffer_mb=0.01, progress=False,
                            after_batch=lambda n: os.kill(os.getpid(), signal.SIGKILL) if n == 1 else None)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == -signal.SIGKILL
    assert not (tmp_path / "store").exists()  # only a hidden temporary folder is left behind
    with pytest.raises(ActivationStoreError, match="does not exist"):
        ActivationStore(tmp_path / "store")
    store = harvest_activations(model, played, tmp_path / "store", progress=False)
    assert json.loads((tmp_path / "store" / "store.json").read_text())["n_rows"] == store.n_rows > 0


@pytest.fixture(scope="module")
def story_model(tmp_path_factory):
    """A micro Llama (2 layers) saved with a story tokenizer, loaded through load_model: a stand-in pretrained LM."""
    from conftest import story_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = story_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096)
    folder = tmp_path_factory.mktemp("story") / "lm"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return load_model(folder, device="cpu")


def test_story_mode_rows_equal_forwards_of_the_story_text_up_to_them(story_model, tmp_path):
    from tdsae.play import play_task

    model, tokenizer = story_model, story_model.tokenizer
    played = play_task(model, get_task("twostep"), 3, 2, seed=4, n_random_episodes=1)
    assert len(played.prompts) == len(played.tokens) == 3
    store = harvest_activations(model, played, tmp_path / "store", progress=False)
    assert store.meta["mode"] == "story" and store.n_rows == 2 * 12  # every step's decision and outcome, in one story
    for _, entry in store.index.iterrows():
        # the story's text up to the row's token, tokenized afresh: what a reader of the text would feed
        story = played.prompts[entry.experiment]
        end = tokenizer(story, return_offsets_mapping=True)["offset_mapping"][entry.position][1]
        ids = tokenizer(story[:end])["input_ids"]
        assert ids == tokenizer.convert_tokens_to_ids(played.tokens[entry.experiment][: entry.position + 1])
        with torch.no_grad():
            hidden = torch_module(model)(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        np.testing.assert_allclose(store.acts(1, [entry.row])[0], hidden[1][0, entry.position].numpy(),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,per_batch", [("twostep", None), ("gridworld", None), ("twostep", 2), ("graph", 2)])
def test_story_play_keeps_the_harvest_in_its_own_forward_passes(story_model, tmp_path, name, per_batch):
    """The residual stream kept while playing (one read of each story) is the store a second pass would
    write: same rows, same vectors at every layer to float rounding, same play; also when the experiments
    play in batches, whose rows must be filed under each experiment's own number."""
    from tdsae.activations import store_played_residuals
    from tdsae.models import residual_sites
    from tdsae.play import play_task

    task = get_task(name, **({"max_steps": 4} if name in ("gridworld", "graph") else {}))
    hooks = [dict(site._forward_hooks) for site in residual_sites(torch_module(story_model))]
    plain = play_task(story_model, task, 3, 3, seed=2, n_random_episodes=1, experiments_per_batch=per_batch)
    kept = play_task(story_model, task, 3, 3, seed=2, n_random_episodes=1, residual_layers=[0, 1, 2],
                     experiments_per_batch=per_batch)
    assert isinstance(kept.residuals.values, np.memmap)  # on disk, not in RAM
    np.testing.assert_array_equal(kept.choice_logprobs, plain.choice_logprobs)  # keeping changes nothing played
    assert kept.tokens == plain.tokens and plain.residuals is None
    assert [dict(site._forward_hooks) for site in residual_sites(torch_module(story_model))] == hooks  # tap removed
    from_play = store_played_residuals(story_model, kept, tmp_path / "kept")
    second_pass = harvest_activations(story_model, kept, tmp_path / "read", progress=False)
    assert from_play.index.equals(second_pass.index) and from_play.layers == second_pass.layers == (0, 1, 2)
    assert {k: v for k, v in from_play.meta.items()} == second_pass.meta
    for layer in (0, 1, 2):
        read = np.asarray(second_pass.acts(layer))
        scale = np.abs(read).max()  # rows of an untrained micro model are ~0.05: the tolerance follows their size
        # past the embeddings rows differ by context (only the stories' identical openings repeat), so a row filed
        # under another's position would show
        assert scale > 0 and (layer == 0 or len(np.unique(read, axis=0)) > 0.7 * len(read))
        np.testing.assert_allclose(from_play.acts(layer), read, rtol=1e-4, atol=1e-4 * scale)


def test_a_store_from_play_refuses_residuals_that_do_not_belong_to_the_play(story_model, tmp_path):
    from tdsae.activations import store_played_residuals
    from tdsae.play import play_task

    task = get_task("twostep")
    kept = play_task(story_model, task, 2, 2, seed=2, residual_layers=[1])
    with pytest.raises(ValueError, match="kept no residual stream"):
        store_played_residuals(story_model, play_task(story_model, task, 2, 2, seed=2), tmp_path / "a")
    kept.residuals.rows.pop(next(iter(kept.residuals.rows)))
    with pytest.raises(ValueError, match="do not belong together"):
        store_played_residuals(story_model, kept, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_difference_from_forward_is_zero_for_a_true_store_and_not_for_a_tampered_one(micro, tmp_path):
    from tdsae.activations import max_difference_from_forward

    model, played = micro
    store = harvest_activations(model, played, tmp_path / "store", progress=False)
    assert max_difference_from_forward(model, played, store, experiments=(0, 3)) < 1e-5
    values = np.load(tmp_path / "store" / layer_file(1), mmap_mode="r+")
    values[store.index[store.index.experiment == 3].row.iloc[2]] += 0.5
    values.flush()
    assert max_difference_from_forward(model, played, ActivationStore(tmp_path / "store"), experiments=(3,)) >= 0.5


def test_head_results_sum_to_the_attention_output_and_read_real_tokens_only(tmp_path):
    """Each head's z_h W_O, split from o_proj's input: the heads of a layer sum to o_proj's output at every token, the
    mean skips padding, and a position picks one token per row."""
    import nnsight
    from conftest import saved_micro_organism

    from tdsae.activations import head_results

    model = saved_micro_organism(tmp_path / "micro", n_layers=2)
    ids = torch.randint(3, 20, (3, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0  # right padding
    with torch.no_grad(), model.trace(input_ids=ids, attention_mask=mask):
        attention = nnsight.save([model.model.layers[l].self_attn.o_proj.output for l in range(2)])
    at_tokens = torch.stack([head_results(model, ids, mask, positions=torch.full((3,), p)) for p in range(6)], 1)
    assert at_tokens.shape == (3, 6, 2, 2, 32)  # batch, token, layer, head, d_model
    for layer in range(2):
        torch.testing.assert_close(at_tokens[:, :, layer].sum(2), attention[layer].float(), atol=1e-5, rtol=1e-5)
    means = head_results(model, ids, mask)
    torch.testing.assert_close(means[1], at_tokens[1, :4].mean(0), atol=1e-6, rtol=1e-6)  # padding left out
    torch.testing.assert_close(means[0], at_tokens[0].mean(0), atol=1e-6, rtol=1e-6)
    assert not torch.allclose(at_tokens[:, 0, 1, 0], at_tokens[:, 0, 1, 1])  # two heads, two results
