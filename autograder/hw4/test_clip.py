"""HW4 hidden suite, Part E: CLIP's symmetric contrastive loss against the reference -- values, symmetry, the
logit scale as a float and as a 0-d tensor, and the gradients with respect to both embeddings and the scale."""
import torch
import torch.nn.functional as F

from genai_course.grading import Checks, expect, expect_close, graded, randint, reference
from genai_course.grading.api import diagnose

ref = reference("hw4")


def _loss(img, txt, scale, directions="both", normalise=True, divide=False):
    if normalise:
        img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = img @ txt.T / scale if divide else scale * img @ txt.T
    targets = torch.arange(len(logits))
    i2t, t2i = F.cross_entropy(logits, targets), F.cross_entropy(logits.T, targets)
    return {"both": (i2t + t2i) / 2, "image": i2t, "text": t2i, "sum": i2t + t2i}[directions]


@graded(points=3, timeout=15)
def test_clip_loss(student):
    """clip_loss: the reference's symmetric InfoNCE on unnormalised embeddings; symmetric; logit_scale as float and 0-d tensor; gradients"""
    g = student.rng()
    checks = Checks()
    cases = [("a float logit_scale", randint(g, 4, 9), randint(g, 3, 8), float(randint(g, 20, 150)) / 10, False),
             ("a 0-d tensor logit_scale that requires grad", randint(g, 4, 9), randint(g, 3, 8),
              float(randint(g, 50, 300)) / 10, True),
             ("logit_scale=1", randint(g, 3, 6), randint(g, 3, 8), 1.0, False),
             ("a batch of 16 with a large scale", 16, randint(g, 4, 10), float(randint(g, 500, 1000)) / 10, True)]
    for label, B, D, scale, as_tensor in cases:
        with checks.case(f"{label}: B={B}, D={D}, scale {scale:g}"):
            norms_i = torch.rand(B, 1, generator=g) * 3 + 0.2
            norms_t = torch.rand(B, 1, generator=g) * 3 + 0.2
            img = F.normalize(torch.randn(B, D, generator=g), dim=-1) * norms_i
            txt = F.normalize(img + 0.8 * torch.randn(B, D, generator=g), dim=-1) * norms_t
            got = student.probe("clip", image_emb=img, text_emb=txt, logit_scale=scale, scale_is_tensor=as_tensor)
            i, t = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
            sc = torch.tensor(scale, requires_grad=True) if as_tensor else scale
            want = ref.clip_loss(i, t, sc)
            want.backward()
            what = (f"clip_loss(image_emb {(B, D)}, text_emb {(B, D)}, logit_scale="
                    + (f"torch.tensor({scale:g})" if as_tensor else f"{scale:g}") + ")")
            loss = got["loss"]
            expect(isinstance(loss, torch.Tensor) and loss.numel() == 1, what,
                   f"returned {type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}", hint="a scalar tensor")
            expect_close(loss.reshape(()), want.detach(), what, atol=1e-5, rtol=1e-5, hint=diagnose(loss.reshape(()), {
                "normalise both embeddings to unit length first (F.normalize(..., dim=-1))": _loss(img, txt, scale, normalise=False),
                "average BOTH directions: image->text (rows) and text->image (columns, logits.T)": _loss(img, txt, scale, "image"),
                "the text->image term alone is half the loss: average it with image->text": _loss(img, txt, scale, "text"),
                "the mean of the two cross-entropies, not their sum": _loss(img, txt, scale, "sum"),
                "multiply the cosine similarities by logit_scale (it is e^tau already), do not divide":
                    _loss(img, txt, scale, divide=True),
                "logit_scale is e^tau already: do not exponentiate it again": _loss(img, txt, float(torch.tensor(scale).exp()))},
                default="normalise, logits = logit_scale * image @ text^T, (CE(logits, arange) + CE(logits.T, arange)) / 2"))
            expect_close(got["swapped"].reshape(()) if isinstance(got["swapped"], torch.Tensor) else got["swapped"],
                         loss.reshape(()), f"{what} with image_emb and text_emb swapped", atol=1e-5, rtol=1e-5,
                         hint="the loss is symmetric: average the image->text and text->image cross-entropies")
            expect(got["requires_grad"], what, "returned a loss without a gradient graph",
                   hint="compute it with differentiable torch operations (no .item(), no .detach())")
            wanted = (("image_emb", i.grad), ("text_emb", t.grad)) + ((("logit_scale", sc.grad),) if as_tensor else ())
            for name, want_grad in wanted:
                key = {"image_emb": "grad_image", "text_emb": "grad_text", "logit_scale": "grad_scale"}[name]
                got_grad = got.get(key)
                expect(got_grad is not None, f"{what}: the gradient with respect to {name}", "is missing",
                       hint="keep every step differentiable; use logit_scale as given (a float or a tensor)")
                expect_close(got_grad, want_grad, f"{what}: the gradient with respect to {name}",
                             atol=1e-5, rtol=1e-4, hint="the same computation as the loss: normalise, scale, both directions")
    return checks
