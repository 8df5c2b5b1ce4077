"""The judged stopping rule on its own scores (few-shot's epochs, DoCo's steps)."""

import pytest

from erase.stopping import EpochScore, choose_epoch


def score(epoch, target, same, other):
    return EpochScore(epoch, target, same, other, {})


def test_stopping_rule_on_its_own_scores():
    base = score(0, 100, 95, 95)
    # the first epoch that erases, unless a later one that also erases keeps the others better
    assert choose_epoch([base, score(1, 60, 95, 95), score(2, 20, 90, 90), score(3, 0, 70, 80)], 30)[0] == 2
    assert choose_epoch([base, score(1, 25, 80, 80), score(2, 10, 90, 90)], 30)[0] == 2
    assert choose_epoch([base, score(1, 25, 90, 90), score(2, 10, 90, 90)], 30)[0] == 2  # ties: the one that erased more
    assert choose_epoch([base, score(1, 10, 90, 90), score(2, 10, 90, 90)], 30)[0] == 1  # then the earliest
    epoch, why = choose_epoch([base, score(1, 80, 95, 95), score(2, 50, 90, 90)], 30)
    assert epoch == 2 and "no epoch" in why
    # nothing erases: the best trade (40 + 95) beats the lowest share shown (50 + 40)
    assert choose_epoch([base, score(1, 60, 95, 95), score(2, 50, 40, 40)], 30)[0] == 1
    assert choose_epoch([score(0, 0, 100, 100), score(1, 50, 50, 50)], 30)[0] == 1  # never the base


def test_balance_ranks_the_erasing_states_by_erased_plus_kept():
    base = score(0, 95, 94, 100)
    # DoCo's split run: step 375 keeps one image more, step 300 erases one image more and is the one to keep
    states = [base, score(300, 5, 88.9, 100), score(375, 10, 94.4, 100), score(450, 35, 94.4, 100)]
    assert choose_epoch(states, 15)[0] == 375
    step, why = choose_epoch(states, 15, unit="step", rank="balance")
    assert step == 300 and why.startswith("step 300:") and "erased and kept best together" in why
    assert choose_epoch([base, score(1, 10, 90, 90), score(2, 10, 90, 90)], 15, rank="balance")[0] == 1  # ties: earliest
    # a state that erases everything but costs more than it erases is not preferred
    assert choose_epoch([base, score(1, 10, 90, 90), score(2, 0, 70, 80)], 15, rank="balance")[0] == 1
    with pytest.raises(ValueError, match="rank must be one of"):
        choose_epoch(states, 15, rank="most")
