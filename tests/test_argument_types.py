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


@pytest.mark.parametrize("keyword", ["logprobs", "logsumexp", "valid"])
@pytest.mark.parametrize("value", [[0.0], 0.0, "x"])
def test_greedy_sample_with_a_non_tensor_extra_output(keyword, value):
    out = torch.full((1,), -7)
    with pytest.raises(TypeError, match=f"greedy_sample\\(\\): {keyword} must be a Tensor"):
        safe_greedy.greedy_sample(out, torch.randn(1, 4), **{keyword: value})
    assert out.tolist() == [-7]


@pytest.mark.parametrize("token", [1.0, "1", True, torch.tensor(1)])
def test_fallback_token_that_is_not_an_int(token):
    out = torch.full((1,), -7)
    with pytest.raises(TypeError, match="greedy_sample\\(\\): fallback_token must be an int"):
        safe_greedy.greedy_sample(out, torch.randn(1, 4), fallback_token=token)
    assert out.tolist() == [-7]
    with pytest.raises(TypeError, match="greedy\\(\\): fallback_token must be an int"):
        safe_greedy.greedy(torch.randn(1, 4), fallback_token=token)


@pytest.mark.parametrize("logits", [[[1.0, 2.0]], None])
def test_greedy_of_a_non_tensor(logits):
    with pytest.raises(TypeError, match="greedy\\(\\): logits must be a Tensor, not"):
        safe_greedy.greedy(logits)
