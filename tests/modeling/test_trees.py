"""Token trees: the prefix KL and its smoothing, tree attention, and tree-packed losses and
gradients equal to the naive one-sequence-per-continuation computation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import items_and_prompts, random_lora_model
from hypothesis import given, settings
from hypothesis import strategies as st
from table_model import TokenTableModel

from calft import artifacts
from calft.errors import UserError
from calft.modeling.trees import (
    Continuation,
    Item,
    SoftTargets,
    example_losses,
    naive_example_losses,
    pack,
    prefix_kl,
    tree_attention,
)

# Two prompts' tries over tokens 1-4 with terminator 5. Prompt "p": outputs "1" (0.5), "2 3" (0.3), "2 4" (0.2);
# prompt "q": the single output "3". Rows: prompt, node, parent, depth, token, mass, q, canonical index.
TRIES = [
    ("q", 0, -1, 0, -1, 1.0, 1.0, -1),
    ("q", 1, 0, 1, 3, 1.0, 1.0, -1),
    ("q", 2, 1, 2, 5, 1.0, 1.0, 0),
    ("p", 0, -1, 0, -1, 1.0, 1.0, -1),
    ("p", 1, 0, 1, 1, 0.5, 0.5, -1),
    ("p", 2, 0, 1, 2, 0.5, 0.5, -1),
    ("p", 3, 1, 2, 5, 0.5, 1.0, 0),
    ("p", 4, 2, 2, 3, 0.3, 0.6, -1),
    ("p", 5, 2, 2, 4, 0.2, 0.4, -1),
    ("p", 6, 4, 3, 5, 0.3, 1.0, 1),
    ("p", 7, 5, 3, 5, 0.2, 1.0, 2),
]


@pytest.fixture
def soft_targets(tmp_path) -> SoftTargets:
    path = tmp_path / "tries.parquet"
    artifacts.write_frame(pd.DataFrame(TRIES, columns=artifacts.TRIE_COLUMNS), path, artifacts.provenance("tries", {}))
    return SoftTargets(path)


def test_soft_targets_index_every_prompts_nodes_in_one_table(soft_targets):
    # prompts in order of first appearance; node ids become rows of one table, parents follow them
    assert soft_targets.prompt_ids == ["q", "p"]
    np.testing.assert_array_equal(soft_targets.node_start, [0, 3, 11])
    np.testing.assert_array_equal(soft_targets.parent, [-1, 0, 1, -1, 3, 3, 4, 5, 5, 7, 8])
    np.testing.assert_array_equal(soft_targets.depth, [0, 1, 2, 0, 1, 1, 2, 2, 2, 3, 3])
    np.testing.assert_array_equal(soft_targets.children(0), [1])
    np.testing.assert_array_equal(soft_targets.children(3), [4, 5])
    np.testing.assert_array_equal(soft_targets.children(5), [7, 8])
    assert soft_targets.children(6).size == 0 and soft_targets.is_leaf.sum() == 4


@pytest.mark.parametrize(
    "draw, tokens, target_ids, target_probs",
    [
        (0.49, [1], [[1, 2], [5]], [[0.5, 0.5], [1.0]]),
        (0.5, [2, 3], [[1, 2], [3, 4], [5]], [[0.5, 0.5], [0.6, 0.4], [1.0]]),  # a draw on a boundary takes the next
        (1.0, [2, 4], [[1, 2], [3, 4], [5]], [[0.5, 0.5], [0.6, 0.4], [1.0]]),  # past the last one: the last output
        (0.6, [2, 3], [[1, 2], [3, 4], [5]], [[0.5, 0.5], [0.6, 0.4], [1.0]]),
        (0.95, [2, 4], [[1, 2], [3, 4], [5]], [[0.5, 0.5], [0.6, 0.4], [1.0]]),
    ],
)
def test_a_drawn_path_is_chosen_by_output_mass_and_carries_each_prefixs_targets(
    soft_targets, draw, tokens, target_ids, target_probs
):
    # leaves of p in order "1", "2 3", "2 4" with cumulative mass 0.5, 0.8, 1.0
    path = soft_targets.continuation(soft_targets.prompt_ids.index("p"), SimpleNamespace(random=lambda: draw))
    assert path.tokens.tolist() == tokens
    assert [ids.tolist() for ids in path.target_ids] == target_ids
    assert [probs.tolist() for probs in path.target_probs] == target_probs


def test_the_first_prompts_paths_start_at_its_root(soft_targets):
    path = soft_targets.continuation(soft_targets.prompt_ids.index("q"), SimpleNamespace(random=lambda: 0.3))
    assert path.tokens.tolist() == [3] and [ids.tolist() for ids in path.target_ids] == [[3], [5]]


def test_the_prefix_kl_defaults_to_temperature_1_and_no_smoothing():
    logits = torch.tensor([[0.0, 1.0, 2.0, 0.5]])
    ids, probs = torch.tensor([[1, 2]]), torch.tensor([[0.75, 0.25]])
    log_pi = torch.log_softmax(logits, -1)[0]
    expected = 0.75 * (math.log(0.75) - log_pi[1].item()) + 0.25 * (math.log(0.25) - log_pi[2].item())
    assert prefix_kl(logits, ids, probs).item() == pytest.approx(expected, rel=1e-6)
    tiny = torch.tensor([[1.0, 1e-12]])  # unsmoothed, the 1e-12 candidate adds almost nothing
    assert prefix_kl(logits, ids, tiny).item() == pytest.approx(-log_pi[1].item(), rel=1e-6)


def test_the_loss_smooths_each_candidate_to_epsilon_and_renormalizes():
    model = TokenTableModel(10)
    sharp = _continuation([1], [{1: 1 - 1e-6, 2: 1e-6}, {5: 1.0}])
    loss = example_losses(model, pack([Item(0, [sharp])], {0: [7, 8]}), tau=1.0, epsilon=0.01).item()
    smoothed = {1: (1 - 1e-6) / (1 - 1e-6 + 0.01), 2: 0.01 / (1 - 1e-6 + 0.01)}
    assert loss == pytest.approx((model.kl([7, 8], smoothed) + model.kl([7, 8, 1], {5: 1.0})) / 2, rel=1e-5)


def test_tries_must_stay_within_the_models_vocabulary(soft_targets, tmp_path):
    soft_targets.check_tokens(6)  # the largest token is 5
    with pytest.raises(UserError, match=f"{tmp_path / 'tries.parquet'} holds token 5, beyond the model's 5 tokens"):
        soft_targets.check_tokens(5)


def test_prefix_kl_equals_a_direct_kl_on_full_logits(tiny_model_dir, micro_data):
    items, rendered, pad = items_and_prompts(tiny_model_dir, micro_data, "soft", 1)
    model = random_lora_model(tiny_model_dir)
    item = items[0]
    cont = item.continuations[0]
    sequence = torch.tensor([rendered[item.prompt] + [int(t) for t in cont.tokens]])
    logits = model(input_ids=sequence).logits[0].float()
    start = len(rendered[item.prompt]) - 1
    tau = 0.7
    direct = []
    for k, (ids, probs) in enumerate(zip(cont.target_ids, cont.target_probs)):
        q = torch.zeros(logits.shape[-1])
        q[torch.as_tensor(ids)] = torch.as_tensor(probs, dtype=torch.float32)
        log_p = torch.log_softmax(logits[start + k] / tau, -1)
        direct.append(torch.nn.functional.kl_div(log_p, q, reduction="sum"))
    ours = example_losses(model, pack([item], rendered), tau=tau)
    assert len(cont.target_ids) == len(cont.tokens) + 1
    assert ours.item() == pytest.approx(torch.stack(direct).mean().item(), rel=1e-5)


def test_epsilon_smoothing_renormalizes_over_the_candidates():
    logits = torch.zeros(1, 5)
    ids, probs = torch.tensor([[1, 2, 0]]), torch.tensor([[1.0, 0.0, 0.0]])
    probs[0, 1] = 1e-30  # a present candidate with negligible mass gets epsilon
    value = prefix_kl(logits, ids, probs, epsilon=0.25).item()
    q = torch.tensor([0.8, 0.2])  # max(q, eps) renormalized
    assert value == pytest.approx(float((q * (q.log() - torch.log(torch.tensor(0.2)))).sum()), rel=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=60))
def test_tree_attention_marks_exactly_each_nodes_ancestors(draws):
    """A forest whose parents come before their children (each draw picks a parent among the nodes
    before it, or none): row i is True exactly at i and along its parent chain."""
    parents = [int(d * (i + 1)) - 1 for i, d in enumerate(draws)]
    parents = [min(p, i - 1) for i, p in enumerate(parents)]
    expected = torch.zeros((len(parents), len(parents)), dtype=torch.bool)
    for node in range(len(parents)):
        chain = node
        while chain >= 0:
            expected[node, chain] = True
            chain = parents[chain]
    depth = int(expected.sum(dim=1).max()) - 1  # the most edges from a node to its root
    assert torch.equal(tree_attention(torch.tensor(parents), depth), expected)


@pytest.mark.parametrize("method, group", [("soft", 1), ("soft", 3), ("hard", 4)])
def test_shared_prompt_packing_equals_the_naive_computation(tiny_model_dir, micro_data, method, group):
    items, rendered, pad = items_and_prompts(tiny_model_dir, micro_data, method, group)
    batch_items = items[:3]
    model = random_lora_model(tiny_model_dir)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    tree = pack(batch_items, rendered)
    sequences = [
        tuple(rendered[i.prompt]) + tuple(int(t) for t in c.tokens) for i in batch_items for c in i.continuations
    ]
    assert tree.tokens == len({s[: n + 1] for s in sequences for n in range(len(s))}) < sum(map(len, sequences))
    packed = example_losses(model, tree, tau=1.3, epsilon=1e-8)
    packed.sum().backward()
    packed_grads = {n: p.grad.clone() for n, p in trainable.items()}
    model.zero_grad()
    naive = naive_example_losses(model, batch_items, rendered, pad, tau=1.3, epsilon=1e-8)
    naive.sum().backward()
    assert len(packed) == 3 * group
    assert torch.allclose(packed, naive, atol=1e-5)
    for name, parameter in trainable.items():
        assert torch.allclose(packed_grads[name], parameter.grad, atol=1e-5), name


def _continuation(tokens, targets) -> Continuation:
    return Continuation(
        np.array(tokens), [np.array(list(t)) for t in targets], [np.array(list(t.values())) for t in targets]
    )


# one prompt (tokens 7 8) with the continuations "1" and "2 3", as the trie of TRIES's prompt p gives them
SHORT = _continuation([1], [{1: 0.5, 2: 0.5}, {5: 1.0}])
LONG = _continuation([2, 3], [{1: 0.5, 2: 0.5}, {3: 0.6, 4: 0.4}, {5: 1.0}])


def test_packing_shares_the_prompt_and_points_each_prefix_at_its_node():
    # nodes: 0 = 7, 1 = 8 (the prompt's last token: the first prefix of both), 2 = 1, 3 = 2, 4 = 3
    batch = pack([Item(0, [SHORT, LONG])], {0: [7, 8]})
    assert batch.input_ids.tolist() == [[7, 8, 1, 2, 3]] and batch.position_ids.tolist() == [[0, 1, 2, 2, 3]]
    assert batch.parents.tolist() == [-1, 0, 1, 1, 3] and (batch.tokens, batch.depth) == (5, 3)
    assert batch.keep.tolist() == [1, 2, 3, 4] and batch.target_col.tolist() == [0, 1, 0, 2, 3]
    assert batch.target_ids.tolist() == [[1, 2], [5, 0], [1, 2], [3, 4], [5, 0]]
    np.testing.assert_allclose(batch.target_probs, [[0.5, 0.5], [1, 0], [0.5, 0.5], [0.6, 0.4], [1, 0]])
    assert batch.target_example.tolist() == [0, 0, 1, 1, 1] and batch.num_continuations == 2


def test_a_continuations_loss_is_the_mean_of_its_prefix_kls_at_temperature_tau():
    model = TokenTableModel(10)
    losses = example_losses(model, pack([Item(0, [SHORT, LONG])], {0: [7, 8]}), tau=2.0).tolist()
    first = model.kl([7, 8], {1: 0.5, 2: 0.5}, 2.0)
    expected = [
        (first + model.kl([7, 8, 1], {5: 1.0}, 2.0)) / 2,
        (first + model.kl([7, 8, 2], {3: 0.6, 4: 0.4}, 2.0) + model.kl([7, 8, 2, 3], {5: 1.0}, 2.0)) / 3,
    ]
    assert losses == pytest.approx(expected, rel=1e-5)


def test_the_naive_computation_pads_each_continuation_and_gives_the_same_losses():
    model = TokenTableModel(10)
    sharp = _continuation([1], [{1: 1 - 1e-6, 2: 1e-6}, {5: 1.0}])  # epsilon lifts its second candidate
    items = [Item(0, [SHORT, LONG, sharp]), Item(1, [LONG])]
    packed = example_losses(model, pack(items, {0: [7, 8], 1: [6]}), tau=1.5, epsilon=0.01).tolist()
    naive = naive_example_losses(model, items, {0: [7, 8], 1: [6]}, pad_id=9, tau=1.5, epsilon=0.01).tolist()
    assert naive == pytest.approx(packed, rel=1e-6) and len(naive) == 4
    smoothed = {1: (1 - 1e-6) / (1 - 1e-6 + 0.01), 2: 0.01 / (1 - 1e-6 + 0.01)}
    assert naive[2] == pytest.approx(
        (model.kl([7, 8], smoothed, 1.5) + model.kl([7, 8, 1], {5: 1.0}, 1.5)) / 2, rel=1e-5
    )
    assert naive[3] == pytest.approx(
        (
            model.kl([6], {1: 0.5, 2: 0.5}, 1.5)
            + model.kl([6, 2], {3: 0.6, 4: 0.4}, 1.5)
            + model.kl([6, 2, 3], {5: 1.0}, 1.5)
        )
        / 3,
        rel=1e-5,
    )
