"""HW2 hidden suite, Part A: compose, the two networks under the reference's weights, the losses, and
one training step judged by the weights and gradients it leaves behind (observed from the parent)."""
import copy

import torch

from genai_course.grading import Checks, expect, expect_close, expect_equal, graded, reference
from genai_course.grading.weights import expect_loaded, random_state

ref = reference("hw2")


def _masks(g, n, size=32):
    """Binary masks of mixed kinds (per image), from the grader's generator."""
    import genai_course as gc

    return gc.masks.make_masks("mixed", n, size, generator=g)


@graded(points=1)
def test_compose(student):
    """compose: known pixels from the image, missing ones from the prediction (per-image and shared masks)"""
    g = student.rng()
    checks = Checks()
    for label, shape, mshape in [("per-image masks", (4, 1, 32, 32), None), ("3 channels, one shared mask", (3, 3, 16, 16), (1, 1, 16, 16))]:
        with checks.case(label):
            pred, image = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
            mask = (torch.rand(mshape or (shape[0], 1, *shape[2:]), generator=g) > 0.4).float()
            expect_equal(student.call("compose", pred, image, mask), ref.compose(pred, image, mask),
                         f"compose(pred, image, mask) with images {shape} and mask {tuple(mask.shape)}",
                         hint="mask * image + (1 - mask) * pred: 1 = known")
    return checks


def _module_case(student, checks, cls, width, train, g, n=4):
    label = f"{cls}(width={width}) in {'train' if train else 'eval'} mode"
    with checks.case(label):
        model = getattr(ref, cls)(width)
        state = random_state(model, g)
        x = torch.randn(n, 1, 32, 32, generator=g).clamp(-1, 1)
        inputs = [x] if cls == "Discriminator" else [x + 3 * (1 - (m := _masks(g, n))), m]  # garbage in the holes
        got = student.probe("module_out", cls=cls, width=width, state=state, inputs=inputs, train=train)
        what = f"{label} with the reference's weights on inputs of shape {tuple(x.shape)}"
        expect_loaded(got, what, hint="build exactly the layers the docstring lists, in that order")
        model.train(train)
        with torch.no_grad():
            expected = model(*inputs)
        hint = ("the input is cat([image * mask, mask]); skips are cat([d3, e2]) and cat([d2, e1]); tanh at the end"
                if cls == "InpaintGenerator" else "LeakyReLU(0.2) after every conv but the last; flatten to (B,)")
        expect_close(got["out"], expected, what, atol=1e-4, rtol=1e-4, hint=hint)


@graded(points=2)
def test_discriminator(student):
    """Discriminator: with the reference's weights, the same logits, shape (B,)"""
    g = student.rng()
    checks = Checks()
    for width in (8, 16):
        _module_case(student, checks, "Discriminator", width, False, g)
    return checks


@graded(points=3, timeout=20)
def test_generator(student):
    """InpaintGenerator: with the reference's weights, the same images (eval and train mode); missing pixels never leak in"""
    g = student.rng()
    checks = Checks()
    for width, train in ((8, False), (16, False), (8, True)):
        _module_case(student, checks, "InpaintGenerator", width, train, g)
    return checks


@graded(points=1)
def test_discriminator_loss(student):
    """discriminator_loss: equals the reference, also for huge logits (numerically stable)"""
    g = student.rng()
    checks = Checks()
    cases = {"random logits": (torch.randn(7, generator=g) * 3, torch.randn(5, generator=g) * 3),
             "confident and wrong (|logit| = 150)": (torch.tensor([-150.0, 2.0]), torch.tensor([150.0, -1.0, 0.5]))}
    for label, (real, fake) in cases.items():
        with checks.case(label):
            got = student.call("discriminator_loss", real, fake)
            expect_close(got, ref.discriminator_loss(real, fake), f"discriminator_loss on {label}", atol=1e-4, rtol=1e-5,
                         hint="BCE with logits: real -> 1, fake -> 0; the mean of each batch, summed; "
                              "F.binary_cross_entropy_with_logits is stable where log(sigmoid(.)) is not")
    return checks


@graded(points=2)
def test_generator_loss(student):
    """generator_loss: adversarial + lambda_rec * MSE over the missing values only, for several lambda_rec"""
    g = student.rng()
    checks = Checks()
    for label, shape, lam in [("1 channel, lambda_rec = 100", (6, 1, 32, 32), 100.0),
                              ("1 channel, lambda_rec = 0.5", (6, 1, 32, 32), 0.5),
                              ("3 channels, lambda_rec = 7", (4, 3, 8, 8), 7.0)]:
        with checks.case(label):
            logits = torch.randn(shape[0], generator=g) * 2
            fake, real = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
            mask = (torch.rand(shape[0], 1, *shape[2:], generator=g) > 0.5).float()
            expect_close(student.call("generator_loss", logits, fake, real, mask, lam),
                         ref.generator_loss(logits, fake, real, mask, lam), f"generator_loss with images {shape}, {label}",
                         atol=1e-4, rtol=1e-5,
                         hint="rec = sum((1 - mask) * (fake - real)^2) / (missing values, counting channels); "
                              "adv = mean(-log sigmoid(fake_logits))")
    with checks.case("nothing missing (mask all ones), huge logit"):
        logits, x = torch.tensor([-120.0, 3.0]), torch.randn(2, 1, 8, 8, generator=g)
        mask = torch.ones(2, 1, 8, 8)
        expect_close(student.call("generator_loss", logits, x + 1, x, mask, 10.0),
                     ref.generator_loss(logits, x + 1, x, mask, 10.0), "generator_loss with no missing pixel",
                     atol=1e-4, rtol=1e-5, hint="divide by the number of missing values, at least 1; use a stable BCE")
    return checks


def _ref_step(width, state_g, state_d, real, mask, lam, lr, probe_x, probe_m, scale):
    G, D = ref.InpaintGenerator(width), ref.Discriminator(width)
    from genai_course.grading.weights import load_reference

    load_reference(G, state_g)
    load_reference(D, state_d)
    G.train(), D.train()
    # Plain SGD: the update is linear in the gradients, so rounding differences stay rounding-sized (Adam's
    # first step is about lr * sign(grad), which turns float noise on a zero gradient into a full step).
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=lr), torch.optim.SGD(D.parameters(), lr=lr)
    losses = ref.gan_train_step(G, D, opt_g, opt_d, real, mask, lam)
    out = {"losses": losses}
    for name, model, inputs in (("g", G, (probe_x, probe_m)), ("d", D, (probe_x,))):
        model.eval()
        with torch.no_grad():
            out[f"{name}_out"] = model(*inputs)
            for p in model.parameters():
                if p.grad is not None:
                    p.sub_(scale * p.grad)
            out[f"{name}_moved"] = model(*inputs)
    return out


@graded(points=3, timeout=30)
def test_gan_train_step(student):
    """gan_train_step: losses, both updates and the gradients left in G and D equal the reference's (D frozen in the G step)"""
    g = student.rng()
    checks = Checks()
    width, n, lr, scale = 8, 8, 0.05, 5.0
    for lam in (100.0, 3.0):
        G, D = ref.InpaintGenerator(width), ref.Discriminator(width)
        state_g, state_d = random_state(G, g), random_state(D, g)
        real = torch.randn(n, 1, 32, 32, generator=g).clamp(-1, 1)
        mask = _masks(g, n)
        probe_x, probe_m = torch.randn(4, 1, 32, 32, generator=g).clamp(-1, 1), _masks(g, 4)
        args = dict(width=width, state_g=state_g, state_d=state_d, real=real, mask=mask, lambda_rec=lam, lr=lr,
                    probe_x=probe_x, probe_m=probe_m, scale=scale)
        got = {}
        with checks.case(f"lambda_rec = {lam}: the networks load the reference's weights"):
            got = student.probe("gan_step", **args)
            expect_loaded(got["g"], "InpaintGenerator(8) with the reference's weights")
            expect_loaded(got["d"], "Discriminator(8) with the reference's weights")
        if got.get("losses") is None:
            continue
        exp = _ref_step(width, copy.deepcopy(state_g), copy.deepcopy(state_d), real, mask, lam, lr, probe_x, probe_m, scale)
        with checks.case(f"lambda_rec = {lam}: returned losses"):
            expect(isinstance(got["losses"], dict) and set(got["losses"]) == {"d_loss", "g_loss"}, "gan_train_step(...)",
                   f"returned {type(got['losses']).__name__} {str(got['losses'])[:80]}", hint='return {"d_loss": float, "g_loss": float}')
            for k in ("d_loss", "g_loss"):
                expect_close(got["losses"][k], exp["losses"][k], f"the returned {k}", atol=1e-4, rtol=1e-4,
                             hint="complete once with compose(G(real, mask), real, mask); D sees fake.detach(); "
                                  "the G loss uses D after its update")
        with checks.case(f"lambda_rec = {lam}: D after its step, and D's .grad holds the D step's gradients only"):
            expect_close(got["d_out"], exp["d_out"], "D's logits after the step", atol=1e-4, rtol=1e-3,
                         hint="opt_d.zero_grad(); d_loss.backward(); opt_d.step() before the G step")
            expect_close(got["d_moved"], exp["d_moved"], "D's logits with its parameters moved along the .grad left by the step",
                         atol=1e-4, rtol=1e-3,
                         hint="freeze D (requires_grad_(False)) during the G step so its backward adds nothing to D's .grad")
            expect(all(got["d_requires_grad"]), "D's parameters after the step", "some have requires_grad=False",
                   hint="restore D.requires_grad_(True) after the G step (in a finally block)")
        with checks.case(f"lambda_rec = {lam}: G after its step, and G's .grad holds the G step's gradients only"):
            expect_close(got["g_out"], exp["g_out"], "G's output after the step", atol=1e-4, rtol=1e-3,
                         hint="opt_g.zero_grad() right before g_loss.backward(); pass lambda_rec through")
            expect_close(got["g_moved"], exp["g_moved"], "G's output with its parameters moved along the .grad left by the step",
                         atol=1e-4, rtol=1e-3)
    return checks
