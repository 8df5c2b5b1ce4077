import pytest
import torch

from erase.training import Checkpointer, train
from pipelines.errors import ConfigError, TrainingDiverged


def problem(seed=0):
    torch.manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(8))
    target = torch.linspace(-1, 1, 8)

    def loss_fn(step, generator):
        noise = torch.randn(8, generator=generator) * 0.1
        return ((w - target - noise) ** 2).mean()

    return {"w": w}, loss_fn


def test_resume_matches_an_uninterrupted_run(tmp_path):
    params, loss_fn = problem()
    train(params, torch.optim.Adam(params.values(), lr=0.05), loss_fn, steps=20, seed=3, progress=False)
    uninterrupted = params["w"].detach().clone()

    params, loss_fn = problem()
    ckpt = Checkpointer(str(tmp_path), fingerprint="abc", every=5)

    class Stop(Exception):
        pass

    def dies_at_12(step, generator):
        if step == 12:
            raise Stop
        return loss_fn(step, generator)

    with pytest.raises(Stop):
        train(params, torch.optim.Adam(params.values(), lr=0.05), dies_at_12, steps=20, seed=3, checkpointer=ckpt, progress=False)
    params, loss_fn = problem(seed=99)  # fresh process: different initial values, restored from the checkpoint
    stats = train(params, torch.optim.Adam(params.values(), lr=0.05), loss_fn, steps=20, seed=3, checkpointer=ckpt, progress=False)
    assert stats.resumed_from == 10
    torch.testing.assert_close(params["w"].detach(), uninterrupted)


def test_checkpoint_of_another_config_is_refused(tmp_path):
    params, loss_fn = problem()
    train(params, torch.optim.Adam(params.values()), loss_fn, steps=4, seed=0, checkpointer=Checkpointer(str(tmp_path), "one", 2), progress=False)
    with pytest.raises(ConfigError, match="different configuration"):
        train(params, torch.optim.Adam(params.values()), loss_fn, steps=4, seed=0, checkpointer=Checkpointer(str(tmp_path), "two", 2), progress=False)


def test_nan_stops_with_a_message_and_keeps_the_last_good_state(tmp_path):
    params, loss_fn = problem()

    def blows_up(step, generator):
        loss = loss_fn(step, generator)
        return loss * float("nan") if step == 6 else loss

    ckpt = Checkpointer(str(tmp_path), "run", every=100)
    with pytest.raises(TrainingDiverged, match="step 7.*last good state"):
        train(params, torch.optim.Adam(params.values(), lr=0.05), blows_up, steps=20, seed=0, checkpointer=ckpt, progress=False)
    assert torch.isfinite(params["w"]).all()
    restored, _ = problem(seed=5)
    step, losses = ckpt.load(restored, torch.optim.Adam(restored.values(), lr=0.05))
    assert step == 6 and len(losses) == 6
    torch.testing.assert_close(restored["w"].detach(), params["w"].detach())


def test_a_checkpoint_without_the_auxiliary_state_resumes_and_says_what_restarts(tmp_path, caplog):
    from erase.training import AuxiliaryState

    params, loss_fn = problem()
    train(params, torch.optim.Adam(params.values()), loss_fn, steps=4, seed=0, checkpointer=Checkpointer(str(tmp_path), "abc", 2), progress=False)
    critic = torch.nn.Linear(2, 1)
    before = {k: v.clone() for k, v in critic.state_dict().items()}
    auxiliary = AuxiliaryState(modules={"critic": critic}, optimizers={"critic": torch.optim.Adam(critic.parameters())})
    with caplog.at_level("WARNING"):
        step, _ = Checkpointer(str(tmp_path), "abc", 2, auxiliary).load(params, torch.optim.Adam(params.values()))
    assert step == 2 and "holds no critic, critic optimiser" in caplog.text
    assert all(torch.equal(critic.state_dict()[k], v) for k, v in before.items())  # left as it was
