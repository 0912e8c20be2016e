"""Arguments that are not tensors raise TypeError, as torch's functions do."""

import pytest
import torch

import safe_greedy


@pytest.mark.parametrize("logits", [[[1.0, 2.0]], None, 3.0, "logits"])
def test_argmax_of_a_non_tensor(logits):
    with pytest.raises(TypeError):
        torch.argmax(logits)  # what torch does, so this test states torch's behaviour
    with pytest.raises(TypeError, match="argmax\\(\\): logits must be a Tensor, not"):
        safe_greedy.argmax(logits)


@pytest.mark.parametrize("logits", [[[1.0, 2.0]], None, 3.0])
def test_greedy_sample_with_non_tensor_logits(logits):
    out = torch.full((1,), -7)
    with pytest.raises(TypeError, match="greedy_sample\\(\\): logits must be a Tensor"):
        safe_greedy.greedy_sample(out, logits)
    assert out.tolist() == [-7]


@pytest.mark.parametrize("out", [[0], None, 0])
def test_greedy_sample_with_non_tensor_out(out):
    with pytest.raises(TypeError, match="greedy_sample\\(\\): out must be a Tensor"):
        safe_greedy.greedy_sample(out, torch.randn(1, 4))
