import pytest
import torch

from ocdsl.ops import get
from ocdsl.shapes import ShapeError

from ._helpers import run_op, sym


def test_masks_sum_to_one_and_image_is_the_mixture():
    rgb, alpha = torch.randn(2, 3, 3, 4, 5), torch.randn(2, 3, 1, 4, 5)
    inferred, out, _ = run_op("alpha_composite",
                              {"rgb": sym("B", 3, 3, 4, 5), "alpha_logits": sym("B", 3, 1, 4, 5)},
                              {}, inputs={"rgb": rgb, "alpha_logits": alpha})
    assert inferred == {"image": sym("B", 3, 4, 5), "masks": sym("B", 3, 4, 5)}
    masks = out["masks"]
    torch.testing.assert_close(masks.sum(1), torch.ones(2, 4, 5))
    manual = sum(torch.softmax(alpha, 1)[:, k] * rgb[:, k] for k in range(3))
    torch.testing.assert_close(out["image"], manual)


def test_slot_permutation():
    m = get("alpha_composite").module()
    rgb, alpha = torch.randn(1, 4, 3, 2, 2), torch.randn(1, 4, 1, 2, 2)
    perm = torch.tensor([2, 0, 3, 1])
    img, masks = m(rgb, alpha)
    img_p, masks_p = m(rgb[:, perm], alpha[:, perm])
    torch.testing.assert_close(img_p, img, atol=1e-5, rtol=0)
    torch.testing.assert_close(masks_p, masks[:, perm])


def test_mismatch_error():
    with pytest.raises(ShapeError, match=r"expected \(b, k, 1, h, w\) = \(B, 3, 1, 4, 5\).*"
                                         r"got \(B, 4, 1, 4, 5\)"):
        get("alpha_composite").infer({"rgb": sym("B", 3, 3, 4, 5),
                                      "alpha_logits": sym("B", 4, 1, 4, 5)}, {})
