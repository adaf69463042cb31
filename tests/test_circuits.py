"""O'Neill & Bui's discrete codes on planted circuits: heads whose output depends on the prompt's class score high."""

import numpy as np
import torch

from tdsae.circuits import (discrete_codes, edge_scores, edge_votes, mean_difference_scores, node_scores,
                            random_codes, ranking_scores, train_code_sae)


def planted_heads(seed: int = 0, n_examples: int = 40, n_heads: int = 8, d: int = 16, circuit=(1, 4, 6)):
    """Head vectors [examples, heads, d] where the circuit's heads point one way on positive prompts and another on
    negative ones, and every other head draws from the same directions whatever the prompt."""
    rng = np.random.default_rng(seed)
    positive = np.arange(n_examples) < n_examples // 2
    directions = rng.standard_normal((n_heads, 4, d))
    pick = rng.integers(0, 2, (n_examples, n_heads))
    vectors = directions[np.arange(n_heads)[None, :], pick] + 0.05 * rng.standard_normal((n_examples, n_heads, d))
    for head in circuit:  # positive prompts: directions 2-3, which negative prompts never use
        vectors[positive, head] = directions[head, 2 + pick[positive, head]] + 0.05 * rng.standard_normal(
            (positive.sum(), d))
    truth = np.isin(np.arange(n_heads), circuit)
    return vectors, positive, truth


def test_codes_find_a_planted_circuit_and_shuffled_labels_do_not():
    vectors, positive, truth = planted_heads()
    sae = train_code_sae(vectors[::4], n_latents=32, epochs=300, seed=0)  # a few prompts, as the paper trains
    codes = discrete_codes(sae, vectors)
    nodes = node_scores(codes, positive)
    assert ranking_scores(nodes, truth)["roc_auc"] == 1.0
    shuffled = np.random.default_rng(1).permutation(positive)
    assert ranking_scores(node_scores(codes, shuffled), truth)["roc_auc"] < 0.9
    votes = edge_votes(edge_scores(codes, positive))
    # a pair with one circuit head already has codes of its own on positives, so heads outside the circuit collect
    # votes through their circuit partners: the edge votes rank the circuit well, not perfectly
    assert truth[np.argmax(votes)] and ranking_scores(votes, truth)["roc_auc"] >= 0.75


def test_the_sae_is_seeded_and_keeps_unit_norm_dictionary_rows():
    vectors, _, _ = planted_heads()
    first, again = (train_code_sae(vectors, n_latents=16, epochs=20, seed=3) for _ in range(2))
    np.testing.assert_array_equal(first.decoder, again.decoder)
    np.testing.assert_allclose(np.linalg.norm(first.decoder, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(first.decoder, train_code_sae(vectors, n_latents=16, epochs=20, seed=4).decoder)


def test_scores_count_what_positives_show_alone_and_ties_count_half():
    codes = np.array([[0, 5], [1, 5], [0, 5], [2, 5]])  # head 0: codes 0, 1 on positives, 0, 2 on negatives
    positive = np.array([True, True, False, False])
    np.testing.assert_array_equal(node_scores(codes, positive), [1, 0])
    assert edge_scores(codes, positive)[0, 1] == 1 and edge_scores(codes, positive)[0, 0] == 0
    # two heads in, two out, all four tied: chance, however the heads are ordered
    assert ranking_scores([3, 3, 3, 3], np.array([True, False, True, False]))["roc_auc"] == 0.5
    # the released code's k counts list entries, two per ordered pair: k=2 is the best pair's two heads once each
    assert edge_votes(np.array([[0, 2, 0], [2, 0, 1], [0, 1, 0]]), k=2).tolist() == [1, 1, 0]
    assert edge_votes(np.array([[0, 2, 0], [2, 0, 1], [0, 1, 0]]), k=4).tolist() == [2, 2, 0]  # (0,1) and (1,0)
    assert edge_votes(np.array([[0, 2, 0], [2, 0, 1], [0, 1, 0]])).sum() == 9 // 2  # default k = heads² // 2


def test_the_baselines_see_a_planted_circuit_and_random_codes_are_seeded():
    vectors, positive, truth = planted_heads()
    assert ranking_scores(mean_difference_scores(vectors, positive), truth)["roc_auc"] == 1.0
    codes = random_codes(vectors, n_directions=32, seed=0)
    assert codes.shape == (40, 8) and np.array_equal(codes, random_codes(vectors, n_directions=32, seed=0))
    assert not np.array_equal(codes, random_codes(vectors, n_directions=32, seed=1))


def test_the_auc_equals_sklearns_and_pooled_networks_are_ranked_only_within_themselves():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    scores, truth = rng.integers(0, 4, 30).astype(float), rng.random(30) < 0.3  # integer scores: many ties
    assert abs(ranking_scores(scores, truth)["roc_auc"] - roc_auc_score(truth, scores)) < 1e-12
    # two networks, each ranked perfectly on its own scale, the second's scores all below the first's: pooled
    # naively the second network's circuit head loses to the first's other heads; within networks the AUC is 1
    scores = np.array([10.0, 9, 8, 1, 0.5, 0.2])
    truth = np.array([True, False, False, True, False, False])
    groups = np.array([0, 0, 0, 1, 1, 1])
    assert ranking_scores(scores, truth)["roc_auc"] < 1.0
    assert ranking_scores(scores, truth, groups=groups)["roc_auc"] == 1.0
    assert ranking_scores(scores, truth, groups=groups)["average_precision"] == 1.0


def test_minimal_pairs_differ_only_in_the_rewards_of_payout_words_and_are_seeded():
    """Positive and negative prompts have the same words everywhere except payout words, whose alien is kept and
    whose reward differs; every pair differs somewhere; the prompt ends at the decision token and the target is the
    word of the action the agent favoured, with at least the required confidence; the same seed gives the same pairs."""
    from tdsae.circuits import minimal_pairs, stray_differences
    from tdsae.organism.corpus import TranscriptRecipe, seed_for, simulate_transcripts
    from tdsae.organism.tokenizer import build_tokenizer
    from tdsae.tasks import get_task

    sims = simulate_transcripts("twostep", 12, seed_for(0, 5), TranscriptRecipe(n_episodes=12, n_random_episodes=3))
    task, tokenizer = get_task("twostep"), build_tokenizer()
    pairs = minimal_pairs(task, sims.traj, sims.alpha, sims.beta, tokenizer, confidence=0.8, per_experiment=2,
                          n_random_episodes=3, seed=0)
    assert len(pairs) > 5 and stray_differences(pairs, tokenizer) == 0
    assert ((pairs.positive != pairs.negative).sum(1) > 0).all()  # every negative really changed
    assert torch.equal(pairs.positive == tokenizer.pad_token_id, pairs.attention_mask == 0)
    assert (pairs.positions == pairs.attention_mask.sum(1) - 1).all()
    words = {index: word for word, index in tokenizer.get_vocab().items()}
    rows = np.arange(len(pairs))
    assert {words[int(i)] for i in pairs.positive[rows, pairs.positions]} <= {"ts:start", "ts:planetX", "ts:planetY"}
    assert (pairs.confidence >= 0.8).all() and np.isfinite(pairs.negative_confidence).all()
    for row in rows:  # the target is the favoured action's word, the one the transcript's next word names
        state = int(sims.traj.state[pairs.experiment[row], pairs.column[row]])
        assert words[int(pairs.targets[row])] in task.transcript_action_tokens(state)
    again = minimal_pairs(task, sims.traj, sims.alpha, sims.beta, tokenizer, confidence=0.8, per_experiment=2,
                          n_random_episodes=3, seed=0)
    assert torch.equal(again.negative, pairs.negative) and np.array_equal(again.column, pairs.column)
    other = minimal_pairs(task, sims.traj, sims.alpha, sims.beta, tokenizer, confidence=0.8, per_experiment=2,
                          n_random_episodes=3, seed=1)
    assert not (torch.equal(other.negative, pairs.negative) and np.array_equal(other.column, pairs.column))
    # a stray change anywhere else is counted
    broken = pairs.rows(np.arange(len(pairs)))
    broken.negative = broken.negative.clone()
    broken.negative[0, 1] = tokenizer.get_vocab()["ts:planetY" if words[int(broken.negative[0, 1])] != "ts:planetY"
                                                  else "ts:planetX"]
    assert stray_differences(broken, tokenizer) == 1


def ioi_tokenizer():
    """A word-level tokenizer that cuts text as GPT-2 and SmolLM2 do, over every IOI template, name, place and object."""
    from conftest import GPT2_SPLIT
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tdsae.circuits.ioi import IOI_NAMES, IOI_OBJECTS, IOI_PLACES, IOI_TEMPLATES

    split = pre_tokenizers.Split(Regex(GPT2_SPLIT), behavior="isolated")
    texts = [template.format(first=" Mary", second=" John", S=" John", place=place, object=thing)
             for template in IOI_TEMPLATES for place in IOI_PLACES for thing in IOI_OBJECTS]
    words = {w for text in texts + [" " + " ".join(IOI_NAMES)] for w, _ in split.pre_tokenize_str(text)}
    vocab = {"<unk>": 0, "<pad>": 1, **{w: i + 2 for i, w in enumerate(sorted(words))}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = split
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>")


def test_ioi_pairs_differ_in_the_second_subject_mention_only():
    """Each IOI prompt and its ABC corruption differ at exactly one token: the subject's second mention, replaced by
    a name the prompt never used; the target is the indirect object, named once before; orders alternate; seeded."""
    from tdsae.circuits.ioi import IOI_NAMES, ioi_pairs

    tokenizer = ioi_tokenizer()
    pairs = ioi_pairs(tokenizer, n_pairs=12, seed=0)
    differ = (pairs.positive != pairs.negative)
    assert (differ.sum(1) == 1).all()
    where = differ.float().argmax(1)
    for row in range(len(pairs)):
        length = int(pairs.attention_mask[row].sum())
        before = pairs.positive[row, :where[row]].tolist()
        assert before.count(int(pairs.positive[row, where[row]])) == 1  # the subject, named once before
        assert int(pairs.negative[row, where[row]]) not in pairs.positive[row, :length].tolist()  # a third name
        assert before.count(int(pairs.targets[row])) == 1 and pairs.positions[row] == length - 1
    names = {tokenizer.get_vocab()[" " + name] for name in IOI_NAMES}
    first_names = torch.tensor([next(t for t in row.tolist() if t in names) for row in pairs.positive])
    assert (first_names[::2] == pairs.targets[::2]).all() and (first_names[1::2] != pairs.targets[1::2]).all()
    again = ioi_pairs(tokenizer, n_pairs=12, seed=0)
    assert torch.equal(again.positive, pairs.positive) and torch.equal(again.negative, pairs.negative)
    assert not torch.equal(ioi_pairs(tokenizer, n_pairs=12, seed=1).positive, pairs.positive)


def test_on_a_model_with_one_planted_head_the_ablation_truth_and_the_codes_both_find_it(tmp_path):
    """A micro organism whose output projection is zeroed for every head but one: ablating any other head changes
    nothing (the truth is exactly that head), and the SAE codes of the heads' results, on positive and negative
    prompts drawn from different words, rank it first."""
    from conftest import saved_micro_organism

    from tdsae.activations.heads import head_results
    from tdsae.interventions.heads import ablate_heads, ablation_truths

    model = saved_micro_organism(tmp_path / "micro", n_layers=2)
    module = model._module
    with torch.no_grad():  # only head 0 of layer 1 writes into the residual stream
        for layer in range(2):
            weight = module.model.layers[layer].self_attn.o_proj.weight
            keep = torch.zeros(weight.shape[1], dtype=torch.bool)
            if layer == 1:
                keep[:weight.shape[1] // 2] = True
            weight[:, ~keep] = 0.0
    generator = torch.Generator().manual_seed(0)
    positive = torch.randint(3, 12, (12, 8), generator=generator)
    negative = torch.randint(12, 20, (12, 8), generator=generator)
    ids, mask = torch.cat([positive, negative]), torch.ones(24, 8, dtype=torch.long)
    positions, targets = torch.full((24,), 7), torch.full((24,), 5)
    effects = ablate_heads(model, ids, mask, positions, targets, "zero")
    truth = ablation_truths(effects, "kl", (0.5,))[0.5]
    assert truth.tolist() == [False, False, True, False]  # (layer, head) order: only 1.0
    assert effects.kl.to_numpy()[~truth].max() < 1e-7
    vectors = head_results(model, ids, mask).flatten(1, 2).numpy()
    labels = np.arange(24) < 12
    sae = train_code_sae(np.concatenate([vectors[:3], vectors[12:15]]), n_latents=32, epochs=200, seed=0)
    nodes = node_scores(discrete_codes(sae, vectors), labels)
    assert nodes[2] > 0 and ranking_scores(nodes, truth)["roc_auc"] == 1.0
