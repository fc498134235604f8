import math

import pytest
import torch

from genai_course.data import two_moons


def test_two_moons_lie_on_their_circles_and_are_reproducible():
    x, y = two_moons(4000, noise=0.0, generator=torch.Generator().manual_seed(1))
    assert x.shape == (4000, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.5]])[y]
    radius = (x - centres).norm(dim=1)
    assert torch.allclose(radius, torch.ones(4000), atol=1e-5)             # on the unit circle of its moon
    assert (x[y == 0, 1] >= -1e-6).all() and (x[y == 1, 1] <= 0.5 + 1e-6).all()  # upper / lower halves
    assert abs(y.float().mean().item() - 0.5) < 0.03
    x2, y2 = two_moons(4000, noise=0.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_two_moons_noise_has_the_requested_spread():
    g = torch.Generator().manual_seed(0)
    clean, _ = two_moons(20000, noise=0.0, generator=torch.Generator().manual_seed(0))
    noisy, _ = two_moons(20000, noise=0.2, generator=torch.Generator().manual_seed(0))
    assert math.isclose((noisy - clean).std().item(), 0.2, rel_tol=0.03)
    with pytest.raises(ValueError, match="noise"):
        two_moons(10, noise=-1.0, generator=g)
