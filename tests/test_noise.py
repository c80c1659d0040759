"""Noise sources (omiga_pl/noise.py): a generator source draws exactly what torch's
samplers draw from the same generator; a recording lists the draws; a replay hands back
given tensors in order and refuses a draw that differs from the recording."""

from __future__ import annotations

import pytest
import torch

from omiga_pl.noise import GeneratorNoise, RecordingNoise, ReplayedNoise, draw_all


def test_a_generator_source_draws_what_torch_draws_from_the_same_generator():
    like = torch.zeros(1, dtype=torch.float64)
    source = GeneratorNoise(torch.Generator().manual_seed(11))
    got = [source.normal((2, 3), like), source.uniform((4,), like)]
    reference = torch.Generator().manual_seed(11)
    want = [
        torch.randn((2, 3), generator=reference, dtype=torch.float64),
        torch.rand(4, generator=reference, dtype=torch.float64),
    ]
    for a, b in zip(got, want):
        assert torch.equal(a, b) and a.dtype == torch.float64
    with pytest.raises(ValueError, match="noise kind: expected one of"):
        source.draw("laplace", (1,), like.device, like.dtype)


def test_recorded_draws_remade_from_a_generator_replay_in_order():
    like = torch.zeros(1)
    recorder = RecordingNoise("cpu")
    recorder.normal((3, 2), like), recorder.uniform((5,), like)
    assert recorder.draws == [("normal", (3, 2), torch.float32), ("uniform", (5,), torch.float32)]
    made = draw_all(GeneratorNoise(torch.Generator().manual_seed(4)), recorder.draws, like.device)
    replay = ReplayedNoise(made, recorder.draws)
    assert replay.normal((3, 2), like) is made[0] and replay.uniform((5,), like) is made[1]
    # The same calls on a fresh generator: the single run's draws, bit for bit.
    single = GeneratorNoise(torch.Generator().manual_seed(4))
    assert torch.equal(single.normal((3, 2), like), made[0]) and torch.equal(
        single.uniform((5,), like), made[1]
    )
    with pytest.raises(RuntimeError, match="draw 3 asked for, 2 recorded"):
        replay.normal((1,), like)


def test_a_replay_refuses_a_draw_that_differs_from_the_recording():
    like = torch.zeros(1)
    replay = ReplayedNoise([torch.zeros(3)], [("normal", (3,), torch.float32)])
    with pytest.raises(RuntimeError, match=r"draw 1 is \('uniform', \(3,\), torch.float32\), recorded"):
        replay.uniform((3,), like)
